use berth_proto as pb;

use crate::cri::stats;
use crate::daemon::Daemon;
use crate::error::Result;

/// `ListPodSandboxStats`: every ready sandbox matching the filter (id, labels).
pub async fn list_pod_sandbox_stats(
    d: &Daemon,
    req: pb::ListPodSandboxStatsRequest,
) -> Result<pb::ListPodSandboxStatsResponse> {
    Ok(pb::ListPodSandboxStatsResponse {
        stats: matching(d, req.filter.as_ref()).await?,
    })
}

pub async fn matching(d: &Daemon, filter: Option<&pb::PodSandboxStatsFilter>) -> Result<Vec<pb::PodSandboxStats>> {
    let samples = crate::stats::query::pods(&d.stats_sources(), &stats::sandbox_filter(filter), true, false).await?;
    let mountpoint = stats::layers_mountpoint(d);
    Ok(samples.iter().map(|s| stats::pod_stats(s, &mountpoint)).collect())
}
