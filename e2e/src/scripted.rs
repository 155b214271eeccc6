//! [`ScriptedRegistry`]: a fake registry that answers each path with exactly what the test
//! scripted (status, headers, body), to play a registry that lies: wrong Content-Length,
//! bodies that do not match their digest, endless manifests, redirects to other ports.
//!
//! `GET /v2/` answers 200; unscripted paths answer 404 with a registry error body. Every
//! request's path is recorded, [`ScriptedRegistry::require_auth`] adds a Basic challenge,
//! and the body bytes actually handed to the socket are counted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// What a scripted path sends as its body.
#[derive(Debug, Clone)]
pub enum Payload {
    /// These bytes, with their exact Content-Length (unless a header overrides it).
    Bytes(Vec<u8>),
    /// These bytes as a chunked body (no Content-Length, unless a header sets one).
    Chunked(Vec<u8>),
    /// `len` bytes of `byte`, generated 64 KiB at a time, chunked (no Content-Length,
    /// unless a header sets one).
    Repeat { byte: u8, len: u64 },
    /// A blob served with `Range` support: a request without a range gets the first `cut`
    /// bytes under the full Content-Length and then a dropped connection; a
    /// `Range: bytes=N-` request gets 206 with the rest (when `ranges` is set) or, when it
    /// is not, 200 with the whole blob.
    DropsAt { data: Vec<u8>, cut: u64, ranges: bool },
    /// The first `after` bytes under the full Content-Length, then silence: the connection
    /// stays open and nothing more is sent.
    StallsAt { data: Vec<u8>, after: u64 },
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Route {
    pub status: u16,
    /// Extra headers; a `content-length` here replaces the real one (a lie, possibly).
    pub headers: Vec<(String, String)>,
    pub payload: Payload,
}

impl Route {
    /// 200 with `body` and `content-type`.
    pub fn ok(content_type: &str, body: Vec<u8>) -> Route {
        Route {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            payload: Payload::Bytes(body),
        }
    }

