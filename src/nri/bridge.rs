//! NRI behind the lifecycles' hooks: every call to plugins goes through one ordered queue,
//! so plugins see a pod's and a container's events in the order they happened (a
//! container's own exit before its pod's stop, its stop before its removal), whichever
//! task noticed them. Blocking hooks wait for their turn and their answer; notifications
//! only queue. Without a connected plugin each hook returns at once.

use std::sync::Arc;

use berth_proto::nri as api;
use futures_util::future::BoxFuture;
use oci_spec::runtime::{LinuxResources, Spec};
use tokio::sync::{mpsc, oneshot};

use super::convert;
use super::node::Node;
use super::Nri;
use crate::container::hooks::{ContainerHooks, Pending};
use crate::container::model::{ContainerRecord, ContainerSpec, ContainerState};
use crate::sandbox::hooks::PodHooks;
use crate::sandbox::SandboxRecord;

type Job = BoxFuture<'static, ()>;

pub struct Bridge {
    nri: Nri,
    queue: mpsc::UnboundedSender<Job>,
    host: Arc<Node>,
    cdi: Arc<crate::cdi::Cdi>,
}

impl Bridge {
    /// The bridge and its queue's worker (spawned on the current runtime).
    pub fn start(nri: Nri, host: Arc<Node>, cdi: Arc<crate::cdi::Cdi>) -> Arc<Bridge> {
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                job.await;
            }
        });
        Arc::new(Bridge { nri, queue, host, cdi })
    }

    /// Queues `job` behind every earlier call.
    fn queue(&self, job: impl std::future::Future<Output = ()> + Send + 'static) {
        let _ = self.queue.send(Box::pin(job));
    }

    /// Queues `job` and waits for its answer.
    async fn call<T: Send + 'static>(&self, job: impl std::future::Future<Output = T> + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.queue(async move {
            let _ = tx.send(job.await);
        });
        rx.await.ok()
    }

    /// Plugins' updates to other containers, and evictions, applied once the caller's own
    /// locks are released.
    fn apply_later(&self, updates: Vec<api::ContainerUpdate>, evictions: Vec<api::ContainerEviction>) {
        if updates.is_empty() && evictions.is_empty() {
            return;
        }
        let host = self.host.clone();
        tokio::spawn(async move {
            let failed = super::NriHost::update_containers(host.as_ref(), updates, evictions).await;
            for f in failed {
                tracing::warn!(container = f.container_id, "an NRI plugin's container update failed");
            }
        });
    }
}

/// The creation hold: containers being created are not missed by a plugin that
/// synchronizes meanwhile (see [`Node`]); one whose creation fails after the plugins
/// accepted it is announced removed.
struct Creating {
    _sync: tokio::sync::OwnedRwLockReadGuard<()>,
    bridge: std::sync::Weak<Bridge>,
    pod: api::PodSandbox,
    ctr: api::Container,
}

impl Drop for Creating {
    fn drop(&mut self) {
        let Some(bridge) = self.bridge.upgrade() else { return };
        if bridge.host.has_container(&self.ctr.id) {
            return;
        }
        let (nri, pod, ctr) = (bridge.nri.clone(), self.pod.clone(), self.ctr.clone());
        bridge.queue(async move { nri.remove_container(&pod, &ctr).await });
    }
}

fn bare_pod(id: &str) -> api::PodSandbox {
    api::PodSandbox {
        id: id.to_string(),
        ..Default::default()
    }
}

impl PodHooks for Bridge {
    fn run<'a>(&'a self, pod: &'a SandboxRecord) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if !self.nri.has_plugins() {
                return Ok(());
            }
            let (nri, pod) = (self.nri.clone(), convert::pod(pod));
            let res = self.call(async move { nri.run_pod_sandbox(&pod).await }).await;
            res.unwrap_or(Ok(())).map_err(|e| e.to_string())
        })
    }

    fn stop<'a>(&'a self, pod: &'a SandboxRecord) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !self.nri.has_plugins() {
                return;
            }
            let (nri, pod) = (self.nri.clone(), convert::pod(pod));
            self.call(async move { nri.stop_pod_sandbox(&pod).await }).await;
        })
    }

    fn update<'a>(
        &'a self,
        pod: &'a SandboxRecord,
        resources: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if !self.nri.has_plugins() {
                return Ok(());
            }
            let (nri, pod) = (self.nri.clone(), convert::pod(pod));
            let (overhead, res) = convert::pod_resources(Some(resources));
            let answer = self
                .call(async move {
                    let r = nri.update_pod_sandbox(&pod, overhead.as_ref(), res.as_ref()).await;
                    if r.is_ok() {
                        nri.post_update_pod_sandbox(&pod).await;
                    }
                    r
                })
                .await;
            answer.unwrap_or(Ok(())).map_err(|e| e.to_string())
        })
    }

    fn changed(&self, old: Option<&SandboxRecord>, new: Option<&SandboxRecord>) {
        if let (Some(old), None) = (old, new) {
            if !self.nri.has_plugins() {
                return;
            }
            let (nri, pod) = (self.nri.clone(), convert::pod(old));
            self.queue(async move { nri.remove_pod_sandbox(&pod).await });
        }
    }
}

