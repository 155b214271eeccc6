//! What NRI needs from the runtime that hosts it.

use std::future::Future;
use std::pin::Pin;

use berth_proto::nri::{Container, ContainerEviction, ContainerUpdate, PodSandbox};

/// A boxed, sendable future (what [`NriHost`] methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The existing pods and containers a new plugin is synchronized with.
pub struct Listing {
    pub pods: Vec<PodSandbox>,
    pub containers: Vec<Container>,
    /// Kept until the plugin is synchronized (or failed), then dropped: e.g. a lock guard
    /// that keeps pods and containers from changing meanwhile, so the plugin misses nothing.
    pub hold: Box<dyn std::any::Any + Send>,
}

impl Listing {
    /// A listing that holds nothing.
    pub fn new(pods: Vec<PodSandbox>, containers: Vec<Container>) -> Listing {
        Listing {
            pods,
            containers,
            hold: Box::new(()),
        }
    }
}

/// The runtime's side of NRI: the state plugins are synchronized with, and the container
/// updates plugins ask for outside of a lifecycle event.
pub trait NriHost: Send + Sync {
    /// Every existing pod sandbox and container, as NRI messages. Called when a plugin has
    /// registered and been configured, before NRI blocks its events to synchronize it. It
    /// may wait for lifecycle operations in flight (their NRI events still go through), but
    /// must not wait on anything that waits on a plugin's synchronization; it is given the
    /// registration timeout, after which the plugin is dropped.
    fn list(&self) -> BoxFuture<'_, Listing>;

    /// Applies updates (resources) to existing containers and evicts (stops) containers, as
    /// asked by a plugin (unsolicited `UpdateContainers`, or updates returned from
    /// Synchronize / events). Returns the updates that failed.
    fn update_containers(
        &self,
        updates: Vec<ContainerUpdate>,
        evictions: Vec<ContainerEviction>,
    ) -> BoxFuture<'_, Vec<ContainerUpdate>>;
}

/// Sees every call to a plugin and every plugin dropped, for metrics
/// ([`crate::nri::Nri::set_observer`]).
pub trait NriObserver: Send + Sync {
    /// One call of `method` to `plugin` (its index and name) ended, `ok` or not.
    fn call(&self, index: &str, plugin: &str, method: &str, ok: bool, elapsed: std::time::Duration);
    /// `plugin` was dropped (timed out, connection lost, or failed to synchronize).
    fn dropped(&self, index: &str, plugin: &str);
}

/// Where the observer is kept (shared by the plugins of one NRI instance).
pub(crate) type ObserverSlot = std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<dyn NriObserver>>>>;

/// The observer in `slot`, if one is set.
pub(crate) fn observer(slot: &ObserverSlot) -> Option<std::sync::Arc<dyn NriObserver>> {
    slot.read().ok().and_then(|o| o.clone())
}
