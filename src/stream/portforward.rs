//! Port-forward: TCP connections to ports on the pod's loopback, made from inside the
//! pod's network namespace, one per client stream pair (SPDY) or per port (WebSocket).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::session::{Input, Output};
use super::spdy;
use super::ws;

/// What a PortForward URL reaches.
#[derive(Debug, Clone)]
pub struct PortForwardRequest {
    pub sandbox_id: String,
    /// The pod's pinned network namespace; `None` for host-network pods.
    pub netns: Option<PathBuf>,
    /// Ports named in the CRI request (a WebSocket client may name them in the URL instead).
    pub ports: Vec<u16>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(req: &PortForwardRequest, port: u16) -> std::io::Result<TcpStream> {
    let std = match &req.netns {
        Some(ns) => crate::sys::ns::connect_loopback_in(ns, port, CONNECT_TIMEOUT).await?,
        None => {
            let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
            return tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?;
        }
    };
    std.set_nonblocking(true)?;
    TcpStream::from_std(std)
}

fn forward_error(req: &PortForwardRequest, port: u16, e: &std::io::Error) -> String {
    format!("error forwarding port {port} to pod {}: {e}", req.sandbox_id)
}

/// Copies between a TCP connection and a client stream until both directions ended.
async fn relay(tcp: TcpStream, mut input: Input, output: Output) {
    let (mut r, mut w) = tcp.into_split();
    let up = async {
        while let Some(chunk) = input.read().await {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if output.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
        output.close().await;
    };
    tokio::join!(up, down);
}

/// SPDY: the client opens an `error` and a `data` stream per connection, both with the
/// `port` and the same `requestID` header.
pub async fn serve_spdy(req: PortForwardRequest, conn: spdy::ConnHandle, mut streams: mpsc::Receiver<spdy::Stream>) {
    let mut pairs: HashMap<String, (Option<spdy::Stream>, Option<spdy::Stream>)> = HashMap::new();
    while let Some(stream) = streams.recv().await {
        let port = stream.headers.get("port").and_then(|p| p.trim().parse::<u16>().ok());
        let Some(port) = port.filter(|p| *p > 0) else {
            stream.writer.reset(1).await;
            continue;
        };
        let id = stream.headers.get("requestid").unwrap_or("").to_string();
        let kind = stream.headers.get("streamtype").unwrap_or("").to_ascii_lowercase();
        let entry = pairs.entry(format!("{id}/{port}")).or_default();
        let slot = match kind.as_str() {
            "data" => &mut entry.0,
            "error" => &mut entry.1,
            _ => {
                stream.writer.reset(1).await;
                continue;
            }
        };
        if slot.is_some() {
            stream.writer.reset(1).await;
            continue;
        }
        *slot = Some(stream);
        if let (Some(_), Some(_)) = (&entry.0, &entry.1) {
            let Some((Some(data), Some(error))) = pairs.remove(&format!("{id}/{port}")) else {
                continue;
            };
            let req = req.clone();
            tokio::spawn(async move {
                match connect(&req, port).await {
                    Ok(tcp) => {
                        relay(
                            tcp,
                            Input::Spdy(data.reader, data.writer.clone()),
                            Output::Spdy(data.writer),
                        )
                        .await
                    }
                    Err(e) => {
                        let _ = error.writer.write(Bytes::from(forward_error(&req, port, &e))).await;
                        data.writer.close().await;
                    }
                }
                error.writer.close().await;
            });
        }
    }
    conn.shutdown().await;
}

/// WebSocket: each requested port gets data channel 2i and error channel 2i+1; the first
/// message on each carries the port number (u16 little-endian).
pub async fn serve_ws(
    req: PortForwardRequest,
    ports: Vec<u16>,
    mut reader: ws::WsReader,
    writer: ws::WsWriter,
    protocol: ws::channel::Protocol,
) {
    let mut inputs: HashMap<u8, mpsc::Sender<Bytes>> = HashMap::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let out = |channel: u8| Output::Ws {
            writer: writer.clone(),
            protocol,
            channel,
        };
        let (data, error) = (out(data_ch), out(err_ch));
        let prefix = Bytes::copy_from_slice(&ws::channel::port_prefix(port));
        if data.write(prefix.clone()).await.is_err() || error.write(prefix).await.is_err() {
            return;
        }
        let (tx, rx) = mpsc::channel(16);
        inputs.insert(data_ch, tx);
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            match connect(&req, port).await {
                Ok(tcp) => relay(tcp, Input::Chan(rx), data).await,
                Err(e) => {
                    let _ = error.write(Bytes::from(forward_error(&req, port, &e))).await;
                }
            }
        }));
    }
    while let Some(Ok(message)) = reader.next().await {
        match ws::channel::decode(&protocol, &message) {
            Ok(ws::channel::Inbound::Data { channel, data }) => {
                // Skip the port prefix clients echo at the start of a data channel.
                if let Some(tx) = inputs.get(&channel) {
                    if tx.send(data).await.is_err() {
                        inputs.remove(&channel);
                    }
                }
            }
            Ok(ws::channel::Inbound::Close { channel }) => {
                inputs.remove(&channel);
            }
            Err(_) => break,
        }
    }
    // The client is gone: close every connection.
    inputs.clear();
    for t in tasks {
        t.abort();
    }
}
