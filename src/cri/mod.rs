//! The CRI edge: tonic service impls that only route. Each RPC lives in its own file under
//! `runtime/` or `image/`; every call goes through [`instrument::call`] for its span, timing
//! and error mapping. RPCs of later milestones answer `Unimplemented` (gRPC's way of
//! saying "not offered"), never a fake success.

mod container_image;
pub mod convert;
pub mod image;
pub mod instrument;
pub mod runtime;
pub mod stats;

use std::pin::Pin;
use std::sync::Arc;

use berth_proto as pb;
use berth_proto::image_service_server::ImageService;
use berth_proto::runtime_service_server::RuntimeService;
use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::daemon::Daemon;
use crate::error::Error;
use instrument::call;

/// A server-streaming response.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The gRPC face of a [`Daemon`].
#[derive(Clone)]
pub struct Cri {
    daemon: Arc<Daemon>,
}

impl Cri {
    pub fn new(daemon: Arc<Daemon>) -> Cri {
        Cri { daemon }
    }

    /// The daemon behind the CRI, for the other services on the same socket.
    pub fn daemon(&self) -> Arc<Daemon> {
        self.daemon.clone()
    }
}

fn not_yet<T>(rpc: &'static str) -> impl std::future::Future<Output = Result<T, Error>> {
    std::future::ready(Err(Error::Unimplemented(rpc)))
}

/// Splits a listing into pages of `size` for the `Stream*` RPCs; an empty listing is one
/// empty page (the client sees an answer rather than a bare end of stream).
pub fn pages<T: Clone, R: Default>(items: &[T], size: usize, page: impl Fn(Vec<T>) -> R) -> Vec<R> {
    if items.is_empty() {
        return vec![R::default()];
    }
    items.chunks(size).map(|c| page(c.to_vec())).collect()
}

/// Wraps a finished list of messages as a stream.
fn stream_of<T: Send + 'static>(items: Vec<T>) -> BoxStream<T> {
    Box::pin(futures_util::stream::iter(items.into_iter().map(Ok)))
}

