//! The reader task's frame handling: stream opening, DATA delivery, resets, pings, GOAWAY.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use super::codec::FrameReader;
use super::frame::{self, Frame, FrameError};
use super::header::Headers;
use super::shared::{Entry, Options, Shared, StreamState, WriteCmd};
use super::stream::{Stream, WINDOW_UPDATE_AT};

#[derive(Debug)]
pub(super) enum End {
    Eof,
    Idle,
    GoAway,
    Shutdown,
    WriteFailed,
    Io(io::Error),
    Protocol(FrameError),
}

pub(super) struct ReadCtx<R> {
    pub(super) reader: FrameReader<R>,
    pub(super) shared: Arc<Shared>,
    pub(super) opts: Options,
    pub(super) streams_tx: mpsc::Sender<Stream>,
    pub(super) ctrl_tx: mpsc::Sender<Frame>,
    pub(super) data_tx: mpsc::Sender<WriteCmd>,
}

pub(super) async fn wait_for_end(shared: &Shared) -> End {
    loop {
        shared.wake.notified().await;
        if shared.writer_failed.load(Ordering::Acquire) {
            return End::WriteFailed;
        }
        if shared.shutdown_requested.load(Ordering::Acquire) {
            return End::Shutdown;
        }
        let t = shared.table();
        if (t.goaway_sent || shared.goaway_received.load(Ordering::Acquire)) && t.streams.is_empty() {
            return End::GoAway;
        }
    }
}

