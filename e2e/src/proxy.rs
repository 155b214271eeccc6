//! HTTP/1.1 proxies in front of a registry, for failure and auth tests.
//!
//! Each listens on its own free `127.0.0.1` port, serves from a spawned Tokio task (so `start`
//! must be called inside a Tokio runtime) and stops when dropped. Requests are forwarded to the
//! upstream with their method, path, query and headers (less `Host` and hop-by-hop headers);
//! `Location` headers pointing at the upstream are rewritten to point at the proxy. Every proxy
//! records each request's path and `Authorization` header.
//!
//! - [`TamperProxy`]: corrupts blob downloads ([`Tamper`]).
//! - [`TokenAuthProxy`]: demands Bearer tokens from its own `/token` endpoint.
//! - [`RedirectProxy`]: answers blob GETs with a 307 to another host.
//! - [`RecordingProxy`]: forwards everything, only recording.
//! - [`SlowProxy`]: sends blob bodies slowly, so a pull stays in flight.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body type the proxies produce.
pub type ProxyBody = BoxBody<Bytes, BoxError>;
type BoxFuture = Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFuture + Send + Sync>;

const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// `(path, Authorization header)` of every request a proxy received, in order.
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<(String, Option<String>)>>,
}

impl Recorder {
    fn record(&self, req: &Request<Incoming>) {
        let auth = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        lock(&self.seen).push((req.uri().path().to_string(), auth));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The listening side shared by all proxies.
#[derive(Debug)]
struct Core {
    addr: String,
    rec: Arc<Recorder>,
    task: JoinHandle<()>,
}

impl Core {
    /// Binds a free loopback port, builds the handler (which gets the proxy's own address) and
    /// serves it. Panics outside a Tokio runtime.
    fn start(make: impl FnOnce(String, Arc<Recorder>) -> Handler) -> Core {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for a proxy");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr").to_string();
        let rec = Arc::new(Recorder::default());
        let handler = make(addr.clone(), rec.clone());
        let task = tokio::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("register listener with tokio");
            // Connections live in this set, so aborting the task ends them too.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let handler = handler.clone();
                        conns.spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                let fut = handler(req);
                                async move { Ok::<_, Infallible>(fut.await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Core { addr, rec, task }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.task.abort();
    }
}

macro_rules! proxy_common {
    ($t:ty) => {
        impl $t {
            /// `127.0.0.1:PORT`, to use as a registry host.
            pub fn addr(&self) -> String {
                self.core.addr.clone()
            }

            /// `http://127.0.0.1:PORT`.
            pub fn url(&self) -> String {
                format!("http://{}", self.core.addr)
            }

            /// How many requests it has received.
            pub fn requests(&self) -> usize {
                lock(&self.core.rec.seen).len()
            }

            /// `(path, Authorization header)` of every request received, in order.
            pub fn seen_auth(&self) -> Vec<(String, Option<String>)> {
                lock(&self.core.rec.seen).clone()
            }
        }
    };
}

/// How [`TamperProxy`] corrupts blob downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Invert the byte in the middle of the body; length unchanged.
    FlipByteInBlobs,
    /// Send only the first half of the body, with a Content-Length that matches it.
    TruncateBlobs,
    /// Declare the full Content-Length, send the first half, then close the connection.
    LieAboutLength,
}

/// Forwards to `upstream`, corrupting the body of every blob GET (`/v2/.../blobs/sha256:...`)
/// that answers 200 or 206. Manifests and everything else pass untouched.
#[derive(Debug)]
pub struct TamperProxy {
    core: Core,
}
proxy_common!(TamperProxy);

impl TamperProxy {
    /// Starts the proxy (inside a Tokio runtime).
    pub fn start(upstream: &str, mode: Tamper) -> TamperProxy {
        let upstream = upstream.to_string();
        let core = Core::start(move |me, rec| {
            let client = crate::http_client();
            Arc::new(move |req: Request<Incoming>| {
                rec.record(&req);
                let (client, upstream, me) = (client.clone(), upstream.clone(), me.clone());
                Box::pin(async move {
                    let blob_get = req.method() == Method::GET && is_blob_path(req.uri().path());
                    let resp = match forward(&client, &upstream, req).await {
                        Ok(r) => r,
                        Err(e) => return bad_gateway(e),
                    };
                    let status = resp.status().as_u16();
                    if !blob_get || !(status == 200 || status == 206) {
                        return passthrough(resp, &upstream, &me);
                    }
                    let status = resp.status();
                    let mut headers = resp.headers().clone();
                    strip_hop_by_hop(&mut headers);
                    let mut data = match resp.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => return bad_gateway(e.into()),
                    };
                    let full_len = data.len();
                    let body = match mode {
                        Tamper::FlipByteInBlobs => {
                            if let Some(b) = data.get_mut(full_len / 2) {
                                *b ^= 0xff;
                            }
                            full(data)
                        }
                        Tamper::TruncateBlobs => {
                            data.truncate(full_len / 2);
                            headers.insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
                            full(data)
                        }
                        Tamper::LieAboutLength => {
                            data.truncate(full_len / 2);
                            headers.insert(CONTENT_LENGTH, HeaderValue::from(full_len.max(1)));
                            // A body with no size hint: hyper trusts the header, and closes
                            // the connection when the body ends short of it.
                            UnsizedOnce(Some(Bytes::from(data))).boxed()
                        }
                    };
                    let mut out = Response::new(body);
                    *out.status_mut() = status;
                    *out.headers_mut() = headers;
                    out
                }) as BoxFuture
            }) as Handler
        });
        TamperProxy { core }
    }
}

/// A registry front demanding Bearer auth, with its own token endpoint `GET /token` that
/// takes HTTP Basic credentials (`POST /token`, the OAuth2 form, answers 405 so clients fall
/// back to GET). Any token it issued is valid for any request; valid requests go on to the
/// (open) upstream.
#[derive(Debug)]
pub struct TokenAuthProxy {
    core: Core,
    tokens: Arc<Mutex<HashSet<String>>>,
}
proxy_common!(TokenAuthProxy);

impl TokenAuthProxy {
    /// Starts the proxy (inside a Tokio runtime); `user`/`pass` are the only valid credentials.
    pub fn start(upstream: &str, user: &str, pass: &str) -> TokenAuthProxy {
        let upstream = upstream.to_string();
        let expected_basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let tokens: Arc<Mutex<HashSet<String>>> = Arc::default();
        let issued = tokens.clone();
        let core = Core::start(move |me, rec| {
            let client = crate::http_client();
            Arc::new(move |req: Request<Incoming>| {
                rec.record(&req);
                let (client, upstream, me) = (client.clone(), upstream.clone(), me.clone());
                let (issued, expected_basic) = (issued.clone(), expected_basic.clone());
                Box::pin(async move {
                    let path = req.uri().path().to_string();
                    let auth = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
                    if path == "/token" {
                        if req.method() != Method::GET {
                            // No OAuth2 POST flow: clients that try it first fall back to GET.
                            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET with Basic auth");
                        }
                        if auth != Some(expected_basic.as_str()) {
                            let mut r = text(StatusCode::UNAUTHORIZED, "bad credentials");
                            r.headers_mut()
                                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"token\""));
                            return r;
                        }
                        let token = {
                            let mut set = lock(&issued);
                            let t = format!("berth-test-token-{}", set.len() + 1);
                            set.insert(t.clone());
                            t
                        };
                        let body = serde_json::json!({
                            "token": token, "access_token": token, "expires_in": 300,
                            "issued_at": "2023-11-14T22:13:20Z",
                        });
                        let mut r = Response::new(full(body.to_string().into_bytes()));
                        r.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        return r;
                    }
                    if !path.starts_with("/v2") {
                        return text(StatusCode::NOT_FOUND, "not found");
                    }
                    let valid = auth
                        .and_then(|a| a.strip_prefix("Bearer "))
                        .is_some_and(|t| lock(&issued).contains(t));
                    if !valid {
                        let mut challenge = format!("Bearer realm=\"http://{me}/token\",service=\"test-registry\"");
                        if let Some(repo) = repo_of(&path) {
                            let action = if matches!(*req.method(), Method::GET | Method::HEAD) {
                                "pull"
                            } else {
                                "pull,push"
                            };
                            challenge.push_str(&format!(",scope=\"repository:{repo}:{action}\""));
                        }
                        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                        let mut r = Response::new(full(body.as_bytes().to_vec()));
                        *r.status_mut() = StatusCode::UNAUTHORIZED;
                        r.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        if let Ok(v) = HeaderValue::from_str(&challenge) {
                            r.headers_mut().insert(WWW_AUTHENTICATE, v);
                        }
                        return r;
                    }
                    match forward(&client, &upstream, req).await {
                        Ok(resp) => passthrough(resp, &upstream, &me),
                        Err(e) => bad_gateway(e),
                    }
                }) as BoxFuture
            }) as Handler
        });
        TokenAuthProxy { core, tokens }
    }

    /// How many tokens `/token` has issued.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.tokens).len()
    }
}

