use berth_proto as pb;

use crate::cri::runtime::list_pod_sandbox_stats;
use crate::daemon::Daemon;
use crate::error::Result;

const PAGE: usize = 50;

/// `StreamPodSandboxStats`: `ListPodSandboxStats`' answer in pages.
pub async fn stream_pod_sandbox_stats(
    d: &Daemon,
    req: pb::StreamPodSandboxStatsRequest,
) -> Result<Vec<pb::StreamPodSandboxStatsResponse>> {
    let items = list_pod_sandbox_stats::matching(d, req.filter.as_ref()).await?;
    Ok(crate::cri::pages(&items, PAGE, |page| {
        pb::StreamPodSandboxStatsResponse {
            pod_sandbox_stats: page,
        }
    }))
}
