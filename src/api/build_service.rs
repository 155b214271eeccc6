//! Berth's image builder (`berth.v1.Builds`). The edge only.

use std::sync::Arc;

use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::builds_server::{Builds as BuildsRpc, BuildsServer};
use tonic::{Request, Response, Status, Streaming};

use super::build_image;
use crate::build::Builder;
use crate::cri::instrument::call;
use crate::cri::BoxStream;

/// The service, over the daemon's builder.
#[derive(Clone)]
pub struct BuildApi {
    builder: Arc<Builder>,
    /// Most bytes a build context may unpack to.
    max_context: u64,
}

impl BuildApi {
    pub fn new(builder: Arc<Builder>, max_context: u64) -> BuildApi {
        BuildApi { builder, max_context }
    }

    /// The tonic service, with the same message limits as the CRI's.
    pub fn server(self, max_message: usize) -> BuildsServer<BuildApi> {
        BuildsServer::new(self)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message)
    }
}

#[tonic::async_trait]
impl BuildsRpc for BuildApi {
    type BuildStream = BoxStream<pb::BuildEvent>;

    async fn build(
        &self,
        request: Request<Streaming<pb::BuildRequest>>,
    ) -> Result<Response<Self::BuildStream>, Status> {
        call(
            "berth.Build",
            build_image::build(self.builder.clone(), self.max_context, request.into_inner()),
        )
        .await
    }
}
