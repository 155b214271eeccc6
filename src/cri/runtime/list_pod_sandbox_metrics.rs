use berth_proto as pb;

use crate::cri::stats;
use crate::daemon::Daemon;
use crate::error::Result;

/// `ListPodSandboxMetrics`: metrics of every ready pod and its containers.
pub async fn list_pod_sandbox_metrics(
    d: &Daemon,
    _req: pb::ListPodSandboxMetricsRequest,
) -> Result<pb::ListPodSandboxMetricsResponse> {
    Ok(pb::ListPodSandboxMetricsResponse {
        pod_metrics: all(d).await?,
    })
}

pub async fn all(d: &Daemon) -> Result<Vec<pb::PodSandboxMetrics>> {
    let samples = crate::stats::query::pods(&d.stats_sources(), &Default::default(), true, true).await?;
    let mountpoint = stats::layers_mountpoint(d);
    let fs = crate::sys::fs::space(std::path::Path::new(&mountpoint)).ok();
    Ok(samples
        .iter()
        .map(|s| stats::pod_metrics(s, &mountpoint, fs.as_ref()))
        .collect())
}