impl ContainerHooks for Arc<Bridge> {
    fn create<'a>(
        &'a self,
        pod: &'a SandboxRecord,
        id: &'a str,
        spec: &'a ContainerSpec,
        oci: &'a mut Spec,
    ) -> BoxFuture<'a, Result<Pending, String>> {
        Box::pin(async move {
            let sync = self.host.creating().await;
            let (pod, ctr) = (convert::pod(pod), convert::new_container(&pod.id, id, spec, oci));
            if self.nri.has_plugins() {
                let (nri, p, c) = (self.nri.clone(), pod.clone(), ctr.clone());
                let answer = self.call(async move { nri.create_container(&p, &c).await }).await;
                if let Some(answer) = answer {
                    let created = answer.map_err(|e| e.to_string())?;
                    let applied = super::adjust::apply_adjustment(oci, &created.adjust).map_err(|e| e.to_string())?;
                    if !applied.cdi_devices.is_empty() {
                        let edits = self
                            .cdi
                            .resolve(&applied.cdi_devices, &Default::default())
                            .map_err(|e| format!("CDI devices from NRI plugins: {e}"))?;
                        self.cdi.inject(oci, &edits)?;
                    }
                    self.apply_later(created.updates, created.evictions);
                }
            }
            let hold: Pending = Box::new(Creating {
                _sync: sync,
                bridge: Arc::downgrade(self),
                pod,
                ctr,
            });
            Ok(hold)
        })
    }

    fn start<'a>(&'a self, pod: &'a SandboxRecord, ctr: &'a ContainerRecord) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if !self.nri.has_plugins() {
                return Ok(());
            }
            let (nri, pod, ctr) = (self.nri.clone(), convert::pod(pod), convert::container(ctr));
            self.call(async move { nri.start_container(&pod, &ctr).await }).await;
            Ok(())
        })
    }

    fn update<'a>(
        &'a self,
        pod: &'a SandboxRecord,
        ctr: &'a ContainerRecord,
        resources: LinuxResources,
    ) -> BoxFuture<'a, Result<LinuxResources, String>> {
        Box::pin(async move {
            if !self.nri.has_plugins() {
                return Ok(resources);
            }
            let (nri, pod, ctr) = (self.nri.clone(), convert::pod(pod), convert::container(ctr));
            let asked = convert::resources(&resources);
            let answer = self
                .call(async move { nri.update_container(&pod, &ctr, &asked).await.map(|r| (r, pod, ctr)) })
                .await;
            let Some(answer) = answer else { return Ok(resources) };
            let (result, pod, ctr) = answer.map_err(|e| e.to_string())?;
            let mut resources = resources;
            let mut others = Vec::new();
            for u in result.updates {
                if u.container_id == ctr.id {
                    if let Some(r) = u.linux.as_ref().and_then(|l| l.resources.as_ref()) {
                        super::adjust::apply_resources(&mut resources, r).map_err(|e| e.to_string())?;
                    }
                } else {
                    others.push(u);
                }
            }
            self.apply_later(others, result.evictions);
            let nri = self.nri.clone();
            self.queue(async move { nri.post_update_container(&pod, &ctr).await });
            Ok(resources)
        })
    }

    fn changed(&self, pod: Option<&SandboxRecord>, old: Option<&ContainerRecord>, new: Option<&ContainerRecord>) {
        if !self.nri.has_plugins() {
            return;
        }
        let Some(rec) = new.or(old) else { return };
        let pod = pod.map_or_else(|| bare_pod(&rec.sandbox_id), convert::pod);
        let ctr = convert::container(rec);
        let live = |s: Option<ContainerState>| matches!(s, Some(ContainerState::Created | ContainerState::Running));
        let (was, is) = (old.map(|r| r.state), new.map(|r| r.state));
        let nri = self.nri.clone();
        let this = Arc::downgrade(self);
        match (was, is) {
            (None, Some(ContainerState::Created)) => {
                self.queue(async move { nri.post_create_container(&pod, &ctr).await })
            }
            (Some(ContainerState::Created) | None, Some(ContainerState::Running)) => {
                self.queue(async move { nri.post_start_container(&pod, &ctr).await })
            }
            (_, Some(ContainerState::Exited | ContainerState::Unknown)) if live(was) => self.queue(async move {
                let result = nri.stop_container(&pod, &ctr).await;
                if let Some(b) = this.upgrade() {
                    b.apply_later(result.updates, result.evictions);
                }
            }),
            (_, None) => self.queue(async move {
                if live(was) {
                    let result = nri.stop_container(&pod, &ctr).await;
                    if let Some(b) = this.upgrade() {
                        b.apply_later(result.updates, result.evictions);
                    }
                }
                nri.remove_container(&pod, &ctr).await;
            }),
            _ => {}
        }
    }
}