impl<R: AsyncRead + Unpin> ReadCtx<R> {
    pub(super) async fn read_loop(&mut self) -> End {
        let idle = self.opts.idle_timeout;
        let sleep = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(3600)));
        tokio::pin!(sleep);
        loop {
            let res = tokio::select! {
                res = self.reader.read_frame() => res,
                _ = &mut sleep, if idle.is_some() => {
                    let idle = idle.unwrap_or_default();
                    let quiet = self.shared.idle_for();
                    let open = !self.shared.table().streams.is_empty();
                    if !open && quiet >= idle {
                        return End::Idle;
                    }
                    let next = if open { idle } else { idle - quiet };
                    sleep.as_mut().reset(tokio::time::Instant::now() + next);
                    continue;
                }
            };
            let frame = match res {
                Ok(Some(frame)) => frame,
                Ok(None) => return End::Eof,
                Err(FrameError::Io(e)) => return End::Io(e),
                Err(e) => return End::Protocol(e),
            };
            self.shared.touch();
            if self.handle(frame).await.is_err() {
                return End::WriteFailed;
            }
        }
    }

    async fn ctrl(&mut self, frame: Frame) -> Result<(), ()> {
        self.ctrl_tx.send(frame).await.map_err(|_| ())
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), ()> {
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                unidirectional,
                headers,
                ..
            } => self.on_syn(stream_id, fin, unidirectional, headers).await,
            Frame::Data { stream_id, fin, data } => self.on_data(stream_id, fin, data).await,
            Frame::Headers {
                stream_id, fin: true, ..
            } => {
                self.on_remote_fin(stream_id);
                Ok(())
            }
            Frame::RstStream { stream_id, status } => {
                tracing::debug!(stream_id, status, "peer reset stream");
                let removed = self.shared.table().streams.remove(&stream_id);
                if let Some(e) = removed {
                    e.state.reset.store(true, Ordering::Release);
                    e.state.notify.notify_waiters();
                    self.shared.wake.notify_one();
                }
                Ok(())
            }
            // Odd ids are peer-initiated pings: echo them. Even ids would answer our pings; we send none.
            Frame::Ping { id } if id & 1 == 1 => self.ctrl(Frame::Ping { id }).await,
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                tracing::debug!(last_good_stream_id, status, "peer sent GOAWAY");
                self.shared.goaway_received.store(true, Ordering::Release);
                self.shared.wake.notify_one();
                Ok(())
            }
            other => {
                tracing::trace!(frame = ?other, "ignoring SPDY frame");
                Ok(())
            }
        }
    }

    async fn on_syn(&mut self, id: u32, fin: bool, unidirectional: bool, headers: Headers) -> Result<(), ()> {
        let refuse = {
            let mut t = self.shared.table();
            if id & 1 == 0 {
                Some(frame::RST_PROTOCOL_ERROR)
            } else if id <= t.last_id {
                // Reused or out-of-order id; the peer tears down that id on our RST, so do the same.
                if let Some(e) = t.streams.remove(&id) {
                    e.state.reset.store(true, Ordering::Release);
                    e.state.notify.notify_waiters();
                }
                Some(frame::RST_PROTOCOL_ERROR)
            } else {
                t.last_id = id;
                let gone = self.streams_tx.is_closed() || self.shared.goaway_received.load(Ordering::Acquire);
                if t.goaway_sent || gone || t.streams.len() >= self.opts.max_streams {
                    Some(frame::RST_REFUSED_STREAM)
                } else {
                    None
                }
            }
        };
        if let Some(status) = refuse {
            tracing::debug!(stream_id = id, status, "refusing SPDY stream");
            return self.ctrl(Frame::RstStream { stream_id: id, status }).await;
        }
        let state = Arc::new(StreamState::default());
        state.remote_closed.store(fin, Ordering::Release);
        if unidirectional {
            state.fin_requested.store(true, Ordering::Release);
            state.local_closed.store(true, Ordering::Release);
        }
        let (tx, rx) = mpsc::channel(self.opts.stream_buffer.max(1));
        let entry = Entry {
            data_tx: (!fin).then_some(tx),
            state: state.clone(),
            discarded: 0,
        };
        self.shared.table().streams.insert(id, entry);
        if !unidirectional {
            self.ctrl(Frame::SynReply {
                stream_id: id,
                fin: false,
                headers: Headers::new(),
            })
            .await?;
        }
        let (shared, data_tx, ctrl_tx) = (self.shared.clone(), self.data_tx.clone(), self.ctrl_tx.clone());
        let stream = Stream::new(id, headers, state.clone(), rx, shared, data_tx, ctrl_tx);
        if let Err(mpsc::error::SendError(stream)) = self.streams_tx.send(stream).await {
            stream.writer.reset(frame::RST_REFUSED_STREAM).await;
        }
        if fin && unidirectional {
            self.shared.finish_if_done(id, &state);
        }
        Ok(())
    }

    async fn on_data(&mut self, id: u32, fin: bool, data: Bytes) -> Result<(), ()> {
        let found = self
            .shared
            .table()
            .streams
            .get(&id)
            .map(|e| (e.data_tx.clone(), e.state.clone()));
        let Some((tx, state)) = found else {
            tracing::trace!(
                stream_id = id,
                len = data.len(),
                "DATA for unknown or closed stream dropped"
            );
            return Ok(());
        };
        let len = data.len() as u32;
        let delivered = match tx {
            Some(tx) if len > 0 => {
                let reset = state.notify.notified();
                tokio::pin!(reset);
                reset.as_mut().enable();
                if state.reset.load(Ordering::Acquire) {
                    true
                } else {
                    tokio::select! {
                        r = tx.send(data) => r.is_ok(),
                        _ = reset => true,
                    }
                }
            }
            _ => true,
        };
        if !delivered {
            // The StreamReader was dropped: acknowledge the discarded bytes so the peer never stalls.
            let ack = {
                let mut t = self.shared.table();
                t.streams.get_mut(&id).and_then(|e| {
                    e.discarded = e.discarded.saturating_add(len);
                    (e.discarded >= WINDOW_UPDATE_AT).then(|| std::mem::take(&mut e.discarded))
                })
            };
            if let Some(delta) = ack {
                self.ctrl(Frame::WindowUpdate { stream_id: id, delta }).await?;
            }
        }
        if fin {
            self.on_remote_fin(id);
        }
        Ok(())
    }

    fn on_remote_fin(&mut self, id: u32) {
        let state = {
            let mut t = self.shared.table();
            t.streams.get_mut(&id).map(|e| {
                e.data_tx = None;
                e.state.clone()
            })
        };
        if let Some(state) = state {
            state.remote_closed.store(true, Ordering::Release);
            self.shared.finish_if_done(id, &state);
        }
    }
}
