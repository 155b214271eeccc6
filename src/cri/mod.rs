//! The CRI edge: tonic service impls that only route, written by `service!` (in `route`)
//! from the two tables below, one line per RPC. Each RPC lives in its own file under
//! `runtime/` or `image/`; every call goes through [`instrument::call`] for its span, timing
//! and error mapping. RPCs of later milestones answer `Unimplemented` (gRPC's way of
//! saying "not offered"), never a fake success.

mod container_image;
pub mod convert;
pub mod image;
pub mod instrument;
mod route;
pub mod runtime;
pub mod stats;

use std::sync::Arc;

use berth_proto::image_service_server::ImageService;
use berth_proto::runtime_service_server::RuntimeService;

use crate::daemon::Daemon;
use route::service;

pub use route::BoxStream;

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

/// Splits a listing into pages of `size` for the `Stream*` RPCs; an empty listing is one
/// empty page (the client sees an answer rather than a bare end of stream).
pub fn pages<T: Clone, R: Default>(items: &[T], size: usize, page: impl Fn(Vec<T>) -> R) -> Vec<R> {
    if items.is_empty() {
        return vec![R::default()];
    }
    items.chunks(size).map(|c| page(c.to_vec())).collect()
}

service! {
    impl RuntimeService for Cri, handlers in runtime {
        unary {
            version(VersionRequest) -> VersionResponse = "Version";
            run_pod_sandbox(RunPodSandboxRequest) -> RunPodSandboxResponse = "RunPodSandbox";
            stop_pod_sandbox(StopPodSandboxRequest) -> StopPodSandboxResponse = "StopPodSandbox";
            remove_pod_sandbox(RemovePodSandboxRequest) -> RemovePodSandboxResponse = "RemovePodSandbox";
            pod_sandbox_status(PodSandboxStatusRequest) -> PodSandboxStatusResponse = "PodSandboxStatus";
            list_pod_sandbox(ListPodSandboxRequest) -> ListPodSandboxResponse = "ListPodSandbox";
            create_container(CreateContainerRequest) -> CreateContainerResponse = "CreateContainer";
            start_container(StartContainerRequest) -> StartContainerResponse = "StartContainer";
            stop_container(StopContainerRequest) -> StopContainerResponse = "StopContainer";
            remove_container(RemoveContainerRequest) -> RemoveContainerResponse = "RemoveContainer";
            list_containers(ListContainersRequest) -> ListContainersResponse = "ListContainers";
            container_status(ContainerStatusRequest) -> ContainerStatusResponse = "ContainerStatus";
            update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse
                = "UpdateContainerResources";
            reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse = "ReopenContainerLog";
            exec_sync(ExecSyncRequest) -> ExecSyncResponse = "ExecSync";
            exec(ExecRequest) -> ExecResponse = "Exec";
            attach(AttachRequest) -> AttachResponse = "Attach";
            port_forward(PortForwardRequest) -> PortForwardResponse = "PortForward";
            container_stats(ContainerStatsRequest) -> ContainerStatsResponse = "ContainerStats";
            list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse = "ListContainerStats";
            pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse = "PodSandboxStats";
            list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse = "ListPodSandboxStats";
            update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse = "UpdateRuntimeConfig";
            status(StatusRequest) -> StatusResponse = "Status";
            list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse
                = "ListMetricDescriptors";
            list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse
                = "ListPodSandboxMetrics";
            runtime_config(RuntimeConfigRequest) -> RuntimeConfigResponse = "RuntimeConfig";
            update_pod_sandbox_resources(UpdatePodSandboxResourcesRequest) -> UpdatePodSandboxResourcesResponse
                = "UpdatePodSandboxResources";
        }
        paged {
            stream_pod_sandboxes(StreamPodSandboxesRequest) -> StreamPodSandboxesStream
                of StreamPodSandboxesResponse = "StreamPodSandboxes";
            stream_containers(StreamContainersRequest) -> StreamContainersStream
                of StreamContainersResponse = "StreamContainers";
            stream_container_stats(StreamContainerStatsRequest) -> StreamContainerStatsStream
                of StreamContainerStatsResponse = "StreamContainerStats";
            stream_pod_sandbox_stats(StreamPodSandboxStatsRequest) -> StreamPodSandboxStatsStream
                of StreamPodSandboxStatsResponse = "StreamPodSandboxStats";
            stream_pod_sandbox_metrics(StreamPodSandboxMetricsRequest) -> StreamPodSandboxMetricsStream
                of StreamPodSandboxMetricsResponse = "StreamPodSandboxMetrics";
        }
        streamed {
            get_container_events(GetEventsRequest) -> GetContainerEventsStream
                of ContainerEventResponse = "GetContainerEvents";
        }
        unimplemented {
            checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse = "CheckpointContainer";
        }
    }
}

service! {
    impl ImageService for Cri, handlers in image {
        unary {
            list_images(ListImagesRequest) -> ListImagesResponse = "ListImages";
            image_status(ImageStatusRequest) -> ImageStatusResponse = "ImageStatus";
            pull_image(PullImageRequest) -> PullImageResponse = "PullImage";
            remove_image(RemoveImageRequest) -> RemoveImageResponse = "RemoveImage";
            image_fs_info(ImageFsInfoRequest) -> ImageFsInfoResponse = "ImageFsInfo";
        }
        paged {
            stream_images(StreamImagesRequest) -> StreamImagesStream of StreamImagesResponse = "StreamImages";
        }
    }
}
