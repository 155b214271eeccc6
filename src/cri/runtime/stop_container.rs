use std::time::Duration;

use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `StopContainer`: sends the stop signal (the request's, else the image's, else SIGTERM),
/// waits `timeout` seconds, then SIGKILL. Idempotent: stopping a stopped or unknown
/// container succeeds (as containerd does, and critest expects).
pub async fn stop_container(d: &Daemon, req: pb::StopContainerRequest) -> Result<pb::StopContainerResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    let timeout = Duration::from_secs(req.timeout.max(0) as u64);
    d.containers.stop(id, timeout).await?;
    Ok(pb::StopContainerResponse {})
}
