//! Streams opened by the peer: the application-facing reader and writer halves.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::frame::Frame;
use super::header::Headers;
use super::shared::{Shared, StreamState, WriteCmd};

/// Largest DATA payload this side sends; longer writes are split.
pub const MAX_DATA_FRAME: usize = 32 * 1024;
/// SPDY/3 initial per-stream window; received data is acknowledged with WINDOW_UPDATE at half of it.
pub const INITIAL_WINDOW: u32 = 64 * 1024;
pub(super) const WINDOW_UPDATE_AT: u32 = INITIAL_WINDOW / 2;

/// A stream opened by the peer.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    pub reader: StreamReader,
    pub writer: StreamWriter,
}

/// Receives DATA the peer sent on one stream.
pub struct StreamReader {
    id: u32,
    rx: mpsc::Receiver<Bytes>,
    state: Arc<StreamState>,
    ctrl_tx: mpsc::Sender<Frame>,
    unacked: u32,
}

impl StreamReader {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Next chunk; `None` after the peer's FIN (once buffered data is read), its RST, or connection end.
    pub async fn read(&mut self) -> Option<Bytes> {
        if self.state.reset.load(Ordering::Acquire) {
            return None;
        }
        let data = self.rx.recv().await?;
        if self.state.reset.load(Ordering::Acquire) {
            return None;
        }
        self.unacked = self.unacked.saturating_add(data.len() as u32);
        if self.unacked >= WINDOW_UPDATE_AT && !self.state.remote_closed.load(Ordering::Acquire) {
            let delta = std::mem::take(&mut self.unacked);
            let _ = self
                .ctrl_tx
                .send(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta,
                })
                .await;
        }
        Some(data)
    }
}

/// Sends DATA on one stream. Clones share the stream; when the last clone is dropped without
/// `close` or `reset`, a FIN is sent for it.
#[derive(Clone)]
pub struct StreamWriter {
    inner: Arc<WriterInner>,
}

struct WriterInner {
    id: u32,
    state: Arc<StreamState>,
    shared: Arc<Shared>,
    data_tx: mpsc::Sender<WriteCmd>,
    ctrl_tx: mpsc::Sender<Frame>,
}

impl Stream {
    pub(super) fn new(
        id: u32,
        headers: Headers,
        state: Arc<StreamState>,
        rx: mpsc::Receiver<Bytes>,
        shared: Arc<Shared>,
        data_tx: mpsc::Sender<WriteCmd>,
        ctrl_tx: mpsc::Sender<Frame>,
    ) -> Self {
        let reader = StreamReader {
            id,
            rx,
            state: state.clone(),
            ctrl_tx: ctrl_tx.clone(),
            unacked: 0,
        };
        let inner = WriterInner {
            id,
            state,
            shared,
            data_tx,
            ctrl_tx,
        };
        Stream {
            id,
            headers,
            reader,
            writer: StreamWriter { inner: Arc::new(inner) },
        }
    }
}

impl StreamWriter {
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    fn check(&self) -> io::Result<()> {
        let st = &self.inner.state;
        if st.reset.load(Ordering::Acquire) {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "stream was reset"))
        } else if self.inner.shared.closed.load(Ordering::Acquire) {
            Err(io::Error::new(io::ErrorKind::NotConnected, "connection closed"))
        } else if st.fin_requested.load(Ordering::Acquire) {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream closed for writing"))
        } else {
            Ok(())
        }
    }

    /// Queues `data` in frames of at most 32 KiB. Waits while the write queue is full (the peer is
    /// not reading); fails after a reset, a close, or the end of the connection.
    pub async fn write(&self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            self.check()?;
            let chunk = data.split_to(data.len().min(MAX_DATA_FRAME));
            let cmd = WriteCmd::Data {
                id: self.inner.id,
                state: self.inner.state.clone(),
                data: chunk,
                fin: false,
            };
            if self.inner.data_tx.send(cmd).await.is_err() {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "connection closed"));
            }
        }
        Ok(())
    }

    /// Sends an empty DATA frame with FIN (once); later writes fail.
    pub async fn close(&self) {
        let st = &self.inner.state;
        if st.reset.load(Ordering::Acquire) || st.fin_requested.swap(true, Ordering::AcqRel) {
            return;
        }
        let cmd = WriteCmd::Data {
            id: self.inner.id,
            state: st.clone(),
            data: Bytes::new(),
            fin: true,
        };
        let _ = self.inner.data_tx.send(cmd).await;
    }

    /// Sends RST_STREAM with `status`; the reader ends and writes fail. Queued unsent data is dropped.
    pub async fn reset(&self, status: u32) {
        let st = &self.inner.state;
        if st.reset.swap(true, Ordering::AcqRel) {
            return;
        }
        st.notify.notify_waiters();
        self.inner.shared.remove(self.inner.id);
        let _ = self
            .inner
            .ctrl_tx
            .send(Frame::RstStream {
                stream_id: self.inner.id,
                status,
            })
            .await;
    }
}

impl Drop for WriterInner {
    fn drop(&mut self) {
        let st = &self.state;
        if st.reset.load(Ordering::Acquire) || st.fin_requested.swap(true, Ordering::AcqRel) {
            return;
        }
        let cmd = WriteCmd::Data {
            id: self.id,
            state: st.clone(),
            data: Bytes::new(),
            fin: true,
        };
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.data_tx.try_send(cmd) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let tx = self.data_tx.clone();
                rt.spawn(async move {
                    let _ = tx.send(cmd).await;
                });
            }
        }
    }
}
