//! The runtime side of NRI (Node Resource Interface, containerd/nri v0.12.1): plugins
//! connect to a unix socket (or are started from the plugin directory), register, are
//! configured and synchronized with the existing pods and containers, then see the
//! lifecycle events they subscribed to, in index order (name breaks ties). They may adjust
//! a container being created, and update or evict other containers.
//!
//! With no plugin connected every event method returns at once. A plugin that fails a
//! blocking event (RunPodSandbox, UpdatePodSandbox, CreateContainer, UpdateContainer) fails
//! it, naming the plugin; notifications never fail the caller. A plugin that times out or
//! whose connection breaks is closed and dropped.

pub mod adjust;
mod attach;
mod bridge;
pub mod config;
pub mod convert;
pub mod error;
pub mod host;
mod launch;
mod merge;
mod mux;
pub mod node;
mod plugin;
pub mod plugin_client;
mod registry;
mod sync;
mod ttrpc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_proto::nri::{
    Container, ContainerAdjustment, ContainerEviction, ContainerUpdate, CreateContainerRequest,
    CreateContainerResponse, Empty, Event, LinuxResources, PluginInstance, PodSandbox, StopContainerRequest,
    StopContainerResponse, UpdateContainerRequest, UpdateContainerResponse, UpdatePodSandboxRequest,
    UpdatePodSandboxResponse, ValidateContainerAdjustmentRequest, ValidateContainerAdjustmentResponse,
};
use tokio::task::JoinHandle;

pub use adjust::{apply_adjustment, apply_resources, Applied};
pub use attach::attach;
pub use config::NriConfig;
pub use error::{NriError, Result};
pub use host::{BoxFuture, Listing, NriHost, NriObserver};
pub use plugin::{event_bit, PluginInfo, PluginStats, ALL_EVENTS};

use plugin::{Plugin, Shared};
use registry::Inner;

/// What the plugins asked for when a container is created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateContainerResult {
    /// The merged adjustment (apply it with [`apply_adjustment`]).
    pub adjust: ContainerAdjustment,
    /// Updates of other containers (for the host to apply).
    pub updates: Vec<ContainerUpdate>,
    /// Containers to evict.
    pub evictions: Vec<ContainerEviction>,
}

/// What the plugins asked for on an update or stop: changes to containers. On
/// `update_container`, an update naming the container being updated changes the resources
/// it gets (apply it on top with [`apply_resources`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateResult {
    pub updates: Vec<ContainerUpdate>,
    pub evictions: Vec<ContainerEviction>,
}

/// Counters for metrics: per connected plugin, and plugins dropped so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NriStats {
    pub plugins: Vec<PluginStats>,
    pub dropped: u64,
}

/// The NRI runtime side. Cheap to clone; [`Nri::disabled`] does nothing at all.
#[derive(Clone, Default)]
pub struct Nri {
    inner: Option<Arc<Inner>>,
}

impl Nri {
    /// NRI switched off: no socket, no plugins, every event a no-op.
    pub fn disabled() -> Nri {
        Nri { inner: None }
    }

