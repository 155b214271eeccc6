//! One connected NRI plugin: its registration, configuration and synchronization, and the
//! calls of its `Plugin` service. A plugin whose connection breaks or that times out is
//! marked dead (its owner drops it); it never makes a caller wait past the timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_proto::nri::{
    ConfigureRequest, ConfigureResponse, Container, Empty, Event, PodSandbox, PostCreateContainerRequest,
    PostStartContainerRequest, PostUpdateContainerRequest, PostUpdatePodSandboxRequest, RegisterPluginRequest,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StateChangeEvent,
    StopPodSandboxRequest, UpdateContainersRequest, UpdateContainersResponse,
};
use bytes::Bytes;
use prost::Message;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::error::{NriError, Result};
use super::host::{observer, BoxFuture, NriHost, ObserverSlot};
use super::mux::{Mux, MuxTasks, PLUGIN_CONN, RUNTIME_CONN};
use super::ttrpc::{self, code, CallError, Client, Handler, Status};

/// The service plugins serve (the runtime calls it).
pub const PLUGIN_SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";
/// The service the runtime serves (plugins call it).
pub const RUNTIME_SERVICE: &str = "nri.pkg.api.v1alpha1.Runtime";
/// Event bit of `event` (an `nri::Event` value) in a subscription mask.
pub fn event_bit(event: i32) -> u32 {
    1u32 << (event - 1)
}

/// All events a plugin can subscribe to (what an empty subscription means).
pub const ALL_EVENTS: u32 = (1 << (15 - 1)) - 1;

/// What plugin connections share with the NRI instance that owns them.
pub struct Shared {
    pub host: Arc<dyn NriHost>,
    pub runtime_version: String,
    pub registration_timeout: Duration,
    pub request_timeout: Duration,
    pub observer: ObserverSlot,
}

/// A connected plugin, as listed by `Nri::plugins`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    /// Two-digit invocation index (plugins are called in ascending index, then name).
    pub index: String,
    /// Subscribed events, bit `event - 1` for each `nri::Event`.
    pub events: u32,
    /// Process id for a plugin Berth started from the plugin directory.
    pub pid: Option<u32>,
}

/// Call counters of one plugin, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginStats {
    pub name: String,
    pub index: String,
    pub calls: u64,
    pub failures: u64,
    /// Total time spent in calls.
    pub latency: Duration,
}

/// A plugin Berth started itself: what it was started as.
pub struct Prestarted {
    pub name: String,
    pub index: String,
    pub config: String,
    pub child: tokio::process::Child,
}

/// One connected, configured plugin.
pub struct Plugin {
    pub info: PluginInfo,
    client: Client,
    stats: Mutex<PluginStats>,
    dead: AtomicBool,
    observer: ObserverSlot,
    /// Takes events by StateChange only.
    legacy: AtomicBool,
    request_timeout: Duration,
    mux: MuxTasks,
    server: JoinHandle<()>,
    child: Mutex<Option<tokio::process::Child>>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.server.abort();
        if let Ok(mut c) = self.child.lock() {
            if let Some(mut c) = c.take() {
                let _ = c.start_kill();
            }
        }
    }
}

/// Serves the `Runtime` service of one connection.
struct RuntimeHandler {
    host: Arc<dyn NriHost>,
    register: Mutex<Option<oneshot::Sender<(String, String)>>>,
}

impl Handler for RuntimeHandler {
    fn handle(&self, service: String, method: String, payload: Bytes) -> BoxFuture<'static, Result<Bytes, Status>> {
        if service != RUNTIME_SERVICE {
            return Box::pin(async move { Err(Status::new(code::UNIMPLEMENTED, format!("no service {service}"))) });
        }
        match method.as_str() {
            "RegisterPlugin" => {
                let result = RegisterPluginRequest::decode(payload)
                    .map_err(|e| Status::new(code::INVALID_ARGUMENT, e.to_string()))
                    .and_then(|req| {
                        let tx = self.register.lock().ok().and_then(|mut r| r.take());
                        let tx = tx.ok_or_else(|| Status::new(code::INVALID_ARGUMENT, "plugin already registered"))?;
                        let _ = tx.send((req.plugin_name, req.plugin_idx));
                        Ok(Empty {}.encode_to_vec().into())
                    });
                Box::pin(async move { result })
            }
            "UpdateContainers" => {
                let host = self.host.clone();
                Box::pin(async move {
                    let req = UpdateContainersRequest::decode(payload)
                        .map_err(|e| Status::new(code::INVALID_ARGUMENT, e.to_string()))?;
                    let failed = host.update_containers(req.update, req.evict).await;
                    Ok(UpdateContainersResponse { failed }.encode_to_vec().into())
                })
            }
            _ => Box::pin(async move { Err(Status::new(code::UNIMPLEMENTED, format!("no method {method}"))) }),
        }
    }
}

