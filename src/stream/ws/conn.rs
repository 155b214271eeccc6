//! A WebSocket connection over an upgraded byte stream, server role.
//!
//! [`serve`] splits the stream. The write half goes to a spawned writer task
//! that takes encoded frames from a bounded queue, so a peer that stops reading
//! makes [`WsWriter::send`] wait instead of growing memory. The read half stays
//! in [`WsReader`], which decodes frames as [`WsReader::next`] is awaited,
//! reassembles fragmented messages, answers pings and closes, and enforces the
//! size limit and the idle timeout. Control replies (pong, close echo, error
//! closes) bypass the data queue: they are written right after the frame in
//! progress, so they never wait behind queued data.
//!
//! Lifetime: the writer task ends once a close frame is written, once the
//! reader has ended (close, EOF, error, idle timeout), on a write error, or
//! when the reader and every writer handle are dropped (it then sends close
//! 1000). Every step of ending is bounded by [`CLOSE_TIMEOUT`], so no task
//! outlives a dead peer; after it ends, `send` fails with `BrokenPipe`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::frame::{self, Frame, OpCode};
use super::{WsError, CLOSE_NORMAL};

/// Bound on each step of closing: writing the close frame, finishing a frame
/// already in progress, waiting for the peer's close reply, shutting the
/// stream down, and [`WsWriter::close`] waiting for room in the queue.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest frame payload and largest reassembled message accepted from the
    /// peer; more is answered with close 1009. Default 32 MiB, the default of
    /// the Go `x/net/websocket` server Kubernetes' `wsstream` uses.
    pub max_message: usize,
    /// End the connection (close 1001) when nothing has been received for this
    /// long. `None` (default) waits forever. (The kubelet uses 4 hours, and
    /// resets on writes too; client-go pings every 5 s, so receive-only is enough.)
    pub idle_timeout: Option<Duration>,
    /// Outgoing messages queued before `send` waits (minimum 1). Default 16.
    pub write_buffer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message: 32 << 20,
            idle_timeout: None,
            write_buffer: 16,
        }
    }
}

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Bytes),
}

/// Priority requests from the reader (or a stuck `close`) to the writer task.
#[derive(Default)]
struct Ctrl {
    pong: Option<Bytes>,
    close: Option<Bytes>,
    end: bool,
}

struct Shared {
    ctrl: Mutex<Ctrl>,
    wake: Notify,
    /// Becomes true once the writer has sent its close frame or stopped.
    stopped: watch::Sender<bool>,
    closing: AtomicBool,
}

impl Shared {
    fn ctrl(&self) -> MutexGuard<'_, Ctrl> {
        self.ctrl.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pong(&self, payload: Bytes) {
        // RFC 6455 5.5.3: answering only the latest of several pings is allowed.
        self.ctrl().pong = Some(payload);
        self.wake.notify_one();
    }

    /// Close frame (or, with `None`, just the end) ahead of any queued data.
    fn close_now(&self, payload: Option<Bytes>) {
        self.closing.store(true, Ordering::Release);
        {
            let mut c = self.ctrl();
            match payload {
                Some(p) if c.close.is_none() => c.close = Some(p),
                Some(_) => {}
                None => c.end = true,
            }
        }
        self.wake.notify_one();
    }

    fn ending(&self) -> bool {
        let c = self.ctrl();
        c.close.is_some() || c.end
    }
}

enum Cmd {
    Data(Bytes),
    Close(Bytes),
}

fn encode_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 10);
    frame::encode_header(&mut b, true, opcode, payload.len(), None);
    b.extend_from_slice(payload);
    b.freeze()
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "websocket connection closed")
}

/// Starts serving a WebSocket connection over an upgraded stream. Must be
/// called inside a Tokio runtime (it spawns the writer task).
pub fn serve<T>(io: T, opts: Options) -> (WsReader, WsWriter)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(io);
    let (tx, rx) = mpsc::channel(opts.write_buffer.max(1));
    let (stopped, stopped_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        ctrl: Mutex::new(Ctrl::default()),
        wake: Notify::new(),
        stopped,
        closing: AtomicBool::new(false),
    });
    tokio::spawn(write_loop(write_half, rx, shared.clone()));
    let reader = WsReader {
        io: Box::new(read_half),
        buf: BytesMut::with_capacity(8192),
        shared: shared.clone(),
        stopped: stopped_rx,
        _keep_writer: tx.clone(),
        max: opts.max_message,
        idle: opts.idle_timeout,
        last_rx: Instant::now(),
        partial: None,
        done: false,
    };
    (reader, WsWriter { tx, shared })
}

