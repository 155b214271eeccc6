use berth_proto::berth::v1 as pb;

use crate::container::lifecycle::Containers;
use crate::container::model::ContainerFilter;
use crate::cri::instrument;
use crate::error::Result;
use crate::volume::VolumeError;
use crate::volume::Volumes;

/// `RemoveVolume`: refused while any container (running or not) mounts it; `force` makes
/// a missing volume no error.
pub async fn remove_volume(
    volumes: &Volumes,
    containers: &Containers,
    req: pb::RemoveVolumeRequest,
) -> Result<pb::RemoveVolumeResponse> {
    instrument::record_id(&req.name);
    let containers = containers.records(&ContainerFilter::default());
    match volumes.remove(&req.name, &containers).await {
        Err(VolumeError::NotFound(_)) if req.force => {}
        other => other?,
    }
    Ok(pb::RemoveVolumeResponse {})
}
