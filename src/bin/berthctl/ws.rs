//! A small WebSocket (RFC 6455) client for berthd's streaming server: the HTTP upgrade with
//! subprotocol negotiation, masked frames out, fragmented messages in, pings answered.
//! Frames are encoded and decoded with Berth's own codec (`berth::stream::ws::frame`).

use std::sync::Arc;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use berth::stream::ws::frame::{self, Frame, OpCode};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Mutex;

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 16 << 20;

/// A whole message from the server.
#[derive(Debug)]
pub enum Message {
    Binary(Bytes),
    Text,
    /// The server closed the connection (close frame or end of stream).
    Close,
}

struct WriteState {
    sock: OwnedWriteHalf,
    seed: u64,
}

/// The sending side; clones share the connection.
#[derive(Clone)]
pub struct WsWriter(Arc<Mutex<WriteState>>);

pub struct WsReader {
    sock: OwnedReadHalf,
    buf: BytesMut,
    writer: WsWriter,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b
}

impl WsWriter {
    async fn frame(&self, opcode: OpCode, payload: Bytes) -> std::io::Result<()> {
        let mut st = self.0.lock().await;
        // xorshift64 for the masking keys; RFC 6455 wants them unpredictable to proxies only.
        st.seed ^= st.seed << 13;
        st.seed ^= st.seed >> 7;
        st.seed ^= st.seed << 17;
        let mask = (st.seed as u32).to_le_bytes();
        let mut out = BytesMut::with_capacity(payload.len() + 14);
        frame::encode(&Frame::new(opcode, payload), Some(mask), &mut out);
        st.sock.write_all(&out).await?;
        st.sock.flush().await
    }

    pub async fn binary(&self, payload: impl Into<Bytes>) -> std::io::Result<()> {
        self.frame(OpCode::Binary, payload.into()).await
    }

    /// Sends a normal close (1000).
    pub async fn close(&self) -> std::io::Result<()> {
        self.frame(OpCode::Close, Bytes::from_static(&[0x03, 0xe8])).await
    }
}

impl WsReader {
    /// The next whole message.
    pub async fn next(&mut self) -> anyhow::Result<Message> {
        let mut partial: Option<(OpCode, BytesMut)> = None;
        loop {
            while let Some(f) = frame::decode(&mut self.buf, MAX_MESSAGE, false)? {
                match f.opcode {
                    OpCode::Ping => self.writer.frame(OpCode::Pong, f.payload).await?,
                    OpCode::Pong => {}
                    OpCode::Close => return Ok(Message::Close),
                    OpCode::Continuation => {
                        let Some((_, data)) = partial.as_mut() else {
                            bail!("websocket: continuation frame without a start");
                        };
                        data.extend_from_slice(&f.payload);
                        if data.len() > MAX_MESSAGE {
                            bail!("websocket: message larger than {MAX_MESSAGE} bytes");
                        }
                        if f.fin {
                            let (op, data) = partial.take().unwrap_or((OpCode::Binary, BytesMut::new()));
                            return Ok(whole(op, data.freeze()));
                        }
                    }
                    op if f.fin => return Ok(whole(op, f.payload)),
                    op => partial = Some((op, BytesMut::from(&f.payload[..]))),
                }
            }
            let n = self.sock.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Ok(Message::Close);
            }
        }
    }
}

fn whole(op: OpCode, data: Bytes) -> Message {
    if op == OpCode::Text {
        Message::Text
    } else {
        Message::Binary(data)
    }
}

/// `http://HOST:PORT/PATH?QUERY` → (`HOST:PORT`, `/PATH?QUERY`).
pub fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    if url.starts_with("https://") {
        bail!("the streaming server uses TLS ({url}); berthctl speaks plain HTTP to it only");
    }
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("unexpected streaming URL {url:?}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        bail!("unexpected streaming URL {url:?}");
    }
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

/// Opens a WebSocket to `url` offering `protocols`; returns the halves and the protocol
/// the server chose.
pub async fn connect(url: &str, protocols: &[&str]) -> anyhow::Result<(WsReader, WsWriter, String)> {
    let (host, path) = split_url(url)?;
    let mut sock = tokio::net::TcpStream::connect(&host)
        .await
        .with_context(|| format!("connecting to berthd's streaming server at {host}"))?;
    let key = base64::engine::general_purpose::STANDARD.encode(random_bytes::<16>());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
        protocols.join(", ")
    );
    sock.write_all(request.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            bail!("streaming server: response headers too long");
        }
        if sock.read_buf(&mut buf).await? == 0 {
            bail!("streaming server closed the connection during the upgrade");
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let _ = buf.split_to(end);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if code != "101" {
        // Show the server's reason: the body, as far as it arrived.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(300), sock.read_buf(&mut buf)).await;
        let body = String::from_utf8_lossy(&buf).trim().to_string();
        bail!("streaming server refused the session: {status_line} {body}");
    }
    if header("sec-websocket-accept").as_deref() != Some(berth::stream::ws::accept_key(&key).as_str()) {
        bail!("streaming server sent a wrong Sec-WebSocket-Accept");
    }
    let protocol = header("sec-websocket-protocol").unwrap_or_default();
    let (rd, wr) = sock.into_split();
    let seed = u64::from_le_bytes(random_bytes::<8>()) | 1;
    let writer = WsWriter(Arc::new(Mutex::new(WriteState { sock: wr, seed })));
    Ok((
        WsReader {
            sock: rd,
            buf,
            writer: writer.clone(),
        },
        writer,
        protocol,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:10010/exec/abc?x=1").unwrap(),
            ("127.0.0.1:10010".to_string(), "/exec/abc?x=1".to_string())
        );
        assert_eq!(split_url("http://node/a").unwrap().0, "node:80");
        assert_eq!(split_url("http://[::1]:99/a").unwrap().0, "[::1]:99");
        assert!(split_url("https://x/").unwrap_err().to_string().contains("TLS"));
        assert!(split_url("ftp://x/").is_err());
    }
}
