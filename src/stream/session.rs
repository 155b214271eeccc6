//! One exec or attach session as the code that runs it sees it, whatever the transport:
//! the client's input streams, the output streams, terminal resizes and the error stream
//! that gets the final status.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::spdy;
use super::ws;

/// A terminal size from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u16,
    pub height: u16,
}

/// Which streams a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Bytes from the client; `None` once it closed the stream.
pub enum Input {
    /// The stream's writer is kept too: dropping it would half-close the stream from our
    /// side, which clients may take as the end of the stream.
    Spdy(spdy::StreamReader, spdy::StreamWriter),
    Chan(mpsc::Receiver<Bytes>),
}

impl Input {
    pub async fn read(&mut self) -> Option<Bytes> {
        match self {
            Input::Spdy(r, _) => r.read().await,
            Input::Chan(rx) => rx.recv().await,
        }
    }
}

/// Bytes to the client.
#[derive(Clone)]
pub enum Output {
    Spdy(spdy::StreamWriter),
    Ws {
        writer: ws::WsWriter,
        protocol: ws::channel::Protocol,
        channel: u8,
    },
}

impl Output {
    pub async fn write(&self, data: Bytes) -> io::Result<()> {
        match self {
            Output::Spdy(w) => w.write(data).await,
            Output::Ws {
                writer,
                protocol,
                channel,
            } => writer.send(ws::channel::encode(protocol, *channel, &data)).await,
        }
    }

    /// Ends this stream (SPDY: FIN; WebSocket channels end with the connection).
    pub async fn close(&self) {
        if let Output::Spdy(w) = self {
            w.close().await;
        }
    }
}

/// The connection a session runs on.
#[derive(Clone)]
pub enum Conn {
    Spdy(spdy::ConnHandle),
    Ws(ws::WsWriter),
}

impl Conn {
    /// Flushes what was written and closes the connection.
    pub async fn finish(&self) {
        match self {
            Conn::Spdy(c) => c.shutdown().await,
            Conn::Ws(w) => w.close(1000, "").await,
        }
    }
}

pub struct Session {
    /// Remote command protocol version: 1 (`channel.k8s.io`) to 5.
    pub version: u8,
    pub stdin: Option<Input>,
    pub stdout: Option<Output>,
    pub stderr: Option<Output>,
    pub resize: Option<mpsc::Receiver<Size>>,
    pub error: Option<Output>,
    pub conn: Conn,
    /// Resolves when the client's connection is gone.
    pub gone: mpsc::Receiver<()>,
    /// Set when stdin ended because the connection went away rather than because the
    /// client closed it (WebSocket sessions): a client that detaches leaves the
    /// container's stdin open.
    pub disconnected: Arc<AtomicBool>,
}

impl Session {
    /// Writes the final status on the error stream, ends every stream and the connection.
    pub async fn finish(self, outcome: &super::status::Outcome) {
        if let Some(err) = &self.error {
            let body = super::status::encode(outcome, self.version);
            if !body.is_empty() {
                let _ = err.write(Bytes::from(body)).await;
            }
        }
        for out in [&self.stdout, &self.stderr, &self.error].into_iter().flatten() {
            out.close().await;
        }
        self.conn.finish().await;
    }
}

/// Parses the resize stream: JSON objects `{"Width":W,"Height":H}`, back to back.
pub fn spawn_resize_parser(mut input: Input) -> mpsc::Receiver<Size> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = input.read().await {
            buf.extend_from_slice(&chunk);
            let mut consumed = 0;
            let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<serde_json::Value>();
            while let Some(Ok(v)) = stream.next() {
                consumed = stream.byte_offset();
                if let Some(size) = parse_size(&v) {
                    if tx.send(size).await.is_err() {
                        return;
                    }
                }
            }
            buf.drain(..consumed);
            if buf.len() > 64 * 1024 {
                return;
            }
        }
    });
    rx
}

pub fn parse_size(v: &serde_json::Value) -> Option<Size> {
    let dim = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_u64)
            .map(|n| n.min(u16::MAX as u64) as u16)
    };
    Some(Size {
        width: dim("Width")?,
        height: dim("Height")?,
    })
}

