//! Server side of a SPDY/3.1 connection as used by Kubernetes streaming (exec, attach, port-forward).
//!
//! [`serve`] spawns a reader task (decodes frames, owns the stream table's incoming side) and a writer
//! task (owns the write half and the header compression context). Peer streams arrive on the returned
//! receiver, already answered with an empty SYN_REPLY.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::codec::{FrameReader, FrameWriter};
use super::frame::{self, Frame, FrameError};
use super::reader::{wait_for_end, End, ReadCtx};
pub use super::shared::Options;
use super::shared::{Entry, Shared, StreamState, WriteCmd};
use super::stream::Stream;

const CTRL_QUEUE: usize = 64;
const DATA_QUEUE: usize = 16;
const WRITE_BATCH: usize = 64 * 1024;
/// How long the end of a connection waits for queued frames and the GOAWAY to be written.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Controls a served connection.
#[derive(Clone)]
pub struct ConnHandle {
    shared: Arc<Shared>,
    ctrl_tx: mpsc::Sender<Frame>,
    closed_rx: watch::Receiver<bool>,
}

impl ConnHandle {
    /// Sends GOAWAY(OK): new streams are refused, and the connection ends once open streams are done.
    pub async fn goaway(&self) {
        let last_good_stream_id = {
            let mut t = self.shared.table();
            if t.goaway_sent {
                return;
            }
            t.goaway_sent = true;
            t.last_id
        };
        let _ = self
            .ctrl_tx
            .send(Frame::GoAway {
                last_good_stream_id,
                status: frame::GOAWAY_OK,
            })
            .await;
        self.shared.wake.notify_one();
    }

    /// Resolves when the connection has ended (tasks finished, streams closed).
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closed_rx.clone();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    pub fn is_closed(&self) -> bool {
        *self.closed_rx.borrow()
    }

    /// Streams not yet closed in both directions.
    pub fn open_streams(&self) -> usize {
        self.shared.table().streams.len()
    }

    /// Writes queued frames, sends GOAWAY, closes the socket (bounded by [`SHUTDOWN_GRACE`]) and waits
    /// for the connection to end.
    pub async fn shutdown(&self) {
        self.shared.shutdown_requested.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        self.closed().await;
    }
}

/// Serves the server side of SPDY/3.1 on an already-upgraded byte stream. Must be called within a
/// Tokio runtime.
pub fn serve<T>(io: T, opts: Options) -> (ConnHandle, mpsc::Receiver<Stream>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (ctrl_tx, ctrl_rx) = mpsc::channel(CTRL_QUEUE);
    let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
    let (streams_tx, streams_rx) = mpsc::channel(opts.max_streams.clamp(1, 64));
    let (closed_tx, closed_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new());
    let writer = tokio::spawn(writer_task(FrameWriter::new(wr), ctrl_rx, data_rx, shared.clone()));
    let handle = ConnHandle {
        shared: shared.clone(),
        ctrl_tx: ctrl_tx.clone(),
        closed_rx,
    };
    let ctx = ReadCtx {
        reader: FrameReader::new(rd),
        shared,
        opts,
        streams_tx,
        ctrl_tx,
        data_tx,
    };
    tokio::spawn(reader_task(ctx, writer, closed_tx));
    (handle, streams_rx)
}

async fn reader_task<R: AsyncRead + Unpin>(
    mut ctx: ReadCtx<R>,
    writer: JoinHandle<()>,
    closed_tx: watch::Sender<bool>,
) {
    let shared = ctx.shared.clone();
    let end = tokio::select! {
        biased;
        end = wait_for_end(&shared) => end,
        end = ctx.read_loop() => end,
    };
    match &end {
        End::Io(e) => tracing::debug!(error = %e, "SPDY connection ended by an I/O error"),
        End::Protocol(e) => tracing::warn!(error = %e, "SPDY protocol error; closing the connection"),
        other => tracing::debug!(end = ?other, "SPDY connection ending"),
    }
    let goaway = match &end {
        End::WriteFailed | End::Io(_) => None,
        End::Protocol(_) => Some(Some(frame::GOAWAY_PROTOCOL_ERROR)),
        End::Eof | End::GoAway => Some(None),
        End::Idle | End::Shutdown => Some(Some(frame::GOAWAY_OK)),
    };
    if let Some(goaway) = goaway {
        let (ack, done) = oneshot::channel();
        let data_tx = ctx.data_tx.clone();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async move {
            if data_tx.send(WriteCmd::Shutdown { goaway, ack }).await.is_ok() {
                let _ = done.await;
            }
        })
        .await;
    }
    writer.abort();
    let _ = writer.await;
    drop(ctx);
    shared.closed.store(true, Ordering::Release);
    let entries: Vec<Entry> = shared.table().streams.drain().map(|(_, e)| e).collect();
    for e in entries {
        e.state.notify.notify_waiters();
    }
    closed_tx.send_replace(true);
}

async fn writer_task<W: AsyncWrite + Unpin>(
    mut w: FrameWriter<W>,
    mut ctrl_rx: mpsc::Receiver<Frame>,
    mut data_rx: mpsc::Receiver<WriteCmd>,
    shared: Arc<Shared>,
) {
    if let Err(e) = write_loop(&mut w, &mut ctrl_rx, &mut data_rx, &shared).await {
        tracing::debug!(error = %e, "SPDY writer failed");
        shared.writer_failed.store(true, Ordering::Release);
        shared.wake.notify_one();
    }
}

enum Item {
    Ctrl(Frame),
    Cmd(WriteCmd),
}

async fn write_loop<W: AsyncWrite + Unpin>(
    w: &mut FrameWriter<W>,
    ctrl_rx: &mut mpsc::Receiver<Frame>,
    data_rx: &mut mpsc::Receiver<WriteCmd>,
    shared: &Shared,
) -> Result<(), FrameError> {
    let mut finished: Vec<(u32, Arc<StreamState>)> = Vec::new();
    loop {
        let mut next = tokio::select! {
            biased;
            Some(f) = ctrl_rx.recv() => Some(Item::Ctrl(f)),
            Some(c) = data_rx.recv() => Some(Item::Cmd(c)),
            else => return Ok(()),
        };
        while let Some(item) = next.take() {
            match item {
                Item::Ctrl(f) => w.encode(&f)?,
                Item::Cmd(WriteCmd::Data { id, state, data, fin }) => {
                    if !state.reset.load(Ordering::Acquire) {
                        w.encode(&Frame::Data {
                            stream_id: id,
                            fin,
                            data,
                        })?;
                        if fin {
                            state.local_closed.store(true, Ordering::Release);
                            finished.push((id, state));
                        }
                    }
                }
                Item::Cmd(WriteCmd::Shutdown { goaway, ack }) => {
                    let (last_good_stream_id, sent_before) = {
                        let mut t = shared.table();
                        (t.last_id, std::mem::replace(&mut t.goaway_sent, true))
                    };
                    if let (Some(status), false) = (goaway, sent_before) {
                        w.encode(&Frame::GoAway {
                            last_good_stream_id,
                            status,
                        })?;
                    }
                    w.shutdown().await?;
                    let _ = ack.send(());
                    return Ok(());
                }
            }
            if w.buffered() < WRITE_BATCH {
                next = match ctrl_rx.try_recv() {
                    Ok(f) => Some(Item::Ctrl(f)),
                    Err(_) => data_rx.try_recv().ok().map(Item::Cmd),
                };
            }
        }
        w.flush().await?;
        for (id, state) in finished.drain(..) {
            shared.finish_if_done(id, &state);
        }
    }
}
