//! Pull progress: what a pull reports about each layer as it goes. CRI pulls report to
//! nobody; Berth's own API streams the events to `berthctl pull`.

use std::sync::Arc;

/// Where one layer of a pull stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    Waiting,
    Downloading,
    Verifying,
    Unpacking,
    Done,
    AlreadyPresent,
}

impl LayerState {
    /// Whether nothing more will happen to the layer.
    pub fn is_final(self) -> bool {
        matches!(self, LayerState::Done | LayerState::AlreadyPresent)
    }
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub digest: String,
    pub total: u64,
    pub done: u64,
    pub state: LayerState,
}

/// The hook a pull calls; it must be cheap (it runs for every chunk received).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Reports to an optional hook.
#[derive(Clone, Default)]
pub struct Reporter(Option<ProgressFn>);

impl Reporter {
    pub fn new(hook: Option<ProgressFn>) -> Reporter {
        Reporter(hook)
    }

    pub fn report(&self, digest: &str, total: u64, done: u64, state: LayerState) {
        if let Some(hook) = &self.0 {
            hook(Progress {
                digest: digest.to_string(),
                total,
                done,
                state,
            });
        }
    }
}
