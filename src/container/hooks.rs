//! Extension points in a container's life (NRI plugins behind them in the daemon). The
//! lifecycle calls them at the moments it decides; without hooks installed it skips them.

use futures_util::future::BoxFuture;
use oci_spec::runtime::{LinuxResources, Spec};

use super::model::{ContainerRecord, ContainerSpec};
use crate::sandbox::SandboxRecord;

/// What the hooks hand back from `create`: held by the lifecycle until the container is
/// recorded, or its creation taken back (so hooks can tell "being created" from "gone").
pub type Pending = Box<dyn Send>;

pub trait ContainerHooks: Send + Sync {
    /// The container's OCI spec is generated and nothing runs yet: hooks may adjust `oci`;
    /// an error fails CreateContainer (everything set up is taken back).
    fn create<'a>(
        &'a self,
        pod: &'a SandboxRecord,
        id: &'a str,
        spec: &'a ContainerSpec,
        oci: &'a mut Spec,
    ) -> BoxFuture<'a, Result<Pending, String>>;
    /// A created container is about to start: an error fails StartContainer.
    fn start<'a>(&'a self, pod: &'a SandboxRecord, ctr: &'a ContainerRecord) -> BoxFuture<'a, Result<(), String>>;
    /// New limits are about to be applied; the hooks may change them (an error fails the
    /// update).
    fn update<'a>(
        &'a self,
        pod: &'a SandboxRecord,
        ctr: &'a ContainerRecord,
        resources: LinuxResources,
    ) -> BoxFuture<'a, Result<LinuxResources, String>>;
    /// A record changed in the store (None: not stored), with its pod when that is still
    /// known. Called synchronously inside the store write, so it must only queue work.
    fn changed(&self, pod: Option<&SandboxRecord>, old: Option<&ContainerRecord>, new: Option<&ContainerRecord>);
}
