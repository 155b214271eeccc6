//! berthd's side of restart policies: a container made by `berthctl run` whose policy
//! says so is started again (as its next attempt) after it exits, with back-off, and
//! when berthd starts, whether berthd or the whole machine went down meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::lifecycle::Containers;
use super::model::{ContainerFilter, ContainerRecord, ContainerState};
use super::policy::{backoff, Occasion, RestartPolicy, RESTART_COUNT};
use super::restart::RUN_LABEL;
use crate::events::{EventBus, EventKind};

/// How long a stopped container is given to stop before a restart kills it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Containers {
    /// Follows container exits from `events` and restarts what the policies say; first
    /// restarts what stopped while berthd was down.
    pub fn enforce_restart_policies(self: &Arc<Self>, events: &EventBus) {
        let mut exits = events.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Some(this) = weak.upgrade() {
                this.restart_stopped(Occasion::DaemonStart).await;
            }
            loop {
                let event = exits.recv().await;
                let Some(this) = weak.upgrade() else { return };
                match event {
                    Ok(e) if e.kind == EventKind::Stopped => this.consider(&e.container_id, Occasion::Exited),
                    Ok(_) => {}
                    // Some exits were missed: look at every stopped container.
                    Err(RecvError::Lagged(_)) => this.restart_stopped(Occasion::Exited).await,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    async fn restart_stopped(self: &Arc<Self>, at: Occasion) {
        for rec in self.list(&ContainerFilter::default()).await {
            if stopped(&rec) && rec.spec.labels.contains_key(RUN_LABEL) {
                self.consider(&rec.id, at);
            }
        }
    }

    /// Restarts `id` after its back-off if its policy says so (checked again after it).
    fn consider(self: &Arc<Self>, id: &str, at: Occasion) {
        let Some(rec) = self.wants_restart(id, at) else { return };
        let restarts = restart_count(&rec);
        let ran = Duration::from_nanos(rec.finished_at.saturating_sub(rec.started_at).max(0) as u64);
        let delay = backoff(restarts, ran);
        let weak = Arc::downgrade(self);
        let id = rec.id;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(this) = weak.upgrade() else { return };
            if this.wants_restart(&id, at).is_none() {
                return;
            }
            match this.restart_counted(&id, STOP_TIMEOUT, restarts + 1).await {
                Ok(r) => tracing::info!(
                    container = id,
                    new = r.id,
                    attempt = r.attempt,
                    "restarted by its policy"
                ),
                Err(e) => tracing::warn!(container = id, error = %e, "restart by policy failed"),
            }
        });
    }

    /// The record of `id` if it is a stopped `berthctl run` container its policy restarts.
    fn wants_restart(&self, id: &str, at: Occasion) -> Option<ContainerRecord> {
        let rec = self.records.find(id)?;
        if !stopped(&rec) || !rec.spec.labels.contains_key(RUN_LABEL) {
            return None;
        }
        let policy = RestartPolicy::of(&rec.spec.labels);
        policy
            .restarts(rec.exit_code, rec.stop_requested, restart_count(&rec), at)
            .then_some(rec)
    }
}

/// Exited, or gone without a trace (its shim died with the machine).
fn stopped(rec: &ContainerRecord) -> bool {
    matches!(rec.state, ContainerState::Exited | ContainerState::Unknown)
}

fn restart_count(rec: &ContainerRecord) -> u32 {
    rec.spec
        .annotations
        .get(RESTART_COUNT)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
