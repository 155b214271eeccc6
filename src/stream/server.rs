//! The HTTP side: one URL per pending request (`/exec/TOKEN`, `/attach/TOKEN`,
//! `/portforward/TOKEN`), upgraded to SPDY/3.1 (`X-Stream-Protocol-Version` negotiation)
//! or WebSocket (`Sec-WebSocket-Protocol` negotiation).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::session::{self, Want};
use super::tokens::Tokens;
use super::{attach, exec, portforward, spdy, tunnel, ws, Pending};
use crate::config::Streaming;
use crate::container::lifecycle::Containers;

/// Remote command protocols over SPDY, in the server's order of preference.
const SPDY_EXEC_PROTOCOLS: [(&str, u8); 4] = [
    ("v4.channel.k8s.io", 4),
    ("v3.channel.k8s.io", 3),
    ("v2.channel.k8s.io", 2),
    ("channel.k8s.io", 1),
];
const SPDY_PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";

pub struct StreamServer {
    base_url: String,
    tokens: Tokens<Pending>,
}

struct Ctx {
    tokens: Arc<StreamServer>,
    containers: Arc<Containers>,
    sessions: Arc<Semaphore>,
    idle: Option<Duration>,
    creation_timeout: Duration,
}

type Body = Full<Bytes>;

fn reply(code: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

impl StreamServer {
    /// Binds the listener and serves in the background.
    pub async fn start(config: &Streaming, containers: Arc<Containers>) -> std::io::Result<Arc<StreamServer>> {
        let ip: std::net::IpAddr = config
            .address
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("streaming address: {e}")))?;
        let listener = TcpListener::bind(SocketAddr::new(ip, config.port)).await?;
        let local = listener.local_addr()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = Arc::new(StreamServer {
            base_url: format!("{scheme}://{local}"),
            tokens: Tokens::new(Duration::from_secs(config.token_ttl_secs)),
        });
        let ctx = Arc::new(Ctx {
            tokens: server.clone(),
            containers,
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            idle: (config.idle_timeout_secs > 0).then(|| Duration::from_secs(config.idle_timeout_secs)),
            creation_timeout: Duration::from_secs(config.stream_creation_timeout_secs),
        });
        tracing::info!(url = %server.base_url, "streaming server listening");
        tokio::spawn(accept_loop(listener, tls, ctx));
        Ok(server)
    }

    /// The URL for a pending request; `None` when too many wait for their client.
    pub fn url_for(&self, pending: Pending) -> Option<String> {
        let kind = pending.kind();
        let token = self.tokens.insert(pending)?;
        Some(format!("{}/{kind}/{token}", self.base_url))
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{}: {e}", what.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(cert, &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, ctx: Arc<Ctx>) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "streaming accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(ctx, req).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), svc).with_upgrades().await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                }
            }
        });
    }
}

fn header_values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

fn wants_upgrade_to(h: &HeaderMap, proto: &str) -> bool {
    header_values(h, "upgrade")
        .iter()
        .any(|v| v.eq_ignore_ascii_case(proto))
}

/// `?ports=80,8080` of a WebSocket port-forward URL.
fn query_ports(uri: &hyper::Uri) -> Vec<u16> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("ports="))
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

