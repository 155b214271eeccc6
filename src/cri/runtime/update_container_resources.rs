use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `UpdateContainerResources`: applies new CPU and memory limits to a running container
/// through `runc update`.
pub async fn update_container_resources(
    d: &Daemon,
    req: pb::UpdateContainerResourcesRequest,
) -> Result<pb::UpdateContainerResourcesResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    if let Some(linux) = &req.linux {
        convert::check_resources(linux)?;
    }
    let resources = req.linux.as_ref().map(convert::resources).unwrap_or_default();
    d.containers.update_resources(id, resources).await?;
    Ok(pb::UpdateContainerResourcesResponse {})
}
