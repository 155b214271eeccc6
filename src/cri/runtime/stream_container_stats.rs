use berth_proto as pb;

use crate::cri::runtime::list_container_stats;
use crate::daemon::Daemon;
use crate::error::Result;

const PAGE: usize = 100;

/// `StreamContainerStats`: `ListContainerStats`' answer in pages.
pub async fn stream_container_stats(
    d: &Daemon,
    req: pb::StreamContainerStatsRequest,
) -> Result<Vec<pb::StreamContainerStatsResponse>> {
    let items = list_container_stats::matching(d, req.filter.as_ref()).await?;
    Ok(crate::cri::pages(&items, PAGE, |page| {
        pb::StreamContainerStatsResponse { container_stats: page }
    }))
}