fn valid_index(idx: &str) -> bool {
    idx.len() == 2 && idx.bytes().all(|b| b.is_ascii_digit())
}

impl Plugin {
    /// Takes a new plugin connection through registration, Configure and Synchronize (all
    /// within the registration timeout each). `pre` is set for a plugin Berth started.
    pub async fn connect(stream: UnixStream, pre: Option<Prestarted>, shared: &Shared) -> Result<Plugin> {
        let mux = Mux::new(stream);
        let (tx, rx) = oneshot::channel();
        let handler = Arc::new(RuntimeHandler {
            host: shared.host.clone(),
            register: Mutex::new(Some(tx)),
        });
        let server = ttrpc::serve(mux.sender.clone(), RUNTIME_CONN, mux.runtime_rx, handler);
        let client = Client::new(mux.sender.clone(), PLUGIN_CONN, mux.plugin_rx);
        let reg = shared.registration_timeout;
        let unnamed = pre.as_ref().map_or("(unregistered)", |p| p.name.as_str()).to_string();
        let (name, index) = match tokio::time::timeout(reg, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => {
                return Err(NriError::Closed {
                    plugin: unnamed,
                    method: "RegisterPlugin".into(),
                    message: "closed before registering".into(),
                })
            }
            Err(_) => {
                return Err(NriError::Timeout {
                    plugin: unnamed,
                    method: "RegisterPlugin".into(),
                    timeout: reg,
                })
            }
        };
        let (name, index, config, child) = match pre {
            Some(p) => (p.name, p.index, p.config, Some(p.child)),
            None => (name, index, String::new(), None),
        };
        if name.is_empty() || !valid_index(&index) {
            return Err(NriError::Setup(format!(
                "plugin registered as {name:?} with index {index:?}: a name and a two-digit index are required"
            )));
        }
        let mut plugin = Plugin {
            info: PluginInfo {
                name: name.clone(),
                index: index.clone(),
                events: 0,
                pid: child.as_ref().and_then(|c| c.id()),
            },
            client,
            stats: Mutex::new(PluginStats {
                name,
                index,
                ..Default::default()
            }),
            dead: AtomicBool::new(false),
            observer: shared.observer.clone(),
            legacy: AtomicBool::new(false),
            request_timeout: shared.request_timeout,
            mux: mux.tasks,
            server,
            child: Mutex::new(child),
        };
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let req = ConfigureRequest {
            config,
            runtime_name: "berth".into(),
            runtime_version: shared.runtime_version.clone(),
            registration_timeout: millis(reg),
            request_timeout: millis(shared.request_timeout),
            nri_version: berth_proto::NRI_RELEASE.into(),
        };
        let resp: ConfigureResponse = plugin.call_with("Configure", &req, reg).await?;
        let events = resp.events as u32;
        if events & !ALL_EVENTS != 0 {
            return Err(NriError::Setup(format!(
                "plugin {}: subscribes to unknown events {:#x}",
                plugin.info.name,
                events & !ALL_EVENTS
            )));
        }
        plugin.info.events = if events == 0 { ALL_EVENTS } else { events };
        Ok(plugin)
    }

    /// Whether the plugin subscribed to `event` (an `nri::Event` value).
    pub fn subscribed(&self, event: i32) -> bool {
        self.info.events & event_bit(event) != 0
    }

