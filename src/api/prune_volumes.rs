use berth_proto::berth::v1 as pb;

use crate::container::lifecycle::Containers;
use crate::container::model::ContainerFilter;
use crate::error::Result;
use crate::volume::VolumeError;
use crate::volume::Volumes;

/// `PruneVolumes`: every unused anonymous volume (with `all`, named ones too) carrying the
/// requested labels; what went and the bytes it held.
pub async fn prune_volumes(
    volumes: &Volumes,
    containers: &Containers,
    req: pb::PruneVolumesRequest,
) -> Result<pb::PruneVolumesResponse> {
    let containers = containers.records(&ContainerFilter::default());
    let mut out = pb::PruneVolumesResponse::default();
    for v in volumes.list() {
        let labelled = req
            .labels
            .iter()
            .all(|(k, want)| v.labels.get(k).is_some_and(|have| want.is_empty() || have == want));
        if !(v.anonymous || req.all) || !labelled {
            continue;
        }
        let size = volumes.size(&v.name);
        match volumes.remove(&v.name, &containers).await {
            Ok(()) => {
                out.removed.push(v.name);
                out.reclaimed_bytes += size;
            }
            // In use, or removed meanwhile: not this prune's to take.
            Err(VolumeError::InUse { .. } | VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}