/// Writes `buf`; if an end is requested meanwhile, finishes it within
/// [`CLOSE_TIMEOUT`]. `false` when the stream failed or is mid-frame.
async fn write_frame<W: AsyncWrite + Unpin>(io: &mut W, buf: &[u8], shared: &Shared) -> bool {
    let fut = async {
        io.write_all(buf).await?;
        io.flush().await
    };
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return r.is_ok(),
            _ = shared.wake.notified() => {
                if shared.ending() {
                    return matches!(timeout(CLOSE_TIMEOUT, &mut fut).await, Ok(Ok(())));
                }
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut io: W, mut rx: mpsc::Receiver<Cmd>, shared: Arc<Shared>) {
    let mut close = None;
    loop {
        let (pong, ctrl_close, end) = {
            let mut c = shared.ctrl();
            (c.pong.take(), c.close.take(), c.end)
        };
        if let Some(p) = pong {
            if !write_frame(&mut io, &encode_frame(OpCode::Pong, &p), &shared).await {
                break;
            }
        }
        if ctrl_close.is_some() {
            close = ctrl_close;
            break;
        }
        if end {
            break;
        }
        tokio::select! {
            biased;
            _ = shared.wake.notified() => {}
            cmd = rx.recv() => match cmd {
                Some(Cmd::Data(buf)) => {
                    if !write_frame(&mut io, &buf, &shared).await {
                        break;
                    }
                }
                Some(Cmd::Close(p)) => {
                    close = Some(p);
                    break;
                }
                None => {
                    close = Some(frame::close_payload(CLOSE_NORMAL, ""));
                    break;
                }
            }
        }
    }
    shared.closing.store(true, Ordering::Release);
    rx.close();
    drop(rx);
    if let Some(p) = close {
        let buf = encode_frame(OpCode::Close, &p);
        let _ = timeout(CLOSE_TIMEOUT, async {
            io.write_all(&buf).await?;
            io.flush().await
        })
        .await;
    }
    shared.stopped.send_replace(true);
    let _ = timeout(CLOSE_TIMEOUT, io.shutdown()).await;
    tracing::trace!("websocket writer finished");
}

/// Sending side; cheap to clone, all clones share one queue.
#[derive(Clone)]
pub struct WsWriter {
    tx: mpsc::Sender<Cmd>,
    shared: Arc<Shared>,
}

impl WsWriter {
    /// Queues a message (one unfragmented frame). Waits while the queue is
    /// full; fails with `BrokenPipe` once the connection is closing or closed.
    pub async fn send(&self, m: Message) -> io::Result<()> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let buf = match &m {
            Message::Text(s) => encode_frame(OpCode::Text, s.as_bytes()),
            Message::Binary(b) => encode_frame(OpCode::Binary, b),
        };
        self.tx.send(Cmd::Data(buf)).await.map_err(|_| closed_error())
    }

    /// Starts the closing handshake: the close frame follows the messages
    /// already queued (it jumps the queue if that stays full for
    /// [`CLOSE_TIMEOUT`]) and later sends fail. Returns once the close frame is
    /// written or the connection is gone (at most about 2 x [`CLOSE_TIMEOUT`]).
    /// The reader ends when the peer's close arrives, or [`CLOSE_TIMEOUT`] later.
    pub async fn close(&self, code: u16, reason: &str) {
        if !self.shared.closing.swap(true, Ordering::AcqRel) {
            let payload = frame::close_payload(code, reason);
            if timeout(CLOSE_TIMEOUT, self.tx.send(Cmd::Close(payload.clone())))
                .await
                .is_err()
            {
                self.shared.close_now(Some(payload));
            }
        }
        let mut stopped = self.shared.stopped.subscribe();
        let _ = timeout(CLOSE_TIMEOUT, stopped.wait_for(|s| *s)).await;
    }

    /// Whether the writer task has stopped taking messages.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Receiving side. Pings are answered and closes echoed only while `next` is
/// being awaited, so keep calling it for the life of the connection.
pub struct WsReader {
    io: Box<dyn AsyncRead + Send + Unpin>,
    buf: BytesMut,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
    /// Keeps the writer task alive (for pongs and close echoes) while the reader exists.
    _keep_writer: mpsc::Sender<Cmd>,
    max: usize,
    idle: Option<Duration>,
    last_rx: Instant,
    partial: Option<(OpCode, BytesMut)>,
    done: bool,
}

enum Fill {
    Data,
    End,
    Idle,
    Failed(io::Error),
}

impl WsReader {
    /// The next complete message. `None` after a close handshake, EOF, or our
    /// own close going unanswered; `Some(Err(_))` once for a protocol error,
    /// oversized message, invalid UTF-8, idle timeout or read error (the peer
    /// gets the matching close code), then `None`.
    pub async fn next(&mut self) -> Option<Result<Message, WsError>> {
        while !self.done {
            let frame = match frame::decode(&mut self.buf, self.max, true) {
                Ok(Some(f)) => f,
                Ok(None) => match self.fill().await {
                    Fill::Data => continue,
                    Fill::End => {
                        self.finish(None);
                        return None;
                    }
                    Fill::Idle => return Some(Err(self.fail(WsError::IdleTimeout))),
                    Fill::Failed(e) => return Some(Err(self.fail(WsError::Io(e)))),
                },
                Err(e) => return Some(Err(self.fail(e))),
            };
            match self.on_frame(frame) {
                Ok(Some(m)) => return Some(Ok(m)),
                Ok(None) => {}
                Err(e) => return Some(Err(self.fail(e))),
            }
        }
        None
    }

    async fn fill(&mut self) -> Fill {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(8192);
        }
        let idle_at = self.idle.map(|d| self.last_rx + d);
        let stopped = &mut self.stopped;
        let closing = async move {
            let _ = stopped.wait_for(|s| *s).await;
            sleep(CLOSE_TIMEOUT).await;
        };
        let idle = async move {
            match idle_at {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let res = tokio::select! {
            biased;
            r = self.io.read_buf(&mut self.buf) => match r {
                Ok(0) => Fill::End,
                Ok(_) => Fill::Data,
                Err(e) => Fill::Failed(e),
            },
            _ = idle => Fill::Idle,
            _ = closing => Fill::End,
        };
        if matches!(res, Fill::Data) {
            self.last_rx = Instant::now();
        }
        res
    }

    fn on_frame(&mut self, f: Frame) -> Result<Option<Message>, WsError> {
        match f.opcode {
            OpCode::Ping => {
                self.shared.pong(f.payload);
                Ok(None)
            }
            OpCode::Pong => Ok(None),
            OpCode::Close => {
                let echo = match frame::parse_close(&f.payload)? {
                    Some((code, _reason)) => frame::close_payload(code, ""),
                    None => Bytes::new(),
                };
                self.finish(Some(echo));
                Ok(None)
            }
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    return Err(WsError::Protocol("new message before the fragmented one finished"));
                }
                if f.fin {
                    return complete(f.opcode, f.payload).map(Some);
                }
                self.partial = Some((f.opcode, BytesMut::from(&f.payload[..])));
                Ok(None)
            }
            OpCode::Continuation => {
                let (op, mut acc) = self
                    .partial
                    .take()
                    .ok_or(WsError::Protocol("continuation without a message"))?;
                if acc.len() + f.payload.len() > self.max {
                    return Err(WsError::TooBig(self.max));
                }
                acc.extend_from_slice(&f.payload);
                if f.fin {
                    return complete(op, acc.freeze()).map(Some);
                }
                self.partial = Some((op, acc));
                Ok(None)
            }
        }
    }

    fn finish(&mut self, close: Option<Bytes>) {
        self.done = true;
        self.partial = None;
        self.shared.close_now(close);
    }

    fn fail(&mut self, e: WsError) -> WsError {
        tracing::debug!(error = %e, "websocket connection failed");
        let close = e.close_code().map(|code| frame::close_payload(code, &e.to_string()));
        self.finish(close);
        e
    }
}

fn complete(op: OpCode, data: Bytes) -> Result<Message, WsError> {
    if op == OpCode::Text {
        let text = std::str::from_utf8(&data).map_err(|_| WsError::InvalidUtf8)?;
        Ok(Message::Text(text.to_string()))
    } else {
        Ok(Message::Binary(data))
    }
}
