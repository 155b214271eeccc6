//! What a connection's reader and writer tasks and its streams share: the options, the
//! stream table, the connection's flags and activity clock, each stream's state, and the
//! commands the writer task takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Notify};

#[derive(Debug, Clone)]
pub struct Options {
    /// Streams open at once; more are refused with RST_STREAM(REFUSED_STREAM).
    pub max_streams: usize,
    /// End the connection when no frame arrived and no stream was open for this long.
    pub idle_timeout: Option<Duration>,
    /// Received DATA chunks buffered per stream before the reader task waits (back-pressure).
    pub stream_buffer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_streams: 100,
            idle_timeout: None,
            stream_buffer: 16,
        }
    }
}

pub(super) struct Entry {
    pub(super) data_tx: Option<mpsc::Sender<Bytes>>,
    pub(super) state: Arc<StreamState>,
    pub(super) discarded: u32,
}

pub(super) struct Table {
    pub(super) streams: HashMap<u32, Entry>,
    pub(super) last_id: u32,
    pub(super) goaway_sent: bool,
}

pub(super) struct Shared {
    table: Mutex<Table>,
    pub(super) wake: Notify,
    pub(super) shutdown_requested: AtomicBool,
    pub(super) writer_failed: AtomicBool,
    pub(super) goaway_received: AtomicBool,
    pub(super) closed: AtomicBool,
    epoch: Instant,
    last_activity_ms: AtomicU64,
}

impl Shared {
    pub(super) fn new() -> Shared {
        Shared {
            table: Mutex::new(Table {
                streams: HashMap::new(),
                last_id: 0,
                goaway_sent: false,
            }),
            wake: Notify::new(),
            shutdown_requested: AtomicBool::new(false),
            writer_failed: AtomicBool::new(false),
            goaway_received: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            epoch: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn touch(&self) {
        self.last_activity_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    pub(super) fn remove(&self, id: u32) {
        if self.table().streams.remove(&id).is_some() {
            self.touch();
            self.wake.notify_one();
        }
    }

    pub(super) fn finish_if_done(&self, id: u32, st: &StreamState) {
        let done = st.remote_closed.load(Ordering::Acquire) && st.local_closed.load(Ordering::Acquire);
        if done || st.reset.load(Ordering::Acquire) {
            self.remove(id);
        }
    }
}

#[derive(Default)]
pub(super) struct StreamState {
    pub(super) remote_closed: AtomicBool,
    pub(super) fin_requested: AtomicBool,
    pub(super) local_closed: AtomicBool,
    pub(super) reset: AtomicBool,
    pub(super) notify: Notify,
}

pub(super) enum WriteCmd {
    Data {
        id: u32,
        state: Arc<StreamState>,
        data: Bytes,
        fin: bool,
    },
    Shutdown {
        goaway: Option<u32>,
        ack: oneshot::Sender<()>,
    },
}
