use berth_proto as pb;

use crate::cri::runtime::list_containers;
use crate::daemon::Daemon;
use crate::error::Result;

const PAGE: usize = 100;

/// `StreamContainers`: `ListContainers`' answer in pages.
pub async fn stream_containers(
    d: &Daemon,
    req: pb::StreamContainersRequest,
) -> Result<Vec<pb::StreamContainersResponse>> {
    let items = list_containers::matching(d, req.filter.as_ref()).await;
    Ok(crate::cri::pages(&items, PAGE, |page| pb::StreamContainersResponse {
        containers: page,
    }))
}
