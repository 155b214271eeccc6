use berth_proto as pb;

use crate::container::lifecycle::ContainerFilter;
use crate::cri::{convert, instrument, stats};
use crate::daemon::Daemon;
use crate::error::{Error, Result};

/// `ContainerStats`: CPU, memory and writable layer of one container. Unknown ids are NotFound.
pub async fn container_stats(d: &Daemon, req: pb::ContainerStatsRequest) -> Result<pb::ContainerStatsResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    let rec = d.containers.get(id).await?;
    let filter = ContainerFilter {
        id_prefix: Some(rec.id.clone()),
        ..Default::default()
    };
    let samples = crate::stats::query::containers(&d.stats_sources(), &filter).await?;
    let sample = samples
        .iter()
        .find(|s| s.record.id == rec.id)
        .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
    Ok(pb::ContainerStatsResponse {
        stats: Some(stats::container_stats(sample, &stats::layers_mountpoint(d))),
    })
}
