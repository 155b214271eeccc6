use berth_proto as pb;

use crate::cri::convert;
use crate::daemon::Daemon;
use crate::error::Result;

/// `ListContainers`: every container, filtered by id (or prefix), state, sandbox and labels.
pub async fn list_containers(d: &Daemon, req: pb::ListContainersRequest) -> Result<pb::ListContainersResponse> {
    Ok(pb::ListContainersResponse {
        containers: matching(d, req.filter.as_ref()).await,
    })
}

pub async fn matching(d: &Daemon, filter: Option<&pb::ContainerFilter>) -> Vec<pb::Container> {
    let filter = convert::container_filter(filter);
    d.containers
        .list(&filter)
        .await
        .iter()
        .map(convert::container)
        .collect()
}
