//! Extension points in a pod's life (NRI plugins behind them in the daemon): called at the
//! moments the lifecycle decides, with the sandbox as it is then. The default, [`NoHooks`],
//! does nothing; a sandbox service without hooks pays one `OnceLock` read per call.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;

use super::SandboxRecord;

pub trait PodHooks: Send + Sync {
    /// The sandbox is set up and about to be recorded Ready: an error fails RunPodSandbox
    /// (everything set up is taken back).
    fn run<'a>(&'a self, pod: &'a SandboxRecord) -> BoxFuture<'a, Result<(), String>>;
    /// A Ready sandbox is about to be stopped (its containers already are).
    fn stop<'a>(&'a self, pod: &'a SandboxRecord) -> BoxFuture<'a, ()>;
    /// The pod's resources are about to change (`UpdatePodSandboxResources`): an error
    /// fails the call.
    fn update<'a>(
        &'a self,
        pod: &'a SandboxRecord,
        resources: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// A record changed in the store (None: not stored). Called synchronously inside the
    /// store write, so it must only queue what it does.
    fn changed(&self, old: Option<&SandboxRecord>, new: Option<&SandboxRecord>);
}

/// The pod-level part of a runtime handler (a gVisor sandbox that the pod's containers
/// join): started once the pod's namespaces, network and cgroup exist, stopped before they
/// are taken down. Both look at the pod's handler and do nothing for handlers without one.
pub trait PodRuntime: Send + Sync {
    /// An error fails RunPodSandbox; whatever was started is stopped again by `stop`.
    fn start<'a>(&'a self, pod: &'a SandboxRecord, dir: &'a Path) -> BoxFuture<'a, Result<(), String>>;
    /// Idempotent; also called for a pod whose start failed half-way.
    fn stop<'a>(&'a self, pod: &'a SandboxRecord, dir: &'a Path) -> BoxFuture<'a, ()>;
    /// `net.*` sysctls the runtime needs in the pod's own network namespace (never applied
    /// to a pod on the node's network); the pod's own sysctls win.
    fn net_sysctls(&self, pod: &SandboxRecord) -> Vec<(String, String)>;
}

/// No hooks.
pub struct NoHooks;

impl PodHooks for NoHooks {
    fn run<'a>(&'a self, _: &'a SandboxRecord) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn stop<'a>(&'a self, _: &'a SandboxRecord) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn update<'a>(&'a self, _: &'a SandboxRecord, _: &'a serde_json::Value) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn changed(&self, _: Option<&SandboxRecord>, _: Option<&SandboxRecord>) {}
}

/// Where a service's hooks are installed once, after it is built (the hooks' own
/// implementation usually needs the service).
pub struct HookSlot<T: ?Sized>(OnceLock<Arc<T>>);

impl<T: ?Sized> Default for HookSlot<T> {
    fn default() -> Self {
        HookSlot(OnceLock::new())
    }
}

impl<T: ?Sized> HookSlot<T> {
    /// Installs `hooks`; false when some already were.
    pub fn set(&self, hooks: Arc<T>) -> bool {
        self.0.set(hooks).is_ok()
    }

    pub fn get(&self) -> Option<&Arc<T>> {
        self.0.get()
    }
}
