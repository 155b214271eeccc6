//! SPDY tunnelled in WebSocket (`SPDY/3.1+portforward.k8s.io`, what newer kubectl and
//! crictl speak for port-forward over WebSocket): the SPDY bytes travel as binary
//! WebSocket messages. A byte pipe joins the two so the SPDY server runs unchanged.

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use super::ws;

/// The WebSocket subprotocol of the tunnel.
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// A byte stream whose reads are the client's binary messages and whose writes become
/// binary messages to it.
pub fn bridge(mut reader: ws::WsReader, writer: ws::WsWriter) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_pipe, mut to_pipe) = tokio::io::split(ours);
    tokio::spawn(async move {
        while let Some(Ok(message)) = reader.next().await {
            let data = match message {
                ws::Message::Binary(b) => b,
                ws::Message::Text(_) => break,
            };
            if to_pipe.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to_pipe.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer
                        .send(ws::Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        writer.close(ws::CLOSE_NORMAL, "").await;
    });
    theirs
}
