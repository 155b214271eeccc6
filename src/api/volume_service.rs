//! Berth's own volume API (`berth.v1.Volumes`): the edge only, over the daemon's volumes
//! and, for which containers use a volume, its containers.

use std::sync::Arc;

use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::volumes_server::{Volumes as VolumesRpc, VolumesServer};
use tonic::{Request, Response, Status};

use super::{list_volumes, prune_volumes, remove_volume};
use crate::container::lifecycle::Containers;
use crate::cri::instrument::call;
use crate::volume::Volumes;

/// The service, over the daemon's volumes and containers.
#[derive(Clone)]
pub struct VolumeApi {
    volumes: Arc<Volumes>,
    containers: Arc<Containers>,
}

impl VolumeApi {
    pub fn new(volumes: Arc<Volumes>, containers: Arc<Containers>) -> VolumeApi {
        VolumeApi { volumes, containers }
    }

    /// The tonic service, with the same message limits as the CRI's.
    pub fn server(self, max_message: usize) -> VolumesServer<VolumeApi> {
        VolumesServer::new(self)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message)
    }
}

#[tonic::async_trait]
impl VolumesRpc for VolumeApi {
    async fn create_volume(
        &self,
        request: Request<pb::CreateVolumeRequest>,
    ) -> Result<Response<pb::CreateVolumeResponse>, Status> {
        call(
            "berth.CreateVolume",
            list_volumes::create_volume(&self.volumes, &self.containers, request.into_inner()),
        )
        .await
    }

    async fn list_volumes(
        &self,
        request: Request<pb::ListVolumesRequest>,
    ) -> Result<Response<pb::ListVolumesResponse>, Status> {
        call(
            "berth.ListVolumes",
            list_volumes::list_volumes(&self.volumes, &self.containers, request.into_inner()),
        )
        .await
    }

    async fn volume_status(
        &self,
        request: Request<pb::VolumeStatusRequest>,
    ) -> Result<Response<pb::VolumeStatusResponse>, Status> {
        call(
            "berth.VolumeStatus",
            list_volumes::volume_status(&self.volumes, &self.containers, request.into_inner()),
        )
        .await
    }

    async fn remove_volume(
        &self,
        request: Request<pb::RemoveVolumeRequest>,
    ) -> Result<Response<pb::RemoveVolumeResponse>, Status> {
        call(
            "berth.RemoveVolume",
            remove_volume::remove_volume(&self.volumes, &self.containers, request.into_inner()),
        )
        .await
    }

    async fn prune_volumes(
        &self,
        request: Request<pb::PruneVolumesRequest>,
    ) -> Result<Response<pb::PruneVolumesResponse>, Status> {
        call(
            "berth.PruneVolumes",
            prune_volumes::prune_volumes(&self.volumes, &self.containers, request.into_inner()),
        )
        .await
    }
}
