//! `CreateVolume`, `ListVolumes` and `VolumeStatus`: volumes as the wire shows them, with
//! the containers using each.

use berth_proto::berth::v1 as pb;

use crate::container::lifecycle::Containers;
use crate::container::model::{ContainerFilter, ContainerRecord};
use crate::cri::instrument;
use crate::error::Result;
use crate::volume::Volumes;
use crate::volume::{NewVolume, VolumeRecord};

pub async fn create_volume(
    volumes: &Volumes,
    containers: &Containers,
    req: pb::CreateVolumeRequest,
) -> Result<pb::CreateVolumeResponse> {
    instrument::record_id(&req.name);
    let rec = volumes
        .create(NewVolume {
            name: req.name,
            driver: req.driver,
            labels: req.labels.into_iter().collect(),
            options: req.options.into_iter().collect(),
            anonymous: req.anonymous,
        })
        .await?;
    Ok(pb::CreateVolumeResponse {
        volume: Some(wire(volumes, containers, rec, false)),
    })
}

pub async fn list_volumes(
    volumes: &Volumes,
    containers: &Containers,
    req: pb::ListVolumesRequest,
) -> Result<pb::ListVolumesResponse> {
    let records = containers.records(&ContainerFilter::default());
    let list = volumes
        .list()
        .into_iter()
        .map(|v| wire_with(volumes, &records, v, req.sizes))
        .collect();
    Ok(pb::ListVolumesResponse { volumes: list })
}

pub async fn volume_status(
    volumes: &Volumes,
    containers: &Containers,
    req: pb::VolumeStatusRequest,
) -> Result<pb::VolumeStatusResponse> {
    instrument::record_id(&req.name);
    let rec = volumes.get(&req.name)?;
    Ok(pb::VolumeStatusResponse {
        volume: Some(wire(volumes, containers, rec, true)),
    })
}

/// `rec` on the wire; `size` measures its content.
pub(super) fn wire(volumes: &Volumes, containers: &Containers, rec: VolumeRecord, size: bool) -> pb::Volume {
    wire_with(volumes, &containers.records(&ContainerFilter::default()), rec, size)
}

/// [`wire`] with the container records read once for a whole list.
fn wire_with(volumes: &Volumes, containers: &[ContainerRecord], rec: VolumeRecord, size: bool) -> pb::Volume {
    pb::Volume {
        mountpoint: volumes.mountpoint(&rec.name).display().to_string(),
        used_by: volumes.users(&rec.name, containers),
        size: if size { volumes.size(&rec.name) as i64 } else { -1 },
        name: rec.name,
        driver: rec.driver,
        labels: rec.labels.into_iter().collect(),
        options: rec.options.into_iter().collect(),
        created_at: rec.created_at,
        anonymous: rec.anonymous,
    }
}
