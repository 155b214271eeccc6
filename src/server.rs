//! Serving the CRI, and Berth's own image API (`berth.v1.Images`), over a unix socket:
//! the socket is created with mode 0660 (parent directories made as needed, a stale socket
//! replaced, a live one refused), and SIGTERM/SIGINT stop the server gracefully.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_proto::image_service_server::ImageServiceServer;
use berth_proto::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::cri::Cri;

/// gRPC message limit: kubelet allows 16 MiB; big `ListContainers` answers need it.
const MAX_MESSAGE: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("socket {path}: {message}")]
    Socket { path: PathBuf, message: String },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

fn socket_err(path: &Path, message: impl ToString) -> ServeError {
    ServeError::Socket {
        path: path.into(),
        message: message.to_string(),
    }
}

/// Binds the socket. A leftover socket file from a dead berthd is removed; one that still
/// answers belongs to a running berthd and is an error.
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| socket_err(parent, e))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(socket_err(path, "another server is listening on it"));
        }
        std::fs::remove_file(path).map_err(|e| socket_err(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| socket_err(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| socket_err(path, e))?;
    Ok(listener)
}

/// Serves until `shutdown` resolves, then removes the socket.
pub async fn serve(
    listener: UnixListener,
    path: &Path,
    cri: Cri,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let runtime = RuntimeServiceServer::new(cri.clone())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let api = crate::api::Api::new(cri.daemon().images.clone()).server(MAX_MESSAGE);
    let d = cri.daemon();
    let container_api = crate::api::container_service::ContainerApi::new(d.clone()).server(MAX_MESSAGE);
    let volume_api =
        crate::api::volume_service::VolumeApi::new(d.volumes.clone(), d.containers.clone()).server(MAX_MESSAGE);
    let build_api = crate::api::build_service::BuildApi::new(d.builder.clone(), d.config.limits.max_layer_bytes)
        .server(MAX_MESSAGE);
    let images = ImageServiceServer::new(cri)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let result = tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(wire_errors_as_grpc_codes))
        .layer(tower::layer::layer_fn(Deadline))
        .add_service(runtime)
        .add_service(images)
        .add_service(api)
        .add_service(container_api)
        .add_service(volume_api)
        .add_service(build_api)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = std::fs::remove_file(path);
    Ok(result?)
}

/// tonic answers a request it cannot decode before any handler runs, as a trailers-only
/// response: over the message limit with OUT_OF_RANGE where gRPC (and kubelet's grpc-go) say
/// RESOURCE_EXHAUSTED, and garbled protobuf (bad UTF-8, truncated fields) with INTERNAL
/// where the fault is the caller's: INVALID_ARGUMENT. Those status headers are rewritten.
fn wire_errors_as_grpc_codes(
    mut response: tonic::codegen::http::Response<tonic::body::Body>,
) -> tonic::codegen::http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let message = headers.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("");
    let has = |text: &str| message.contains(text) || message.contains(&text.replace(' ', "%20"));
    let code = match headers.get("grpc-status").and_then(|s| s.to_str().ok()) {
        Some("11") if has("message length too large") => tonic::Code::ResourceExhausted,
        Some("13") if message.starts_with("failed") && has("failed to decode Protobuf message") => {
            tonic::Code::InvalidArgument
        }
        _ => return response,
    };
    if let Ok(v) = tonic::codegen::http::HeaderValue::from_str(&(code as i32).to_string()) {
        headers.insert("grpc-status", v);
    }
    response
}

/// A call's deadline (the client's `grpc-timeout`) that passes is DEADLINE_EXCEEDED, as the
/// gRPC spec and kubelet expect: tonic's own timer answers CANCELLED ("Timeout expired").
/// The deadline is taken when the call arrives, before tonic starts its timer, and this
/// layer sits inside tonic's, so it always answers first; the handler is dropped either way.
#[derive(Clone)]
struct Deadline<S>(S);

impl<S, B> tower::Service<tonic::codegen::http::Request<B>> for Deadline<S>
where
    S: tower::Service<tonic::codegen::http::Request<B>, Response = tonic::codegen::http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let budget = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(grpc_timeout);
        let deadline = budget.map(|d| tokio::time::Instant::now() + d);
        let call = self.0.call(req);
        Box::pin(async move {
            let (Some(deadline), Some(budget)) = (deadline, budget) else {
                return call.await;
            };
            match tokio::time::timeout_at(deadline, call).await {
                Ok(response) => response,
                Err(_) => Ok(
                    tonic::Status::deadline_exceeded(format!("the call's deadline ({budget:?}) passed")).into_http(),
                ),
            }
        })
    }
}

/// A `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop berthd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_after(code: &str, message: &str) -> String {
        let mut r = tonic::codegen::http::Response::new(tonic::body::Body::empty());
        r.headers_mut().insert("grpc-status", code.parse().expect("header"));
        r.headers_mut().insert("grpc-message", message.parse().expect("header"));
        let r = wire_errors_as_grpc_codes(r);
        r.headers()["grpc-status"].to_str().expect("ascii").to_string()
    }

    #[test]
    fn grpc_timeouts_parse() {
        use std::time::Duration;
        assert_eq!(grpc_timeout("1m"), Some(Duration::from_millis(1)));
        assert_eq!(grpc_timeout("999u"), Some(Duration::from_micros(999)));
        assert_eq!(grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "m", "12", "1x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_passed_deadline_is_deadline_exceeded() {
        use tower::{Service as _, ServiceExt as _};
        let slow = tower::service_fn(|_req: tonic::codegen::http::Request<()>| async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>(tonic::codegen::http::Response::new(tonic::body::Body::empty()))
        });
        let mut svc = Deadline(slow);
        let req = |timeout: Option<&str>| {
            let mut r = tonic::codegen::http::Request::new(());
            if let Some(t) = timeout {
                r.headers_mut().insert("grpc-timeout", t.parse().expect("header"));
            }
            r
        };
        let started = std::time::Instant::now();
        let response = svc
            .ready()
            .await
            .expect("ready")
            .call(req(Some("20m")))
            .await
            .expect("response");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let status = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        // Without a deadline the call runs to its end (cut short here by the test's own timer).
        let unbounded = svc.ready().await.expect("ready").call(req(None));
        assert!(tokio::time::timeout(std::time::Duration::from_millis(100), unbounded)
            .await
            .is_err());
    }

    #[test]
    fn decode_errors_get_the_callers_codes() {
        let too_large = "Error,%20decoded%20message%20length%20too%20large:%20found%2017825802%20bytes";
        assert_eq!(status_after("11", too_large), "8");
        assert_eq!(
            status_after("13", "failed%20to%20decode%20Protobuf%20message:%20invalid%20varint"),
            "3"
        );
        assert_eq!(status_after("13", "disk%20full"), "13");
        assert_eq!(status_after("11", "out%20of%20range"), "11");
    }
}