/// Answers blob GETs with `307 Location: http://<blob_host><same path and query>` and forwards
/// everything else to the upstream registry.
#[derive(Debug)]
pub struct RedirectProxy {
    core: Core,
}
proxy_common!(RedirectProxy);

impl RedirectProxy {
    /// Starts the proxy (inside a Tokio runtime).
    pub fn start(upstream_registry: &str, blob_host: &str) -> RedirectProxy {
        let upstream = upstream_registry.to_string();
        let blob_host = blob_host.to_string();
        let core = Core::start(move |me, rec| {
            let client = crate::http_client();
            Arc::new(move |req: Request<Incoming>| {
                rec.record(&req);
                let (client, upstream, me, blob_host) =
                    (client.clone(), upstream.clone(), me.clone(), blob_host.clone());
                Box::pin(async move {
                    if req.method() == Method::GET && is_blob_path(req.uri().path()) {
                        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                        let mut r = text(StatusCode::TEMPORARY_REDIRECT, "");
                        if let Ok(v) = HeaderValue::from_str(&format!("http://{blob_host}{pq}")) {
                            r.headers_mut().insert(LOCATION, v);
                        }
                        return r;
                    }
                    match forward(&client, &upstream, req).await {
                        Ok(resp) => passthrough(resp, &upstream, &me),
                        Err(e) => bad_gateway(e),
                    }
                }) as BoxFuture
            }) as Handler
        });
        RedirectProxy { core }
    }
}