#[tonic::async_trait]
impl RuntimeService for Cri {
    async fn version(&self, request: Request<pb::VersionRequest>) -> Result<Response<pb::VersionResponse>, Status> {
        call("Version", runtime::version::version(&self.daemon, request.into_inner())).await
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<pb::RunPodSandboxRequest>,
    ) -> Result<Response<pb::RunPodSandboxResponse>, Status> {
        call(
            "RunPodSandbox",
            runtime::run_pod_sandbox::run_pod_sandbox(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<pb::StopPodSandboxRequest>,
    ) -> Result<Response<pb::StopPodSandboxResponse>, Status> {
        call(
            "StopPodSandbox",
            runtime::stop_pod_sandbox::stop_pod_sandbox(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<pb::RemovePodSandboxRequest>,
    ) -> Result<Response<pb::RemovePodSandboxResponse>, Status> {
        call(
            "RemovePodSandbox",
            runtime::remove_pod_sandbox::remove_pod_sandbox(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<pb::PodSandboxStatusRequest>,
    ) -> Result<Response<pb::PodSandboxStatusResponse>, Status> {
        call(
            "PodSandboxStatus",
            runtime::pod_sandbox_status::pod_sandbox_status(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<pb::ListPodSandboxRequest>,
    ) -> Result<Response<pb::ListPodSandboxResponse>, Status> {
        call(
            "ListPodSandbox",
            runtime::list_pod_sandbox::list_pod_sandbox(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn create_container(
        &self,
        request: Request<pb::CreateContainerRequest>,
    ) -> Result<Response<pb::CreateContainerResponse>, Status> {
        call(
            "CreateContainer",
            runtime::create_container::create_container(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn start_container(
        &self,
        request: Request<pb::StartContainerRequest>,
    ) -> Result<Response<pb::StartContainerResponse>, Status> {
        call(
            "StartContainer",
            runtime::start_container::start_container(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn stop_container(
        &self,
        request: Request<pb::StopContainerRequest>,
    ) -> Result<Response<pb::StopContainerResponse>, Status> {
        call(
            "StopContainer",
            runtime::stop_container::stop_container(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn remove_container(
        &self,
        request: Request<pb::RemoveContainerRequest>,
    ) -> Result<Response<pb::RemoveContainerResponse>, Status> {
        call(
            "RemoveContainer",
            runtime::remove_container::remove_container(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn list_containers(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        call(
            "ListContainers",
            runtime::list_containers::list_containers(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn container_status(
        &self,
        request: Request<pb::ContainerStatusRequest>,
    ) -> Result<Response<pb::ContainerStatusResponse>, Status> {
        call(
            "ContainerStatus",
            runtime::container_status::container_status(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn update_container_resources(
        &self,
        request: Request<pb::UpdateContainerResourcesRequest>,
    ) -> Result<Response<pb::UpdateContainerResourcesResponse>, Status> {
        call(
            "UpdateContainerResources",
            runtime::update_container_resources::update_container_resources(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn reopen_container_log(
        &self,
        request: Request<pb::ReopenContainerLogRequest>,
    ) -> Result<Response<pb::ReopenContainerLogResponse>, Status> {
        call(
            "ReopenContainerLog",
            runtime::reopen_container_log::reopen_container_log(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn exec_sync(&self, request: Request<pb::ExecSyncRequest>) -> Result<Response<pb::ExecSyncResponse>, Status> {
        call(
            "ExecSync",
            runtime::exec_sync::exec_sync(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn exec(&self, request: Request<pb::ExecRequest>) -> Result<Response<pb::ExecResponse>, Status> {
        call("Exec", runtime::exec::exec(&self.daemon, request.into_inner())).await
    }

    async fn attach(&self, request: Request<pb::AttachRequest>) -> Result<Response<pb::AttachResponse>, Status> {
        call("Attach", runtime::attach::attach(&self.daemon, request.into_inner())).await
    }

    async fn port_forward(
        &self,
        request: Request<pb::PortForwardRequest>,
    ) -> Result<Response<pb::PortForwardResponse>, Status> {
        call(
            "PortForward",
            runtime::port_forward::port_forward(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn container_stats(
        &self,
        request: Request<pb::ContainerStatsRequest>,
    ) -> Result<Response<pb::ContainerStatsResponse>, Status> {
        call(
            "ContainerStats",
            runtime::container_stats::container_stats(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn list_container_stats(
        &self,
        request: Request<pb::ListContainerStatsRequest>,
    ) -> Result<Response<pb::ListContainerStatsResponse>, Status> {
        call(
            "ListContainerStats",
            runtime::list_container_stats::list_container_stats(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<pb::PodSandboxStatsRequest>,
    ) -> Result<Response<pb::PodSandboxStatsResponse>, Status> {
        call(
            "PodSandboxStats",
            runtime::pod_sandbox_stats::pod_sandbox_stats(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<pb::ListPodSandboxStatsRequest>,
    ) -> Result<Response<pb::ListPodSandboxStatsResponse>, Status> {
        call(
            "ListPodSandboxStats",
            runtime::list_pod_sandbox_stats::list_pod_sandbox_stats(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn update_runtime_config(
        &self,
        request: Request<pb::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<pb::UpdateRuntimeConfigResponse>, Status> {
        call(
            "UpdateRuntimeConfig",
            runtime::update_runtime_config::update_runtime_config(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        call("Status", runtime::status::status(&self.daemon, request.into_inner())).await
    }

    async fn checkpoint_container(
        &self,
        _request: Request<pb::CheckpointContainerRequest>,
    ) -> Result<Response<pb::CheckpointContainerResponse>, Status> {
        call("CheckpointContainer", not_yet("CheckpointContainer")).await
    }

    async fn list_metric_descriptors(
        &self,
        request: Request<pb::ListMetricDescriptorsRequest>,
    ) -> Result<Response<pb::ListMetricDescriptorsResponse>, Status> {
        call(
            "ListMetricDescriptors",
            runtime::list_metric_descriptors::list_metric_descriptors(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        request: Request<pb::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<pb::ListPodSandboxMetricsResponse>, Status> {
        call(
            "ListPodSandboxMetrics",
            runtime::list_pod_sandbox_metrics::list_pod_sandbox_metrics(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn runtime_config(
        &self,
        request: Request<pb::RuntimeConfigRequest>,
    ) -> Result<Response<pb::RuntimeConfigResponse>, Status> {
        call(
            "RuntimeConfig",
            runtime::runtime_config::runtime_config(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn update_pod_sandbox_resources(
        &self,
        request: Request<pb::UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<pb::UpdatePodSandboxResourcesResponse>, Status> {
        call(
            "UpdatePodSandboxResources",
            runtime::update_pod_sandbox_resources::update_pod_sandbox_resources(&self.daemon, request.into_inner()),
        )
        .await
    }

    type StreamPodSandboxesStream = BoxStream<pb::StreamPodSandboxesResponse>;

    async fn stream_pod_sandboxes(
        &self,
        request: Request<pb::StreamPodSandboxesRequest>,
    ) -> Result<Response<Self::StreamPodSandboxesStream>, Status> {
        let pages = call(
            "StreamPodSandboxes",
            runtime::stream_pod_sandboxes::stream_pod_sandboxes(&self.daemon, request.into_inner()),
        )
        .await?;
        Ok(Response::new(stream_of(pages.into_inner())))
    }

    type StreamContainersStream = BoxStream<pb::StreamContainersResponse>;

    async fn stream_containers(
        &self,
        request: Request<pb::StreamContainersRequest>,
    ) -> Result<Response<Self::StreamContainersStream>, Status> {
        let pages = call(
            "StreamContainers",
            runtime::stream_containers::stream_containers(&self.daemon, request.into_inner()),
        )
        .await?;
        Ok(Response::new(stream_of(pages.into_inner())))
    }

    type StreamContainerStatsStream = BoxStream<pb::StreamContainerStatsResponse>;

    async fn stream_container_stats(
        &self,
        request: Request<pb::StreamContainerStatsRequest>,
    ) -> Result<Response<Self::StreamContainerStatsStream>, Status> {
        let pages = call(
            "StreamContainerStats",
            runtime::stream_container_stats::stream_container_stats(&self.daemon, request.into_inner()),
        )
        .await?;
        Ok(Response::new(stream_of(pages.into_inner())))
    }

    type StreamPodSandboxStatsStream = BoxStream<pb::StreamPodSandboxStatsResponse>;

    async fn stream_pod_sandbox_stats(
        &self,
        request: Request<pb::StreamPodSandboxStatsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxStatsStream>, Status> {
        let pages = call(
            "StreamPodSandboxStats",
            runtime::stream_pod_sandbox_stats::stream_pod_sandbox_stats(&self.daemon, request.into_inner()),
        )
        .await?;
        Ok(Response::new(stream_of(pages.into_inner())))
    }

    type StreamPodSandboxMetricsStream = BoxStream<pb::StreamPodSandboxMetricsResponse>;

    async fn stream_pod_sandbox_metrics(
        &self,
        request: Request<pb::StreamPodSandboxMetricsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxMetricsStream>, Status> {
        let pages = call(
            "StreamPodSandboxMetrics",
            runtime::stream_pod_sandbox_metrics::stream_pod_sandbox_metrics(&self.daemon, request.into_inner()),
        )
        .await?;
        Ok(Response::new(stream_of(pages.into_inner())))
    }

    type GetContainerEventsStream = BoxStream<pb::ContainerEventResponse>;

    async fn get_container_events(
        &self,
        request: Request<pb::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        call(
            "GetContainerEvents",
            runtime::get_container_events::get_container_events(&self.daemon, request.into_inner()),
        )
        .await
    }
}

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(
        &self,
        request: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        call(
            "ListImages",
            image::list_images::list_images(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn image_status(
        &self,
        request: Request<pb::ImageStatusRequest>,
    ) -> Result<Response<pb::ImageStatusResponse>, Status> {
        call(
            "ImageStatus",
            image::image_status::image_status(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn pull_image(
        &self,
        request: Request<pb::PullImageRequest>,
    ) -> Result<Response<pb::PullImageResponse>, Status> {
        call(
            "PullImage",
            image::pull_image::pull_image(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn remove_image(
        &self,
        request: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        call(
            "RemoveImage",
            image::remove_image::remove_image(&self.daemon, request.into_inner()),
        )
        .await
    }

    async fn image_fs_info(
        &self,
        request: Request<pb::ImageFsInfoRequest>,
    ) -> Result<Response<pb::ImageFsInfoResponse>, Status> {
        call(
            "ImageFsInfo",
            image::image_fs_info::image_fs_info(&self.daemon, request.into_inner()),
        )
        .await
    }

    type StreamImagesStream = BoxStream<pb::StreamImagesResponse>;

    async fn stream_images(
        &self,
        request: Request<pb::StreamImagesRequest>,
    ) -> Result<Response<Self::StreamImagesStream>, Status> {
        let pages = call(
            "StreamImages",
            image::stream_images::stream_images(&self.daemon, request.into_inner()),
        )
        .await?;
        Ok(Response::new(stream_of(pages.into_inner())))
    }
}