/// Collects the streams a SPDY exec/attach client opens (each tagged by its `streamType`
/// header) until every expected one is there.
pub async fn from_spdy(
    conn: spdy::ConnHandle,
    mut streams: mpsc::Receiver<spdy::Stream>,
    version: u8,
    want: Want,
    timeout: Duration,
) -> Result<Session, String> {
    let expected = 1
        + want.stdin as usize
        + want.stdout as usize
        + (want.stderr && !want.tty) as usize
        + (want.tty && version >= 3) as usize;
    let (mut stdin, mut stdout, mut stderr, mut resize, mut error) = (None, None, None, None, None);
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + timeout;
    while got < expected {
        let stream = match tokio::time::timeout_at(deadline, streams.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err("the client closed the connection before opening its streams".into()),
            Err(_) => {
                return Err(format!(
                    "timed out waiting for the client's streams ({got} of {expected})"
                ))
            }
        };
        let kind = stream.headers.get("streamtype").unwrap_or("").to_ascii_lowercase();
        let slot_taken = match kind.as_str() {
            "error" => error.replace(Output::Spdy(stream.writer)).is_some(),
            "stdin" => stdin.replace(Input::Spdy(stream.reader, stream.writer)).is_some(),
            "stdout" => stdout.replace(Output::Spdy(stream.writer)).is_some(),
            "stderr" => stderr.replace(Output::Spdy(stream.writer)).is_some(),
            "resize" => resize.replace(Input::Spdy(stream.reader, stream.writer)).is_some(),
            other => return Err(format!("unexpected stream type {other:?}")),
        };
        if slot_taken {
            return Err(format!("stream type {kind:?} opened twice"));
        }
        got += 1;
    }
    let (gone_tx, gone) = mpsc::channel(1);
    let watch = conn.clone();
    tokio::spawn(async move {
        // Later streams are not part of the session: refuse them, and notice the end.
        while let Some(extra) = streams.recv().await {
            extra.writer.reset(3).await;
        }
        watch.closed().await;
        let _ = gone_tx.send(()).await;
    });
    Ok(Session {
        version,
        stdin,
        stdout,
        stderr,
        resize: resize.map(spawn_resize_parser),
        error,
        conn: Conn::Spdy(conn),
        gone,
        disconnected: Arc::new(AtomicBool::new(false)),
    })
}

/// Builds a session on a WebSocket using the Kubernetes channel protocol: channel 0 stdin,
/// 1 stdout, 2 stderr, 3 error, 4 resize. As kubelet does, an empty message on the lowest
/// channel the server writes tells the client the session is up.
pub async fn from_ws(
    mut reader: ws::WsReader,
    writer: ws::WsWriter,
    protocol: ws::channel::Protocol,
    want: Want,
) -> Session {
    let out = |channel: u8| Output::Ws {
        writer: writer.clone(),
        protocol,
        channel,
    };
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<Size>(16);
    let (gone_tx, gone) = mpsc::channel(1);
    let demux_protocol = protocol;
    let disconnected = Arc::new(AtomicBool::new(false));
    let seen_disconnect = disconnected.clone();
    tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
        while let Some(Ok(message)) = reader.next().await {
            match ws::channel::decode(&demux_protocol, &message) {
                Ok(ws::channel::Inbound::Data { channel: 0, data }) => {
                    if let Some(tx) = &stdin_tx {
                        if tx.send(data).await.is_err() {
                            stdin_tx = None;
                        }
                    }
                }
                Ok(ws::channel::Inbound::Data { channel: 4, data }) => {
                    if let Some(size) = serde_json::from_slice(&data).ok().as_ref().and_then(parse_size) {
                        let _ = resize_tx.try_send(size);
                    }
                }
                Ok(ws::channel::Inbound::Close { channel: 0 }) => stdin_tx = None,
                _ => {}
            }
        }
        // Before stdin ends: whoever reads it to the end can tell a detach from a close.
        seen_disconnect.store(true, Ordering::SeqCst);
        drop(stdin_tx);
        let _ = gone_tx.send(()).await;
    });
    let version = protocol.version;
    let session = Session {
        version: version.max(1),
        stdin: want.stdin.then_some(Input::Chan(stdin_rx)),
        stdout: want.stdout.then(|| out(1)),
        stderr: (want.stderr && !want.tty).then(|| out(2)),
        resize: want.tty.then_some(resize_rx),
        error: Some(out(3)),
        conn: Conn::Ws(writer.clone()),
        gone,
        disconnected,
    };
    if let Some(first) = [&session.stdout, &session.stderr, &session.error]
        .into_iter()
        .flatten()
        .next()
    {
        let _ = first.write(Bytes::new()).await;
    }
    session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resize_objects_split_across_chunks() {
        let (tx, rx) = mpsc::channel(4);
        let mut sizes = spawn_resize_parser(Input::Chan(rx));
        tx.send(Bytes::from_static(b"{\"Width\":80,\"Hei")).await.expect("send");
        tx.send(Bytes::from_static(b"ght\":24}{\"Width\":100,\"Height\":30}"))
            .await
            .expect("send");
        assert_eq!(sizes.recv().await, Some(Size { width: 80, height: 24 }));
        assert_eq!(sizes.recv().await, Some(Size { width: 100, height: 30 }));
        drop(tx);
        assert_eq!(sizes.recv().await, None);
    }
}