/// Forwards everything to the upstream unchanged, recording each request's Authorization.
#[derive(Debug)]
pub struct RecordingProxy {
    core: Core,
}
proxy_common!(RecordingProxy);

impl RecordingProxy {
    /// Starts the proxy (inside a Tokio runtime).
    pub fn start(upstream: &str) -> RecordingProxy {
        let upstream = upstream.to_string();
        let core = Core::start(move |me, rec| {
            let client = crate::http_client();
            Arc::new(move |req: Request<Incoming>| {
                rec.record(&req);
                let (client, upstream, me) = (client.clone(), upstream.clone(), me.clone());
                Box::pin(async move {
                    match forward(&client, &upstream, req).await {
                        Ok(resp) => passthrough(resp, &upstream, &me),
                        Err(e) => bad_gateway(e),
                    }
                }) as BoxFuture
            }) as Handler
        });
        RecordingProxy { core }
    }
}

/// Forwards everything, but sends the body of every blob GET slowly: `chunk` bytes, then a
/// pause of `pause`, and so on. For pulls that must still be in flight when a test acts.
#[derive(Debug)]
pub struct SlowProxy {
    core: Core,
}
proxy_common!(SlowProxy);

impl SlowProxy {
    /// Starts the proxy (inside a Tokio runtime).
    pub fn start(upstream: &str, chunk: usize, pause: std::time::Duration) -> SlowProxy {
        let upstream = upstream.to_string();
        let chunk = chunk.max(1);
        let core = Core::start(move |me, rec| {
            let client = crate::http_client();
            Arc::new(move |req: Request<Incoming>| {
                rec.record(&req);
                let (client, upstream, me) = (client.clone(), upstream.clone(), me.clone());
                Box::pin(async move {
                    let blob_get = req.method() == Method::GET && is_blob_path(req.uri().path());
                    let mut resp = match forward(&client, &upstream, req).await {
                        Ok(r) => r,
                        Err(e) => return bad_gateway(e),
                    };
                    if !blob_get || resp.status() != StatusCode::OK {
                        return passthrough(resp, &upstream, &me);
                    }
                    let status = resp.status();
                    let mut headers = resp.headers().clone();
                    strip_hop_by_hop(&mut headers);
                    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
                    tokio::spawn(async move {
                        while let Ok(Some(mut data)) = resp.chunk().await {
                            while !data.is_empty() {
                                let piece = data.split_to(chunk.min(data.len()));
                                if tx.send(piece).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(pause).await;
                            }
                        }
                    });
                    let mut out = Response::new(ChannelBody(rx).boxed());
                    *out.status_mut() = status;
                    *out.headers_mut() = headers;
                    out
                }) as BoxFuture
            }) as Handler
        });
        SlowProxy { core }
    }
}

