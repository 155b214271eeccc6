use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `ReopenContainerLog`: the shim closes and reopens the log file (kubelet renamed it to
/// rotate). Only for running containers (FailedPrecondition otherwise).
pub async fn reopen_container_log(
    d: &Daemon,
    req: pb::ReopenContainerLogRequest,
) -> Result<pb::ReopenContainerLogResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    d.containers.reopen_log(id).await?;
    Ok(pb::ReopenContainerLogResponse {})
}