    /// Whether the plugin has failed (timed out, or its connection is gone).
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed) || self.client.is_closed()
    }

    /// Marks the plugin dead and closes its connection (and stops its process).
    pub fn mark_dead(&self) {
        self.dead.store(true, Ordering::Relaxed);
        self.mux.close();
        self.server.abort();
        if let Ok(mut c) = self.child.lock() {
            if let Some(c) = c.as_mut() {
                let _ = c.start_kill();
            }
        }
    }

    /// Call counters so far.
    pub fn stats(&self) -> PluginStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Calls `method` of the plugin within the request timeout.
    pub async fn call<Req: Message, Resp: Message + Default>(&self, method: &str, req: &Req) -> Result<Resp> {
        self.call_with(method, req, self.request_timeout).await
    }

    /// Calls `method` within `timeout`; a timeout or a broken connection marks it dead.
    pub async fn call_with<Req: Message, Resp: Message + Default>(
        &self,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp> {
        let payload = self.call_raw(method, req.encode_to_vec(), timeout).await?;
        Resp::decode(payload).map_err(|e| NriError::Plugin {
            plugin: self.info.name.clone(),
            method: method.into(),
            message: format!("undecodable response: {e}"),
            code: 0,
        })
    }

    async fn call_raw(&self, method: &str, body: Vec<u8>, timeout: Duration) -> Result<Bytes> {
        let start = Instant::now();
        let result = self.client.call(PLUGIN_SERVICE, method, body.into(), timeout).await;
        let elapsed = start.elapsed();
        if let Ok(mut s) = self.stats.lock() {
            s.calls += 1;
            s.failures += u64::from(result.is_err());
            s.latency += elapsed;
        }
        if let Some(o) = observer(&self.observer) {
            o.call(&self.info.index, &self.info.name, method, result.is_ok(), elapsed);
        }
        let (plugin, method) = (self.info.name.clone(), method.to_string());
        result.map_err(|e| match e {
            CallError::Status(code, message) => NriError::Plugin {
                plugin,
                method,
                message,
                code,
            },
            CallError::Timeout => {
                self.mark_dead();
                NriError::Timeout {
                    plugin,
                    method,
                    timeout,
                }
            }
            CallError::Closed(message) => {
                self.mark_dead();
                NriError::Closed {
                    plugin,
                    method,
                    message,
                }
            }
        })
    }

    /// Relays a pod or container event that has no reply: by the event's own method, or
    /// by StateChange to a plugin that answers that method Unimplemented (older plugins;
    /// they get StateChange from then on).
    pub async fn event(&self, event: Event, pod: &PodSandbox, ctr: Option<&Container>) -> Result<()> {
        if !self.legacy.load(Ordering::Relaxed) {
            if let Some((method, body)) = event_request(event, pod, ctr) {
                match self.call_raw(method, body, self.request_timeout).await {
                    Err(NriError::Plugin { code, .. }) if code == code::UNIMPLEMENTED => {
                        self.legacy.store(true, Ordering::Relaxed);
                    }
                    other => return other.map(|_| ()),
                }
            }
        }
        let req = StateChangeEvent {
            event: event as i32,
            pod: Some(pod.clone()),
            container: ctr.cloned(),
        };
        self.call::<_, Empty>("StateChange", &req).await.map(|_| ())
    }
}

/// The method and request of an event that has its own method.
fn event_request(event: Event, pod: &PodSandbox, ctr: Option<&Container>) -> Option<(&'static str, Vec<u8>)> {
    let (pod, container) = (Some(pod.clone()), ctr.cloned());
    Some(match event {
        Event::RunPodSandbox => ("RunPodSandbox", RunPodSandboxRequest { pod }.encode_to_vec()),
        Event::StopPodSandbox => ("StopPodSandbox", StopPodSandboxRequest { pod }.encode_to_vec()),
        Event::RemovePodSandbox => ("RemovePodSandbox", RemovePodSandboxRequest { pod }.encode_to_vec()),
        Event::PostUpdatePodSandbox => (
            "PostUpdatePodSandbox",
            PostUpdatePodSandboxRequest { pod }.encode_to_vec(),
        ),
        Event::PostCreateContainer => (
            "PostCreateContainer",
            PostCreateContainerRequest { pod, container }.encode_to_vec(),
        ),
        Event::StartContainer => (
            "StartContainer",
            StartContainerRequest { pod, container }.encode_to_vec(),
        ),
        Event::PostStartContainer => (
            "PostStartContainer",
            PostStartContainerRequest { pod, container }.encode_to_vec(),
        ),
        Event::PostUpdateContainer => (
            "PostUpdateContainer",
            PostUpdateContainerRequest { pod, container }.encode_to_vec(),
        ),
        Event::RemoveContainer => (
            "RemoveContainer",
            RemoveContainerRequest { pod, container }.encode_to_vec(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_bits() {
        assert_eq!(event_bit(1), 1);
        assert_eq!(event_bit(14), 1 << 13);
        assert_eq!(ALL_EVENTS, 0x3fff);
    }
}
