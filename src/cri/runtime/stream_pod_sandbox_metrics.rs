use berth_proto as pb;

use crate::cri::runtime::list_pod_sandbox_metrics;
use crate::daemon::Daemon;
use crate::error::Result;

const PAGE: usize = 50;

/// `StreamPodSandboxMetrics`: `ListPodSandboxMetrics`' answer in pages.
pub async fn stream_pod_sandbox_metrics(
    d: &Daemon,
    _req: pb::StreamPodSandboxMetricsRequest,
) -> Result<Vec<pb::StreamPodSandboxMetricsResponse>> {
    let items = list_pod_sandbox_metrics::all(d).await?;
    Ok(crate::cri::pages(&items, PAGE, |page| {
        pb::StreamPodSandboxMetricsResponse {
            pod_sandbox_metrics: page,
        }
    }))
}
