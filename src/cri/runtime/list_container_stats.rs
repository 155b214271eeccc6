use berth_proto as pb;

use crate::cri::stats;
use crate::daemon::Daemon;
use crate::error::Result;

/// `ListContainerStats`: every container matching the filter (id, sandbox, labels).
pub async fn list_container_stats(
    d: &Daemon,
    req: pb::ListContainerStatsRequest,
) -> Result<pb::ListContainerStatsResponse> {
    Ok(pb::ListContainerStatsResponse {
        stats: matching(d, req.filter.as_ref()).await?,
    })
}

pub async fn matching(d: &Daemon, filter: Option<&pb::ContainerStatsFilter>) -> Result<Vec<pb::ContainerStats>> {
    let samples = crate::stats::query::containers(&d.stats_sources(), &stats::container_filter(filter)).await?;
    let mountpoint = stats::layers_mountpoint(d);
    Ok(samples.iter().map(|s| stats::container_stats(s, &mountpoint)).collect())
}
