use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `RemoveContainer`: removes the container, killing it first if it still runs (the CRI
/// says a running container must be forcibly removed). Idempotent: unknown ids succeed.
pub async fn remove_container(d: &Daemon, req: pb::RemoveContainerRequest) -> Result<pb::RemoveContainerResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    d.containers.remove(id).await?;
    Ok(pb::RemoveContainerResponse {})
}
