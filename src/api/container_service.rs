//! Berth's own container API (`berth.v1.Containers`): restarts of `berthctl run`
//! containers, copies in and out, exec with Docker's options. The edge only.

use std::sync::Arc;

use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::containers_server::{Containers as ContainersRpc, ContainersServer};
use tonic::{Request, Response, Status, Streaming};

use super::{
    commit_container, copy_from_container, copy_to_container, exec_container, restart_container, stat_container_path,
};
use crate::container::lifecycle::Containers;
use crate::cri::instrument::call;
use crate::cri::BoxStream;
use crate::daemon::Daemon;

/// The service, over the daemon's containers.
#[derive(Clone)]
pub struct ContainerApi {
    containers: Arc<Containers>,
    /// For exec, which needs the streaming server too.
    daemon: Arc<Daemon>,
}

impl ContainerApi {
    pub fn new(daemon: Arc<Daemon>) -> ContainerApi {
        ContainerApi {
            containers: daemon.containers.clone(),
            daemon,
        }
    }

    /// The tonic service, with the same message limits as the CRI's.
    pub fn server(self, max_message: usize) -> ContainersServer<ContainerApi> {
        ContainersServer::new(self)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message)
    }
}

#[tonic::async_trait]
impl ContainersRpc for ContainerApi {
    type CopyFromContainerStream = BoxStream<pb::CopyChunk>;

    async fn exec(&self, request: Request<pb::ExecRequest>) -> Result<Response<pb::ExecResponse>, Status> {
        call(
            "berth.Exec",
            exec_container::exec_container(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn stat_container_path(
        &self,
        request: Request<pb::StatContainerPathRequest>,
    ) -> Result<Response<pb::StatContainerPathResponse>, Status> {
        call(
            "berth.StatContainerPath",
            stat_container_path::stat_container_path(&self.containers, request.into_inner()),
        )
        .await
    }

    async fn copy_from_container(
        &self,
        request: Request<pb::CopyFromContainerRequest>,
    ) -> Result<Response<Self::CopyFromContainerStream>, Status> {
        call(
            "berth.CopyFromContainer",
            copy_from_container::copy_from_container(&self.containers, request.into_inner()),
        )
        .await
    }

    async fn copy_to_container(
        &self,
        request: Request<Streaming<pb::CopyToContainerChunk>>,
    ) -> Result<Response<pb::CopyToContainerResponse>, Status> {
        call(
            "berth.CopyToContainer",
            copy_to_container::copy_to_container(&self.containers, request.into_inner()),
        )
        .await
    }

    async fn commit_container(
        &self,
        request: Request<pb::CommitContainerRequest>,
    ) -> Result<Response<pb::CommitContainerResponse>, Status> {
        call(
            "berth.CommitContainer",
            commit_container::commit_container(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn restart_container(
        &self,
        request: Request<pb::RestartContainerRequest>,
    ) -> Result<Response<pb::RestartContainerResponse>, Status> {
        call(
            "berth.RestartContainer",
            restart_container::restart_container(&self.containers, request.into_inner()),
        )
        .await
    }
}
