use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `StartContainer`: starts a CREATED container; any other state is FailedPrecondition.
pub async fn start_container(d: &Daemon, req: pb::StartContainerRequest) -> Result<pb::StartContainerResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    d.containers.start(id).await?;
    Ok(pb::StartContainerResponse {})
}
