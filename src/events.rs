//! Lifecycle events of containers and pod sandboxes, for `GetContainerEvents` (kubelet's
//! evented PLEG) and the metrics. Publishing never blocks: subscribers read from a bounded
//! broadcast ring, and one that falls behind loses the oldest events (and is told how many)
//! instead of holding up the runtime.

use tokio::sync::broadcast;

use crate::container::model::{ContainerRecord, ContainerState};
use crate::sandbox::{SandboxRecord, SandboxState};

/// Events a subscriber may fall behind by before it loses the oldest.
pub const BACKLOG: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// One lifecycle step of a container, or of a sandbox (then `container_id` is the sandbox id).
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub container_id: String,
    pub sandbox_id: String,
    /// Unix nanoseconds.
    pub at: i64,
    /// The sandbox as it was when the event happened (kept for events after which it is gone).
    pub sandbox: Option<SandboxRecord>,
    /// The pod's containers at that moment; `None` for sandbox events (the reader lists them).
    pub containers: Option<Vec<ContainerRecord>>,
    /// For container stops: the container was OOM-killed.
    pub oom_killed: bool,
}

/// The fan-out point: services publish, `GetContainerEvents` streams subscribe, and one
/// observer (the daemon's metrics) sees every event as it is published.
#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    observer: Option<fn(&Event)>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(BACKLOG)
    }
}

impl EventBus {
    pub fn new(backlog: usize) -> EventBus {
        EventBus {
            tx: broadcast::channel(backlog.max(1)).0,
            observer: None,
        }
    }

    /// The bus, with `observer` called (on the publishing thread, so it must not block) for
    /// every event, whether or not anyone subscribes.
    pub fn observed_by(mut self, observer: fn(&Event)) -> EventBus {
        self.observer = Some(observer);
        self
    }

    pub fn publish(&self, event: Event) {
        if let Some(observe) = self.observer {
            observe(&event);
        }
        // No subscriber is fine: the event is simply not kept.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// The events a container's move from `old` to `new` (None: not stored) amounts to.
pub fn container_transition(old: Option<ContainerState>, new: Option<ContainerState>) -> Vec<EventKind> {
    use ContainerState::*;
    match (old, new) {
        (None, Some(Created)) => vec![EventKind::Created],
        (None, Some(Running)) => vec![EventKind::Created, EventKind::Started],
        (Some(Created), Some(Running)) => vec![EventKind::Started],
        (Some(Created), Some(Exited | Unknown)) => vec![EventKind::Stopped],
        (Some(Running), Some(Exited | Unknown)) => vec![EventKind::Stopped],
        (Some(_), None) => vec![EventKind::Deleted],
        _ => vec![],
    }
}

/// The events a sandbox's move from `old` to `new` amounts to.
pub fn sandbox_transition(old: Option<SandboxState>, new: Option<SandboxState>) -> Vec<EventKind> {
    match (old, new) {
        (None, Some(SandboxState::Ready)) => vec![EventKind::Created, EventKind::Started],
        (None, Some(SandboxState::NotReady)) => vec![EventKind::Created],
        (Some(SandboxState::Ready), Some(SandboxState::NotReady)) => vec![EventKind::Stopped],
        (Some(_), None) => vec![EventKind::Deleted],
        _ => vec![],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn container_transitions() {
        use ContainerState::*;
        assert_eq!(container_transition(None, Some(Created)), vec![EventKind::Created]);
        assert_eq!(
            container_transition(Some(Created), Some(Running)),
            vec![EventKind::Started]
        );
        assert_eq!(
            container_transition(Some(Running), Some(Exited)),
            vec![EventKind::Stopped]
        );
        assert_eq!(container_transition(Some(Exited), Some(Exited)), vec![]);
        assert_eq!(container_transition(Some(Running), Some(Running)), vec![]);
        assert_eq!(container_transition(Some(Exited), None), vec![EventKind::Deleted]);
    }

    #[test]
    fn sandbox_transitions() {
        assert_eq!(
            sandbox_transition(None, Some(SandboxState::Ready)),
            vec![EventKind::Created, EventKind::Started]
        );
        assert_eq!(
            sandbox_transition(Some(SandboxState::Ready), Some(SandboxState::NotReady)),
            vec![EventKind::Stopped]
        );
        assert_eq!(
            sandbox_transition(Some(SandboxState::NotReady), Some(SandboxState::NotReady)),
            vec![]
        );
        assert_eq!(
            sandbox_transition(Some(SandboxState::NotReady), None),
            vec![EventKind::Deleted]
        );
    }

    fn event(n: usize) -> Event {
        Event {
            kind: EventKind::Created,
            container_id: format!("c{n}"),
            sandbox_id: "s".into(),
            at: n as i64,
            sandbox: None,
            containers: None,
            oom_killed: false,
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_loses_the_oldest_and_never_blocks_publishers() {
        let bus = EventBus::new(4);
        let mut slow = bus.subscribe();
        let mut fast = bus.subscribe();
        for n in 0..10 {
            bus.publish(event(n));
            assert_eq!(fast.recv().await.unwrap().container_id, format!("c{n}"));
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(lost)) => assert_eq!(lost, 6),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(slow.recv().await.unwrap().container_id, "c6");
    }

    #[test]
    fn the_observer_sees_every_event_without_subscribers() {
        static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let bus = EventBus::new(1).observed_by(|e| {
            if e.container_id.starts_with('c') {
                SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        assert_eq!(bus.subscribers(), 0);
        for n in 0..3 {
            bus.publish(event(n));
        }
        assert_eq!(SEEN.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
