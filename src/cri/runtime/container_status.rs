use std::collections::HashMap;

use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `ContainerStatus`: state, times, exit code, reason (`Completed`, `Error`, `OOMKilled`),
/// image, mounts, log path, labels and annotations. Unknown ids are NotFound. With
/// `verbose`, `info["info"]` holds the record as JSON (pid, cgroup, config).
pub async fn container_status(d: &Daemon, req: pb::ContainerStatusRequest) -> Result<pb::ContainerStatusResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    let rec = d.containers.get(id).await?;
    let mut info = HashMap::new();
    if req.verbose {
        info.insert("info".to_string(), serde_json::to_string(&rec).unwrap_or_default());
    }
    Ok(pb::ContainerStatusResponse {
        status: Some(convert::container_status(&rec)),
        info,
    })
}