/// A body fed through a channel; it ends when the sender is dropped.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut().0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// `/v2/<name>/blobs/sha256:...` (not uploads).
fn is_blob_path(path: &str) -> bool {
    path.starts_with("/v2/") && path.contains("/blobs/sha256:")
}

/// The repository a `/v2/<name>/{manifests,blobs,tags}/...` path names.
fn repo_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|m| rest.rfind(m))
        .min()
        .map(|i| &rest[..i])
        .filter(|r| !r.is_empty())
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        h.remove(*name);
    }
}

/// Sends `req` to `http://<upstream><path?query>` with its method, headers and body.
async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    req: Request<Incoming>,
) -> Result<reqwest::Response, BoxError> {
    let (parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{upstream}{pq}");
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    let body = body.collect().await?.to_bytes();
    let resp = client
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await?;
    Ok(resp)
}

/// The upstream's response, streamed back, with `Location` rewritten to this proxy.
fn passthrough(resp: reqwest::Response, upstream: &str, me: &str) -> Response<ProxyBody> {
    let status = resp.status();
    let mut headers = resp.headers().clone();
    strip_hop_by_hop(&mut headers);
    let from = format!("http://{upstream}");
    if let Some(loc) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
        if let Some(rest) = loc.strip_prefix(&from) {
            if let Ok(v) = HeaderValue::from_str(&format!("http://{me}{rest}")) {
                headers.insert(LOCATION, v);
            }
        }
    }
    let body = reqwest::Body::from(resp).map_err(BoxError::from).boxed();
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn full(data: Vec<u8>) -> ProxyBody {
    Full::new(Bytes::from(data)).map_err(|never| match never {}).boxed()
}

fn text(status: StatusCode, msg: &str) -> Response<ProxyBody> {
    let mut r = Response::new(full(msg.as_bytes().to_vec()));
    *r.status_mut() = status;
    r
}

fn bad_gateway(e: BoxError) -> Response<ProxyBody> {
    text(StatusCode::BAD_GATEWAY, &format!("proxy: upstream failed: {e}"))
}

/// A body of one chunk that gives no size hint, so hyper keeps the Content-Length header we set.
struct UnsizedOnce(Option<Bytes>);

impl hyper::body::Body for UnsizedOnce {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().0.take().map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        assert_eq!(repo_of("/v2/a/b/manifests/latest"), Some("a/b"));
        assert_eq!(repo_of("/v2/lib/x/blobs/sha256:00"), Some("lib/x"));
        assert_eq!(repo_of("/v2/x/tags/list"), Some("x"));
        assert_eq!(repo_of("/v2/"), None);
        assert!(is_blob_path("/v2/a/blobs/sha256:abc"));
        assert!(!is_blob_path("/v2/a/blobs/uploads/"));
        assert!(!is_blob_path("/v2/a/manifests/sha256:abc"));
    }
}
