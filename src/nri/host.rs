//! What NRI needs from the runtime that hosts it.

use std::future::Future;
use std::pin::Pin;

use berth_proto::nri::{Container, ContainerEviction, ContainerUpdate, PodSandbox};

/// A boxed, sendable future (what [`NriHost`] methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a new plugin is synchronized with, and the host's hold on that state: kept until
/// the plugin is synchronized and receives events, so nothing the host does meanwhile (a
/// container being created, say) falls between the two.
pub struct Listing {
    pub pods: Vec<PodSandbox>,
    pub containers: Vec<Container>,
    pub hold: Box<dyn Send>,
}

impl Listing {
    /// A listing without a hold.
    pub fn of(pods: Vec<PodSandbox>, containers: Vec<Container>) -> Listing {
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
    /// Every existing pod sandbox and container, as NRI messages. Called when a plugin
    /// connects (to synchronize it), before NRI takes its own synchronization lock. It must
    /// not wait on locks that the runtime holds across NRI calls (e.g. a container's lock
    /// held while `create_container` runs), or a plugin connecting during such a call
    /// deadlocks until the registration timeout.
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
