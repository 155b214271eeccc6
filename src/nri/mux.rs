//! NRI's connection multiplexer: several logical byte streams over one unix stream.
//!
//! Every frame is an 8-byte header (connection id, payload length; both u32 big-endian)
//! and the payload. Connection 1 carries the `Plugin` service (the runtime is its client),
//! connection 2 the `Runtime` service (the runtime serves it); 0 is reserved. A logical
//! connection is a byte stream: a ttrpc message may span several frames (a peer may write
//! a message in pieces); Berth writes each message as one frame.

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The connection of the `Plugin` service (called by the runtime).
pub const PLUGIN_CONN: u32 = 1;
/// The connection of the `Runtime` service (served by the runtime).
pub const RUNTIME_CONN: u32 = 2;
/// Largest frame payload accepted or sent: one ttrpc message (10-byte header and at most
/// 4 MiB). A peer reads each frame whole into a buffer of that size.
pub const MAX_PAYLOAD: usize = 10 + (4 << 20);
const HEADER: usize = 8;

/// Sends payloads on the logical connections of one multiplexed stream. Cheap to clone.
#[derive(Clone)]
pub struct MuxSender {
    tx: mpsc::Sender<(u32, Bytes)>,
}

impl MuxSender {
    /// Queues `data` on connection `conn` (split into frames as needed). Fails once the
    /// stream is closed.
    pub async fn send(&self, conn: u32, data: Bytes) -> Result<(), &'static str> {
        let mut rest = data;
        loop {
            let chunk = rest.split_to(rest.len().min(MAX_PAYLOAD));
            self.tx.send((conn, chunk)).await.map_err(|_| "connection closed")?;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }
}

/// One multiplexed stream: the sender, the receivers of connections 1 and 2, and the tasks
/// that read and write the socket (aborted on drop).
pub struct Mux {
    pub sender: MuxSender,
    pub plugin_rx: mpsc::UnboundedReceiver<Bytes>,
    pub runtime_rx: mpsc::UnboundedReceiver<Bytes>,
    pub tasks: MuxTasks,
}

/// The socket tasks of a [`Mux`]; dropping this closes the stream.
pub struct MuxTasks {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl MuxTasks {
    /// Closes the stream now.
    pub fn close(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Drop for MuxTasks {
    fn drop(&mut self) {
        self.close();
    }
}

impl Mux {
    /// Starts multiplexing `stream` (must be called within a tokio runtime).
    pub fn new(stream: UnixStream) -> Mux {
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut wrx) = mpsc::channel::<(u32, Bytes)>(64);
        let (ptx, plugin_rx) = mpsc::unbounded_channel();
        let (rtx, runtime_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut header = [0u8; HEADER];
            loop {
                if rd.read_exact(&mut header).await.is_err() {
                    return;
                }
                let conn = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                if len > MAX_PAYLOAD {
                    tracing::warn!(conn, len, "NRI: frame too large, closing the connection");
                    return;
                }
                let mut buf = vec![0u8; len];
                if rd.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let target = match conn {
                    PLUGIN_CONN => &ptx,
                    RUNTIME_CONN => &rtx,
                    other => {
                        tracing::debug!(conn = other, "NRI: frame for an unknown connection dropped");
                        continue;
                    }
                };
                // A receiver gone means its side is shutting down: keep reading the others.
                let _ = target.send(Bytes::from(buf));
            }
        });
        let writer = tokio::spawn(async move {
            while let Some((conn, data)) = wrx.recv().await {
                let mut frame = Vec::with_capacity(HEADER + data.len());
                frame.extend_from_slice(&conn.to_be_bytes());
                frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
                frame.extend_from_slice(&data);
                if wr.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        Mux {
            sender: MuxSender { tx },
            plugin_rx,
            runtime_rx,
            tasks: MuxTasks { reader, writer },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_reach_their_connection_and_large_payloads_span_frames() {
        let (a, b) = UnixStream::pair().expect("pair");
        let ma = Mux::new(a);
        let mut mb = Mux::new(b);
        ma.sender
            .send(RUNTIME_CONN, Bytes::from_static(b"to-runtime"))
            .await
            .expect("send");
        ma.sender
            .send(PLUGIN_CONN, Bytes::from_static(b"to-plugin"))
            .await
            .expect("send");
        assert_eq!(mb.runtime_rx.recv().await.expect("runtime"), &b"to-runtime"[..]);
        assert_eq!(mb.plugin_rx.recv().await.expect("plugin"), &b"to-plugin"[..]);
        let big = Bytes::from(vec![7u8; MAX_PAYLOAD + 10]);
        ma.sender.send(PLUGIN_CONN, big).await.expect("send");
        let first = mb.plugin_rx.recv().await.expect("first");
        let second = mb.plugin_rx.recv().await.expect("second");
        assert_eq!((first.len(), second.len()), (MAX_PAYLOAD, 10));
        drop(ma);
        assert!(
            mb.plugin_rx.recv().await.is_none(),
            "closed stream ends the connections"
        );
    }
}