    /// Creates the socket (its directory too, mode 0600, replacing a stale file), accepts
    /// plugins on it, and starts the plugins installed in `cfg.plugin_path`. Must be called
    /// within a tokio runtime. With `cfg.enabled` false, the same as [`Nri::disabled`].
    pub fn start(cfg: &NriConfig, host: Arc<dyn NriHost>) -> Result<Nri> {
        if !cfg.enabled {
            return Ok(Nri::disabled());
        }
        let listener = launch::bind(&cfg.socket_path)?;
        let inner = Arc::new(Inner {
            shared: Shared {
                host,
                runtime_version: env!("CARGO_PKG_VERSION").into(),
                registration_timeout: cfg.registration_timeout(),
                request_timeout: cfg.request_timeout(),
                observer: Default::default(),
            },
            plugins: RwLock::new(Vec::new()),
            sync: tokio::sync::RwLock::new(()),
            dropped: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            starting: tokio::sync::Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            socket: Some(cfg.socket_path.clone()),
        });
        let weak = Arc::downgrade(&inner);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Some(inner) = weak.upgrade() else { return };
                tokio::spawn(Inner::add(Arc::downgrade(&inner), stream, None));
            }
        });
        let mut starting = Vec::new();
        for p in launch::discover(&cfg.plugin_path) {
            match launch::launch(&p, &cfg.plugin_config_path) {
                Ok((stream, pre)) => {
                    tracing::info!(plugin = %p.name, index = %p.index, "NRI: started plugin");
                    starting.push(tokio::spawn(Inner::add(Arc::downgrade(&inner), stream, Some(pre))));
                }
                Err(e) => tracing::warn!(error = %e, "NRI: plugin not started"),
            }
        }
        if let Ok(mut t) = inner.tasks.lock() {
            t.push(accept);
        }
        if let Ok(mut s) = inner.starting.try_lock() {
            s.extend(starting);
        }
        tracing::info!(socket = %cfg.socket_path.display(), "NRI: accepting plugins");
        Ok(Nri { inner: Some(inner) })
    }

    /// Reports every plugin call and every dropped plugin to `o` from now on (metrics).
    pub fn set_observer(&self, o: Arc<dyn NriObserver>) {
        if let Some(inner) = &self.inner {
            if let Ok(mut slot) = inner.shared.observer.write() {
                *slot = Some(o);
            }
        }
    }

    /// Whether NRI is on (started, not [`Nri::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Waits until the plugins started from the plugin directory are registered and
    /// synchronized, or have failed (each step within the registration timeout). Call it
    /// before serving requests, so no container is created before they are in place.
    pub async fn wait_started(&self) {
        let Some(inner) = &self.inner else { return };
        let starting = std::mem::take(&mut *inner.starting.lock().await);
        for s in starting {
            let _ = s.await;
        }
    }

    /// Lets the plugins know the runtime is going down, closes them and the socket.
    pub async fn shutdown(&self) {
        let Some(inner) = &self.inner else { return };
        inner.closed.store(true, Ordering::Relaxed);
        if let Ok(tasks) = inner.tasks.lock() {
            tasks.iter().for_each(JoinHandle::abort);
        }
        inner.starting.lock().await.iter().for_each(JoinHandle::abort);
        let plugins = std::mem::take(&mut *inner.plugins.write().unwrap_or_else(|e| e.into_inner()));
        let timeout = inner.shared.request_timeout.min(Duration::from_secs(1));
        let byes = plugins.iter().map(|p| async move {
            let _: Result<Empty> = p.call_with("Shutdown", &Empty {}, timeout).await;
            p.mark_dead();
        });
        futures_util::future::join_all(byes).await;
        if let Some(s) = &inner.socket {
            let _ = std::fs::remove_file(s);
        }
    }

    /// Whether any plugin is connected.
    pub fn has_plugins(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.plugins.read().is_ok_and(|p| p.iter().any(|p| !p.is_dead())))
    }

    /// The connected plugins, in call order.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.inner
            .as_ref()
            .map_or_else(Vec::new, |i| i.snapshot().iter().map(|p| p.info.clone()).collect())
    }

    /// Call counters of the connected plugins, and how many were dropped.
    pub fn stats(&self) -> NriStats {
        self.inner.as_ref().map_or_else(NriStats::default, |i| NriStats {
            plugins: i.snapshot().iter().map(|p| p.stats()).collect(),
            dropped: i.dropped.load(Ordering::Relaxed),
        })
    }

    /// RunPodSandbox (blocking: a plugin error fails the pod's start).
    pub async fn run_pod_sandbox(&self, pod: &PodSandbox) -> Result<()> {
        self.state_change(Event::RunPodSandbox, pod, None, true).await
    }

    /// UpdatePodSandbox (blocking).
    pub async fn update_pod_sandbox(
        &self,
        pod: &PodSandbox,
        overhead: Option<&LinuxResources>,
        resources: Option<&LinuxResources>,
    ) -> Result<()> {
        let Some((inner, plugins)) = self.subscribers(Event::UpdatePodSandbox) else {
            return Ok(());
        };
        let _sync = inner.sync.read().await;
        let req = UpdatePodSandboxRequest {
            pod: Some(pod.clone()),
            overhead_linux_resources: overhead.cloned(),
            linux_resources: resources.cloned(),
        };
        for p in plugins {
            let r: Result<UpdatePodSandboxResponse> = p.call("UpdatePodSandbox", &req).await;
            inner.check(&p, r)?;
        }
        Ok(())
    }

    /// CreateContainer (blocking): the plugins' merged adjustment of `ctr`, and the
    /// updates and evictions of other containers they ask for. Two plugins adjusting the
    /// same thing is a conflict; a validating plugin may reject the result.
    pub async fn create_container(&self, pod: &PodSandbox, ctr: &Container) -> Result<CreateContainerResult> {
        let Some((inner, plugins)) = self.subscribers(Event::CreateContainer) else {
            return Ok(CreateContainerResult::default());
        };
        let _sync = inner.sync.read().await;
        let req = CreateContainerRequest {
            pod: Some(pod.clone()),
            container: Some(ctr.clone()),
        };
        let mut merged = merge::Merged::default();
        let mut updates = merge::Updates::default();
        let mut out = CreateContainerResult::default();
        for p in &plugins {
            let r: Result<CreateContainerResponse> = p.call("CreateContainer", &req).await;
            let resp = inner.check(p, r)?;
            if let Some(adj) = resp.adjust {
                merged.add(&p.info.name, adj)?;
            }
            updates.add(&p.info.name, resp.update)?;
            out.evictions.extend(resp.evict);
        }
        out.adjust = merged.adjust.clone();
        out.updates = updates.into_vec();
        let validators = inner.subscribed(Event::ValidateContainerAdjustment);
        if !validators.is_empty() {
            let req = ValidateContainerAdjustmentRequest {
                pod: Some(pod.clone()),
                container: Some(ctr.clone()),
                adjust: Some(out.adjust.clone()),
                update: out.updates.clone(),
                owners: Some(merged.owning_plugins(&ctr.id)),
                plugins: plugins
                    .iter()
                    .map(|p| PluginInstance {
                        name: p.info.name.clone(),
                        index: p.info.index.clone(),
                    })
                    .collect(),
            };
            for v in validators {
                let r: Result<ValidateContainerAdjustmentResponse> = v.call("ValidateContainerAdjustment", &req).await;
                let resp = inner.check(&v, r)?;
                if resp.reject {
                    return Err(NriError::Rejected {
                        plugin: v.info.name.clone(),
                        container: ctr.id.clone(),
                        reason: resp.reason,
                    });
                }
            }
        }
        Ok(out)
    }

    /// UpdateContainer (blocking): resources of `ctr` are about to change to `resources`.
    pub async fn update_container(
        &self,
        pod: &PodSandbox,
        ctr: &Container,
        resources: &LinuxResources,
    ) -> Result<UpdateResult> {
        let Some((inner, plugins)) = self.subscribers(Event::UpdateContainer) else {
            return Ok(UpdateResult::default());
        };
        let _sync = inner.sync.read().await;
        let req = UpdateContainerRequest {
            pod: Some(pod.clone()),
            container: Some(ctr.clone()),
            linux_resources: Some(resources.clone()),
        };
        let mut out = UpdateResult::default();
        let mut updates = merge::Updates::default();
        for p in plugins {
            let r: Result<UpdateContainerResponse> = p.call("UpdateContainer", &req).await;
            let resp = inner.check(&p, r)?;
            updates.add(&p.info.name, resp.update)?;
            out.evictions.extend(resp.evict);
        }
        out.updates = updates.into_vec();
        Ok(out)
    }

    /// StopContainer: never fails; the updates of other containers the plugins ask for.
    pub async fn stop_container(&self, pod: &PodSandbox, ctr: &Container) -> UpdateResult {
        let Some((inner, plugins)) = self.subscribers(Event::StopContainer) else {
            return UpdateResult::default();
        };
        let _sync = inner.sync.read().await;
        let req = StopContainerRequest {
            pod: Some(pod.clone()),
            container: Some(ctr.clone()),
        };
        let mut updates = merge::Updates::default();
        for p in plugins {
            let r: Result<StopContainerResponse> = p.call("StopContainer", &req).await;
            match inner.check(&p, r) {
                Ok(resp) => {
                    if let Err(e) = updates.add(&p.info.name, resp.update) {
                        tracing::warn!(error = %e, container = %ctr.id, "NRI: StopContainer updates dropped");
                    }
                }
                Err(e) => tracing::warn!(error = %e, container = %ctr.id, "NRI: StopContainer"),
            }
        }
        UpdateResult {
            updates: updates.into_vec(),
            evictions: Vec::new(),
        }
    }

    pub async fn post_update_pod_sandbox(&self, pod: &PodSandbox) {
        self.notify(Event::PostUpdatePodSandbox, pod, None).await
    }

    pub async fn stop_pod_sandbox(&self, pod: &PodSandbox) {
        self.notify(Event::StopPodSandbox, pod, None).await
    }

    pub async fn remove_pod_sandbox(&self, pod: &PodSandbox) {
        self.notify(Event::RemovePodSandbox, pod, None).await
    }

    pub async fn post_create_container(&self, pod: &PodSandbox, ctr: &Container) {
        self.notify(Event::PostCreateContainer, pod, Some(ctr)).await
    }

    pub async fn start_container(&self, pod: &PodSandbox, ctr: &Container) {
        self.notify(Event::StartContainer, pod, Some(ctr)).await
    }

    pub async fn post_start_container(&self, pod: &PodSandbox, ctr: &Container) {
        self.notify(Event::PostStartContainer, pod, Some(ctr)).await
    }

    pub async fn post_update_container(&self, pod: &PodSandbox, ctr: &Container) {
        self.notify(Event::PostUpdateContainer, pod, Some(ctr)).await
    }

    pub async fn remove_container(&self, pod: &PodSandbox, ctr: &Container) {
        self.notify(Event::RemoveContainer, pod, Some(ctr)).await
    }

    async fn notify(&self, event: Event, pod: &PodSandbox, ctr: Option<&Container>) {
        if let Err(e) = self.state_change(event, pod, ctr, false).await {
            tracing::warn!(error = %e, "NRI: {}", event.as_str_name());
        }
    }

    /// Relays an event without a reply; `blocking`: the first failure is returned, else all plugins
    /// are told and failures only logged.
    async fn state_change(
        &self,
        event: Event,
        pod: &PodSandbox,
        ctr: Option<&Container>,
        blocking: bool,
    ) -> Result<()> {
        let Some((inner, plugins)) = self.subscribers(event) else {
            return Ok(());
        };
        let _sync = inner.sync.read().await;
        for p in plugins {
            let r = p.event(event, pod, ctr).await;
            match inner.check(&p, r) {
                Err(e) if blocking => return Err(e),
                Err(e) => tracing::warn!(error = %e, event = event.as_str_name(), "NRI: notification failed"),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// The plugins subscribed to `event`, in call order; `None` (cheaply) when there are
    /// none.
    fn subscribers(&self, event: Event) -> Option<(&Arc<Inner>, Vec<Arc<Plugin>>)> {
        let inner = self.inner.as_ref()?;
        let plugins = inner.subscribed(event);
        (!plugins.is_empty()).then_some((inner, plugins))
    }
}

#[cfg(test)]
mod tests;