async fn handle(ctx: Arc<Ctx>, mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() {
        return reply(StatusCode::NOT_FOUND, "not found");
    }
    let Some(pending) = ctx.tokens.tokens.take(token) else {
        return reply(StatusCode::NOT_FOUND, "unknown or expired streaming token");
    };
    if pending.kind() != kind {
        return reply(StatusCode::NOT_FOUND, "unknown or expired streaming token");
    }
    let Ok(permit) = ctx.sessions.clone().try_acquire_owned() else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "too many streaming sessions");
    };
    let headers = req.headers().clone();
    if wants_upgrade_to(&headers, "websocket") {
        let Some(key) = headers.get("sec-websocket-key").and_then(|v| v.to_str().ok()) else {
            return reply(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        let offered = header_values(&headers, "sec-websocket-protocol").join(",");
        if kind == "portforward" && ws::choose_protocol(&offered, &[tunnel::PROTOCOL]).is_some() {
            let on_upgrade = hyper::upgrade::on(&mut req);
            let opts = ws_options(&ctx);
            let Pending::PortForward(pf) = pending else {
                return reply(StatusCode::NOT_FOUND, "unknown or expired streaming token");
            };
            tokio::spawn(async move {
                let _permit = permit;
                let Ok(upgraded) = on_upgrade.await else { return };
                let (reader, writer) = ws::conn::serve(TokioIo::new(upgraded), opts);
                let (conn, streams) = spdy::serve(tunnel::bridge(reader, writer), spdy_options(&ctx));
                portforward::serve_spdy(pf, conn, streams).await;
            });
            return switching_to_websocket(key, Some(tunnel::PROTOCOL));
        }
        let supported: &[&str] = if kind == "portforward" {
            ws::channel::PORTFORWARD_PROTOCOLS
        } else {
            ws::channel::EXEC_PROTOCOLS
        };
        let chosen = if offered.is_empty() {
            None
        } else {
            match ws::choose_protocol(&offered, supported) {
                Some(p) => Some(p.to_string()),
                None => return reply(StatusCode::BAD_REQUEST, "no supported WebSocket subprotocol offered"),
            }
        };
        let protocol = ws::channel::Protocol::parse(chosen.as_deref().unwrap_or("channel.k8s.io"))
            .unwrap_or_else(|| ws::channel::Protocol::parse("channel.k8s.io").expect("known protocol"));
        let ports = query_ports(req.uri());
        let on_upgrade = hyper::upgrade::on(&mut req);
        let opts = ws_options(&ctx);
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(upgraded) = on_upgrade.await else { return };
            let (reader, writer) = ws::conn::serve(TokioIo::new(upgraded), opts);
            run_ws(ctx, pending, reader, writer, protocol, ports).await;
        });
        return switching_to_websocket(key, chosen.as_deref());
    }
    if wants_upgrade_to(&headers, "SPDY/3.1") {
        let offered = header_values(&headers, "x-stream-protocol-version");
        let (chosen, version) = if kind == "portforward" {
            if !offered.is_empty() && !offered.contains(&SPDY_PORTFORWARD_PROTOCOL) {
                return reply(
                    StatusCode::FORBIDDEN,
                    "unsupported port-forward protocol; supported: portforward.k8s.io",
                );
            }
            (Some(SPDY_PORTFORWARD_PROTOCOL), 0)
        } else if offered.is_empty() {
            // A client from before protocol negotiation speaks version 1.
            (None, 1)
        } else {
            match SPDY_EXEC_PROTOCOLS.iter().find(|(p, _)| offered.contains(p)) {
                Some((p, v)) => (Some(*p), *v),
                None => {
                    let all: Vec<&str> = SPDY_EXEC_PROTOCOLS.iter().map(|(p, _)| *p).collect();
                    return reply(
                        StatusCode::FORBIDDEN,
                        &format!("unsupported streaming protocol; supported: {}", all.join(", ")),
                    );
                }
            }
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let opts = spdy_options(&ctx);
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(upgraded) = on_upgrade.await else { return };
            let (conn, streams) = spdy::serve(TokioIo::new(upgraded), opts);
            run_spdy(ctx, pending, conn, streams, version).await;
        });
        let mut r = reply(StatusCode::SWITCHING_PROTOCOLS, "");
        *r.body_mut() = Full::new(Bytes::new());
        let h = r.headers_mut();
        h.remove("content-type");
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
        if let Some(p) = chosen {
            h.insert("x-stream-protocol-version", HeaderValue::from_static(p));
        }
        return r;
    }
    reply(
        StatusCode::BAD_REQUEST,
        "this endpoint needs an upgrade to SPDY/3.1 or WebSocket",
    )
}

fn ws_options(ctx: &Ctx) -> ws::conn::Options {
    ws::conn::Options {
        max_message: 1 << 20,
        idle_timeout: ctx.idle,
        write_buffer: 16,
    }
}

fn spdy_options(ctx: &Ctx) -> spdy::Options {
    spdy::Options {
        max_streams: 64,
        idle_timeout: ctx.idle,
        stream_buffer: 16,
    }
}

fn switching_to_websocket(key: &str, protocol: Option<&str>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&ws::accept_key(key)) {
        h.insert("sec-websocket-accept", v);
    }
    if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert("sec-websocket-protocol", p);
    }
    r
}

fn want_of(pending: &Pending) -> Want {
    match pending {
        Pending::Exec(e) => Want {
            stdin: e.stdin,
            stdout: e.stdout,
            stderr: e.stderr,
            tty: e.tty,
        },
        Pending::Attach(a) => Want {
            stdin: a.stdin,
            stdout: a.stdout,
            stderr: a.stderr,
            tty: a.tty,
        },
        Pending::PortForward(_) => Want {
            stdin: false,
            stdout: false,
            stderr: false,
            tty: false,
        },
    }
}

async fn run_spdy(
    ctx: Arc<Ctx>,
    pending: Pending,
    conn: spdy::ConnHandle,
    streams: tokio::sync::mpsc::Receiver<spdy::Stream>,
    version: u8,
) {
    let want = want_of(&pending);
    match pending {
        Pending::PortForward(pf) => portforward::serve_spdy(pf, conn, streams).await,
        other => match session::from_spdy(conn.clone(), streams, version, want, ctx.creation_timeout).await {
            Err(e) => {
                tracing::info!(error = %e, "streaming session not established");
                conn.shutdown().await;
            }
            Ok(s) => run_session(ctx, other, s).await,
        },
    }
}

async fn run_ws(
    ctx: Arc<Ctx>,
    pending: Pending,
    reader: ws::conn::WsReader,
    writer: ws::conn::WsWriter,
    protocol: ws::channel::Protocol,
    query: Vec<u16>,
) {
    let want = want_of(&pending);
    match pending {
        Pending::PortForward(pf) => {
            let ports = if query.is_empty() { pf.ports.clone() } else { query };
            portforward::serve_ws(pf, ports, reader, writer, protocol).await
        }
        other => run_session(ctx, other, session::from_ws(reader, writer, protocol, want).await).await,
    }
}

async fn run_session(ctx: Arc<Ctx>, pending: Pending, s: session::Session) {
    match pending {
        Pending::Exec(e) => exec::run(ctx.containers.clone(), e, s).await,
        Pending::Attach(a) => attach::run(ctx.containers.clone(), a, s).await,
        Pending::PortForward(_) => {}
    }
}
