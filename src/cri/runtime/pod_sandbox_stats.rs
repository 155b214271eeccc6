use berth_proto as pb;

use crate::cri::{convert, instrument, stats};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::sandbox::SandboxFilter;

/// `PodSandboxStats`: the pod's CPU, memory, network and process figures and its
/// containers'. Unknown ids are NotFound.
pub async fn pod_sandbox_stats(d: &Daemon, req: pb::PodSandboxStatsRequest) -> Result<pb::PodSandboxStatsResponse> {
    let id = convert::required_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    instrument::record_id(id);
    let rec = d.sandboxes.get(id)?;
    let filter = SandboxFilter {
        id_prefix: Some(rec.id.clone()),
        ..Default::default()
    };
    let samples = crate::stats::query::pods(&d.stats_sources(), &filter, false, false).await?;
    let sample = samples
        .iter()
        .find(|s| s.record.id == rec.id)
        .ok_or_else(|| Error::NotFound(format!("sandbox {id}")))?;
    Ok(pb::PodSandboxStatsResponse {
        stats: Some(stats::pod_stats(sample, &stats::layers_mountpoint(d))),
    })
}
