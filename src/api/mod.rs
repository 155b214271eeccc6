//! Berth's own API, served on the CRI socket: images (`berth.v1.Images`: pull with
//! progress, tag, history, archive export/import and login checks) and containers
//! (`berth.v1.Containers`: restart, copies in and out) and volumes (`berth.v1.Volumes`). Like `cri/`, this is
//! only the edge: one file per RPC, wire types converted to the domain types of
//! `image/` at once, and errors mapped to gRPC codes by `crate::error` alone.

pub mod build_image;
pub mod build_service;
pub mod check_login;
pub mod chunks;
pub mod commit_container;
pub mod container_service;
pub mod convert;
pub mod convert_image;
pub mod copy_from_container;
pub mod copy_to_container;
pub mod exec_container;
pub mod export_image;
pub mod image_history;
pub mod import_image;
pub mod list_volumes;
pub mod prune_volumes;
pub mod pull_image;
pub mod push_image;
pub mod remove_volume;
pub mod restart_container;
pub mod stat_container_path;
pub mod tag_image;
pub mod volume_service;

use std::sync::Arc;

use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_server::{Images as ImagesRpc, ImagesServer};
use tonic::{Request, Response, Status, Streaming};

use crate::cri::instrument::call;
use crate::cri::BoxStream;
use crate::error::Error;
use crate::image::Images;

/// The service, over the daemon's image store.
#[derive(Clone)]
pub struct Api {
    images: Arc<Images>,
}

impl Api {
    pub fn new(images: Arc<Images>) -> Api {
        Api { images }
    }

    /// The tonic service, with the same message limits as the CRI's.
    pub fn server(self, max_message: usize) -> ImagesServer<Api> {
        ImagesServer::new(self)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message)
    }
}

/// Starts a streaming RPC: a failure before the first message is the call's status.
async fn streaming<T>(
    rpc: &'static str,
    handler: impl std::future::Future<Output = Result<BoxStream<T>, Error>>,
) -> Result<Response<BoxStream<T>>, Status> {
    call(rpc, handler).await
}

#[tonic::async_trait]
impl ImagesRpc for Api {
    type PullImageStream = BoxStream<pb::PullImageEvent>;
    type PushImageStream = BoxStream<pb::PushImageEvent>;
    type ExportImageStream = BoxStream<pb::ExportImageChunk>;

    async fn pull_image(
        &self,
        request: Request<pb::PullImageRequest>,
    ) -> Result<Response<Self::PullImageStream>, Status> {
        streaming(
            "berth.PullImage",
            pull_image::pull_image(self.images.clone(), request.into_inner()),
        )
        .await
    }

    async fn push_image(
        &self,
        request: Request<pb::PushImageRequest>,
    ) -> Result<Response<Self::PushImageStream>, Status> {
        streaming(
            "berth.PushImage",
            push_image::push_image(self.images.clone(), request.into_inner()),
        )
        .await
    }

    async fn tag_image(&self, request: Request<pb::TagImageRequest>) -> Result<Response<pb::TagImageResponse>, Status> {
        call(
            "berth.TagImage",
            tag_image::tag_image(&self.images, request.into_inner()),
        )
        .await
    }

    async fn convert_image(
        &self,
        request: Request<pb::ConvertImageRequest>,
    ) -> Result<Response<pb::ConvertImageResponse>, Status> {
        call(
            "berth.ConvertImage",
            convert_image::convert_image(&self.images, request.into_inner()),
        )
        .await
    }

    async fn image_history(
        &self,
        request: Request<pb::ImageHistoryRequest>,
    ) -> Result<Response<pb::ImageHistoryResponse>, Status> {
        call(
            "berth.ImageHistory",
            image_history::image_history(&self.images, request.into_inner()),
        )
        .await
    }

    async fn export_image(
        &self,
        request: Request<pb::ExportImageRequest>,
    ) -> Result<Response<Self::ExportImageStream>, Status> {
        streaming(
            "berth.ExportImage",
            export_image::export_image(self.images.clone(), request.into_inner()),
        )
        .await
    }

    async fn import_image(
        &self,
        request: Request<Streaming<pb::ImportImageChunk>>,
    ) -> Result<Response<pb::ImportImageResponse>, Status> {
        call(
            "berth.ImportImage",
            import_image::import_image(&self.images, request.into_inner()),
        )
        .await
    }

    async fn check_login(
        &self,
        request: Request<pb::CheckLoginRequest>,
    ) -> Result<Response<pb::CheckLoginResponse>, Status> {
        call(
            "berth.CheckLogin",
            check_login::check_login(&self.images, request.into_inner()),
        )
        .await
    }
}
