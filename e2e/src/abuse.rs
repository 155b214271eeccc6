//! [`Abuse`]: sends requests meant to be refused to berthd through berth-proto's stubs
//! (every CRI v1 RPC, the newer streaming ones included) and records each answer whose code
//! is not among the expected ones; after every call berthd must still answer `Version` and
//! be running.

use std::fmt::Debug;
use std::path::Path;

pub use berth_proto::v1 as pb;
use pb::image_service_client::ImageServiceClient;
use pb::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::Berthd;

/// 1 MiB of `a`: an id, name or path far beyond any sane length.
pub fn mib() -> String {
    "a".repeat(1 << 20)
}

/// A well-formed id that names nothing.
pub const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A unary channel to berthd's socket (no size limit on what the client sends).
pub async fn channel(socket: &Path) -> anyhow::Result<Channel> {
    let path = socket.to_path_buf();
    Ok(tonic::transport::Endpoint::try_from("http://berth.invalid")?
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await?)
}

/// Both services plus the list of unexpected answers.
pub struct Abuse {
    pub rt: RuntimeServiceClient<Channel>,
    pub im: ImageServiceClient<Channel>,
    pub unexpected: Vec<String>,
    pid: u32,
    calls: usize,
}

impl Abuse {
    pub async fn connect(berthd: &Berthd) -> Abuse {
        let ch = channel(berthd.socket()).await.expect("connect");
        Abuse {
            rt: RuntimeServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20),
            im: ImageServiceClient::new(ch).max_decoding_message_size(64 << 20),
            unexpected: Vec::new(),
            pid: berthd.pid().expect("berthd runs"),
            calls: 0,
        }
    }

    /// Records `what` unless its code is one of `want` (`Code::Ok` for success), then checks
    /// berthd is alive.
    pub async fn check<T: Debug>(&mut self, what: &str, r: Result<tonic::Response<T>, Status>, want: &[Code]) {
        self.calls += 1;
        let (code, msg) = match &r {
            Ok(_) => (Code::Ok, String::new()),
            Err(s) => (s.code(), s.message().chars().take(160).collect()),
        };
        if !want.contains(&code) {
            self.unexpected
                .push(format!("{what}: got {code:?} {msg:?}, want one of {want:?}"));
        } else if code != Code::Ok && msg.is_empty() {
            self.unexpected.push(format!("{what}: {code:?} without a message"));
        }
        self.alive(what).await;
    }

    /// Panics unless berthd's process runs and answers `Version`.
    pub async fn alive(&mut self, after: &str) {
        assert!(
            Path::new(&format!("/proc/{}", self.pid)).exists(),
            "berthd died after {after}"
        );
        self.rt
            .version(pb::VersionRequest { version: "v1".into() })
            .await
            .unwrap_or_else(|e| panic!("berthd stopped answering after {after}: {e:?}"));
    }

    /// Panics listing every unexpected answer.
    pub fn assert_all_expected(&self) {
        assert!(
            self.unexpected.is_empty(),
            "{} of {} abusive calls answered unexpectedly:\n{}",
            self.unexpected.len(),
            self.calls,
            self.unexpected.join("\n")
        );
    }
}

/// Request and response bodies as raw bytes, to send protobuf no stub would produce.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// Sends `body` as the request message of `method` (`/runtime.v1.RuntimeService/Version`).
pub async fn raw_unary(ch: Channel, method: &'static str, body: Vec<u8>) -> Result<tonic::Response<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    grpc.unary(tonic::Request::new(body), path, RawCodec).await
}