    /// 307 to `location`.
    pub fn redirect(location: &str) -> Route {
        Route {
            status: 307,
            headers: vec![("location".into(), location.into())],
            payload: Payload::Bytes(Vec::new()),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    seen: Mutex<Vec<(String, Option<String>)>>,
    ranges: Mutex<Vec<(String, String)>>,
    sent: AtomicU64,
    require_auth: std::sync::atomic::AtomicBool,
}

/// The fake registry; stops when dropped.
pub struct ScriptedRegistry {
    addr: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ScriptedRegistry {
    /// Listens on a free loopback port (inside a Tokio runtime).
    pub fn start() -> ScriptedRegistry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let s = s.clone();
                        conns.spawn(async move {
                            let svc = hyper::service::service_fn(move |req| {
                                let s = s.clone();
                                async move { Ok::<_, Infallible>(answer(&s, req)) }
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
        ScriptedRegistry { addr, shared, task }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Scripts `path` (e.g. `/v2/e2e/app/manifests/1`).
    pub fn route(&self, path: &str, route: Route) {
        lock(&self.shared.routes).insert(path.into(), route);
    }

    /// Scripts `img` honestly under `repo:tag`: its manifest by tag and by digest (with
    /// its Docker-Content-Digest), its config and its layers, the first layer's body
    /// replaced by `first_layer` when given.
    pub fn serve_image(&self, repo: &str, tag: &str, img: &crate::image::BuiltImage, first_layer: Option<Payload>) {
        let m = Route::ok(img.manifest_media_type, img.manifest.clone())
            .header("docker-content-digest", &img.manifest_digest);
        self.route(&format!("/v2/{repo}/manifests/{tag}"), m.clone());
        self.route(&format!("/v2/{repo}/manifests/{}", img.manifest_digest), m);
        self.route(
            &format!("/v2/{repo}/blobs/{}", img.config_digest),
            Route::ok("application/octet-stream", img.config.clone()),
        );
        let mut first = first_layer;
        for l in &img.layers {
            let payload = first.take().unwrap_or_else(|| Payload::Bytes(l.blob.clone()));
            let route = Route {
                status: 200,
                headers: vec![("content-type".into(), "application/octet-stream".into())],
                payload,
            };
            self.route(&format!("/v2/{repo}/blobs/{}", l.digest), route);
        }
    }

    /// From now on, requests without an `Authorization` header get 401 with a Basic
    /// challenge (the value is not checked), so that clients send their credentials.
    pub fn require_auth(&self) {
        self.shared.require_auth.store(true, Ordering::Relaxed);
    }

    /// `(path, Authorization)` of every request so far.
    pub fn seen(&self) -> Vec<(String, Option<String>)> {
        lock(&self.shared.seen).clone()
    }

    /// `(path, Range)` of every request that carried a Range header.
    pub fn ranges_asked(&self) -> Vec<(String, String)> {
        lock(&self.shared.ranges).clone()
    }

    /// Body bytes handed to hyper so far (an upper bound of what the client read).
    pub fn bytes_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }
}

impl Drop for ScriptedRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(s: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let challenge = auth.is_none() && s.require_auth.load(Ordering::Relaxed);
    lock(&s.seen).push((path.clone(), auth));
    let range = req
        .headers()
        .get("range")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(r) = &range {
        lock(&s.ranges).push((path.clone(), r.clone()));
    }
    let route = lock(&s.routes).get(&path).cloned();
    let route = route.map(|r| ranged(r, range.as_deref()));
    let route = match route {
        _ if challenge => Route {
            status: 401,
            headers: vec![("www-authenticate".into(), "Basic realm=\"scripted\"".into())],
            payload: Payload::Bytes(br#"{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}"#.to_vec()),
        },
        Some(r) => r,
        None if path == "/v2/" || path == "/v2" => Route::ok("application/json", b"{}".to_vec()),
        None => Route {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            payload: Payload::Bytes(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#.to_vec()),
        },
    };
    let body: Body = match route.payload {
        Payload::Bytes(b) => Counted {
            left: vec![Bytes::from(b)],
            repeat: None,
            sized: true,
            end: Ends::Done,
            shared: s.clone(),
        }
        .boxed(),
        Payload::DropsAt { data, cut, .. } => Counted {
            left: vec![Bytes::from(data).slice(..cut as usize)],
            repeat: None,
            sized: false,
            end: Ends::Fails,
            shared: s.clone(),
        }
        .boxed(),
        Payload::StallsAt { data, after } => Counted {
            left: vec![Bytes::from(data).slice(..after as usize)],
            repeat: None,
            sized: false,
            end: Ends::Stalls,
            shared: s.clone(),
        }
        .boxed(),
        Payload::Chunked(b) => Counted {
            left: vec![Bytes::from(b)],
            repeat: None,
            sized: false,
            end: Ends::Done,
            shared: s.clone(),
        }
        .boxed(),
        Payload::Repeat { byte, len } => Counted {
            left: Vec::new(),
            repeat: Some((Bytes::from(vec![byte; 64 << 10]), len)),
            sized: false,
            end: Ends::Done,
            shared: s.clone(),
        }
        .boxed(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(route.status).expect("status code");
    for (k, v) in &route.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// A body that counts what it hands out; `sized` bodies give an exact size hint (so hyper
/// writes Content-Length unless a header says otherwise), the others none.
struct Counted {
    left: Vec<Bytes>,
    repeat: Option<(Bytes, u64)>,
    sized: bool,
    /// What follows the last byte.
    end: Ends,
    shared: Arc<Shared>,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = self.get_mut();
        let chunk = if let Some(b) = me.left.pop() {
            Some(b)
        } else if let Some((block, left)) = me.repeat.as_mut().filter(|(_, l)| *l > 0) {
            let n = (*left).min(block.len() as u64);
            *left -= n;
            Some(block.slice(..n as usize))
        } else {
            match me.end {
                Ends::Done => None,
                Ends::Fails => return Poll::Ready(Some(Err("scripted: connection dropped".into()))),
                Ends::Stalls => return Poll::Pending,
            }
        };
        Poll::Ready(chunk.map(|c| {
            me.shared.sent.fetch_add(c.len() as u64, Ordering::Relaxed);
            Ok(Frame::data(c))
        }))
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact(self.left.iter().map(|b| b.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

/// A route as it answers a request with this Range header: a `DropsAt` blob asked for a
/// range gets the rest of the blob (206) or all of it (200), a first request keeps its cut.
fn ranged(route: Route, range: Option<&str>) -> Route {
    let Payload::DropsAt { data, cut, ranges } = &route.payload else {
        return with_full_length(route);
    };
    let from = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match from {
        None => Route {
            headers: vec![("content-length".into(), data.len().to_string())],
            payload: Payload::DropsAt {
                data: data.clone(),
                cut: *cut,
                ranges: *ranges,
            },
            ..route
        },
        Some(n) if *ranges && n < data.len() => Route {
            status: 206,
            headers: vec![(
                "content-range".into(),
                format!("bytes {n}-{}/{}", data.len() - 1, data.len()),
            )],
            payload: Payload::Bytes(data[n..].to_vec()),
        },
        Some(_) => Route {
            status: 200,
            headers: vec![],
            payload: Payload::Bytes(data.clone()),
        },
    }
}

/// A `StallsAt` route announces the whole blob's length.
fn with_full_length(mut route: Route) -> Route {
    if let Payload::StallsAt { data, .. } = &route.payload {
        route.headers.push(("content-length".into(), data.len().to_string()));
    }
    route
}

/// How a body ends after its last byte: normally, with an error (hyper drops the
/// connection), or never (the connection stays open, silent).
enum Ends {
    Done,
    Fails,
    Stalls,
}
