use std::collections::HashMap;

use berth_proto as pb;

use crate::container::lifecycle::ContainerFilter;
use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `PodSandboxStatus`: state (a sandbox whose infra process died is NOTREADY), pod IPs,
/// namespace options, labels and annotations, and the statuses of the pod's containers
/// (kubelet's evented PLEG reads them from here). Unknown ids are NotFound. With `verbose`,
/// `info["info"]` holds the sandbox record as JSON (pid, netns, cgroup).
pub async fn pod_sandbox_status(d: &Daemon, req: pb::PodSandboxStatusRequest) -> Result<pb::PodSandboxStatusResponse> {
    let id = convert::required_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    instrument::record_id(id);
    let rec = d.sandboxes.get(id)?;
    let mut info = HashMap::new();
    if req.verbose {
        info.insert("info".to_string(), serde_json::to_string(&rec).unwrap_or_default());
    }
    Ok(pb::PodSandboxStatusResponse {
        status: Some(convert::sandbox_status(&rec)),
        info,
        containers_statuses: d
            .containers
            .records(&ContainerFilter {
                sandbox_id: Some(rec.id.clone()),
                ..Default::default()
            })
            .iter()
            .map(convert::container_status)
            .collect(),
        timestamp: crate::clock::now_nanos(),
    })
}
