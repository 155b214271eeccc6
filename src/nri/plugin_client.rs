//! A small NRI plugin, for tests (unit and end-to-end): it connects to the runtime's socket
//! (or takes a given stream), registers, and answers the `Plugin` service through a
//! [`TestPlugin`] whose methods all have defaults (accept, change nothing).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::nri::{
    ConfigureRequest, ConfigureResponse, CreateContainerRequest, CreateContainerResponse, Empty, Event,
    PostCreateContainerRequest, RegisterPluginRequest, StateChangeEvent, StopContainerRequest, StopContainerResponse,
    SynchronizeRequest, SynchronizeResponse, UpdateContainerRequest, UpdateContainerResponse, UpdateContainersRequest,
    UpdateContainersResponse, UpdatePodSandboxRequest, UpdatePodSandboxResponse, ValidateContainerAdjustmentRequest,
    ValidateContainerAdjustmentResponse,
};
use bytes::Bytes;
use prost::Message;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use super::host::BoxFuture;
use super::mux::{Mux, MuxTasks, PLUGIN_CONN, RUNTIME_CONN};
use super::plugin::{event_bit, PLUGIN_SERVICE, RUNTIME_SERVICE};
use super::ttrpc::{self, code, Client, Handler, Status};

/// A plugin's answer: the response, or an error message (sent as an error status).
pub type Reply<T> = BoxFuture<'static, Result<T, String>>;

fn ok<T: Send + 'static>(v: T) -> Reply<T> {
    Box::pin(async move { Ok(v) })
}

/// What the test plugin does. Every method has a default that accepts and changes nothing.
pub trait TestPlugin: Send + Sync + 'static {
    /// Events to subscribe to (a mask of [`event_bit`]s; see [`mask`]).
    fn events(&self) -> u32;
    fn configure(&self, _req: ConfigureRequest) -> Reply<()> {
        ok(())
    }
    /// Default: no updates, and `more` echoed (taking a split synchronization).
    fn synchronize(&self, req: SynchronizeRequest) -> Reply<SynchronizeResponse> {
        ok(SynchronizeResponse {
            update: Vec::new(),
            more: req.more,
        })
    }
    fn create_container(&self, _req: CreateContainerRequest) -> Reply<CreateContainerResponse> {
        ok(CreateContainerResponse::default())
    }
    fn update_container(&self, _req: UpdateContainerRequest) -> Reply<UpdateContainerResponse> {
        ok(UpdateContainerResponse::default())
    }
    fn stop_container(&self, _req: StopContainerRequest) -> Reply<StopContainerResponse> {
        ok(StopContainerResponse::default())
    }
    fn update_pod_sandbox(&self, _req: UpdatePodSandboxRequest) -> Reply<UpdatePodSandboxResponse> {
        ok(UpdatePodSandboxResponse::default())
    }
    fn validate(&self, _req: ValidateContainerAdjustmentRequest) -> Reply<ValidateContainerAdjustmentResponse> {
        ok(ValidateContainerAdjustmentResponse::default())
    }
    /// Pod and container events without a reply, whether sent by their own method or by
    /// StateChange.
    fn state_change(&self, _req: StateChangeEvent) -> Reply<()> {
        ok(())
    }
    /// Act as an older plugin: answer the per-event methods Unimplemented, so the runtime
    /// falls back to StateChange.
    fn legacy(&self) -> bool {
        false
    }
}

/// The events that have a method of their own besides StateChange.
const EVENT_METHODS: [(&str, Event); 9] = [
    ("RunPodSandbox", Event::RunPodSandbox),
    ("StopPodSandbox", Event::StopPodSandbox),
    ("RemovePodSandbox", Event::RemovePodSandbox),
    ("PostUpdatePodSandbox", Event::PostUpdatePodSandbox),
    ("PostCreateContainer", Event::PostCreateContainer),
    ("StartContainer", Event::StartContainer),
    ("PostStartContainer", Event::PostStartContainer),
    ("PostUpdateContainer", Event::PostUpdateContainer),
    ("RemoveContainer", Event::RemoveContainer),
];

/// The subscription mask of every pod and container lifecycle event (not the pod updates
/// nor the validation of adjustments).
pub fn lifecycle_events() -> u32 {
    use Event::*;
    mask(&[
        RunPodSandbox,
        StopPodSandbox,
        RemovePodSandbox,
        CreateContainer,
        PostCreateContainer,
        StartContainer,
        PostStartContainer,
        UpdateContainer,
        PostUpdateContainer,
        StopContainer,
        RemoveContainer,
    ])
}

/// The subscription mask of `events`.
pub fn mask(events: &[Event]) -> u32 {
    events.iter().fold(0, |m, e| m | event_bit(*e as i32))
}

/// The names of the calls a plugin received, in order (`StateChange` as its event name).
pub type CallLog = Arc<Mutex<Vec<String>>>;

struct Serve {
    plugin: Arc<dyn TestPlugin>,
    log: CallLog,
}

fn reply<Req: Message + Default, Resp: Message + 'static>(
    payload: Bytes,
    f: impl FnOnce(Req) -> Reply<Resp>,
) -> BoxFuture<'static, Result<Bytes, Status>> {
    let fut = match Req::decode(payload) {
        Ok(req) => f(req),
        Err(e) => return Box::pin(async move { Err(Status::new(code::INVALID_ARGUMENT, e.to_string())) }),
    };
    Box::pin(async move {
        match fut.await {
            Ok(resp) => Ok(resp.encode_to_vec().into()),
            Err(message) => Err(Status::new(code::INTERNAL, message)),
        }
    })
}

impl Handler for Serve {
    fn handle(&self, service: String, method: String, payload: Bytes) -> BoxFuture<'static, Result<Bytes, Status>> {
        if service != PLUGIN_SERVICE {
            return Box::pin(async move { Err(Status::new(code::UNIMPLEMENTED, service)) });
        }
        let p = self.plugin.clone();
        let log = |name: String| {
            if let Ok(mut log) = self.log.lock() {
                log.push(name);
            }
        };
        if let Some((_, event)) = EVENT_METHODS.iter().find(|(m, _)| *m == method) {
            if p.legacy() {
                log(format!("unimplemented:{method}"));
                return Box::pin(async move { Err(Status::new(code::UNIMPLEMENTED, method)) });
            }
            log(event.as_str_name().to_string());
            let event = *event as i32;
            // Every one of these requests is {pod = 1, container = 2}.
            return reply(payload, move |r: PostCreateContainerRequest| {
                let fut = p.state_change(StateChangeEvent {
                    event,
                    pod: r.pod,
                    container: r.container,
                });
                Box::pin(async move { fut.await.map(|()| Empty {}) }) as Reply<Empty>
            });
        }
        let mut name = method.clone();
        if method == "StateChange" {
            if let Ok(ev) = StateChangeEvent::decode(payload.clone()) {
                name = ev.event().as_str_name().to_string();
            }
        }
        log(name);
        match method.as_str() {
            // The subscription is asked for once the plugin has its configuration.
            "Configure" => reply(payload, move |req: ConfigureRequest| {
                let fut = p.configure(req);
                Box::pin(async move {
                    fut.await?;
                    Ok(ConfigureResponse {
                        events: p.events() as i32,
                    })
                })
            }),
            "Synchronize" => reply(payload, move |r| p.synchronize(r)),
            "CreateContainer" => reply(payload, move |r| p.create_container(r)),
            "UpdateContainer" => reply(payload, move |r| p.update_container(r)),
            "StopContainer" => reply(payload, move |r| p.stop_container(r)),
            "UpdatePodSandbox" => reply(payload, move |r| p.update_pod_sandbox(r)),
            "ValidateContainerAdjustment" => reply(payload, move |r| p.validate(r)),
            "StateChange" => reply(payload, move |r: StateChangeEvent| {
                let fut = p.state_change(r);
                Box::pin(async move { fut.await.map(|()| Empty {}) }) as Reply<Empty>
            }),
            "Shutdown" => reply(payload, |_: Empty| ok(Empty {})),
            _ => Box::pin(async move { Err(Status::new(code::UNIMPLEMENTED, method)) }),
        }
    }
}

/// A connected, registered test plugin. Dropping it closes the connection.
pub struct PluginClient {
    runtime: Client,
    pub log: CallLog,
    mux: MuxTasks,
    server: JoinHandle<()>,
}

impl Drop for PluginClient {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PluginClient {
    /// Connects to the runtime's socket and registers as `name` with `index`.
    pub async fn connect(
        socket: &Path,
        name: &str,
        index: &str,
        plugin: Arc<dyn TestPlugin>,
    ) -> Result<PluginClient, String> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
        Self::with_stream(stream, name, index, plugin).await
    }

    /// Registers over `stream` (e.g. the inherited `NRI_PLUGIN_SOCKET`).
    pub async fn with_stream(
        stream: UnixStream,
        name: &str,
        index: &str,
        plugin: Arc<dyn TestPlugin>,
    ) -> Result<PluginClient, String> {
        let mux = Mux::new(stream);
        let log = CallLog::default();
        let serve = Arc::new(Serve {
            plugin,
            log: log.clone(),
        });
        let server = ttrpc::serve(mux.sender.clone(), PLUGIN_CONN, mux.plugin_rx, serve);
        let runtime = Client::new(mux.sender.clone(), RUNTIME_CONN, mux.runtime_rx);
        let client = PluginClient {
            runtime,
            log,
            mux: mux.tasks,
            server,
        };
        let req = RegisterPluginRequest {
            plugin_name: name.into(),
            plugin_idx: index.into(),
            nri_version: berth_proto::NRI_RELEASE.into(),
        };
        let _: Empty = client.call("RegisterPlugin", &req).await?;
        Ok(client)
    }

    async fn call<Req: Message, Resp: Message + Default>(&self, method: &str, req: &Req) -> Result<Resp, String> {
        let payload = self
            .runtime
            .call(
                RUNTIME_SERVICE,
                method,
                req.encode_to_vec().into(),
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| format!("{method}: {e:?}"))?;
        Resp::decode(payload).map_err(|e| e.to_string())
    }

    /// Asks the runtime to update or evict containers (unsolicited).
    pub async fn update_containers(&self, req: UpdateContainersRequest) -> Result<UpdateContainersResponse, String> {
        self.call("UpdateContainers", &req).await
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether the runtime closed the connection.
    pub fn is_closed(&self) -> bool {
        self.runtime.is_closed()
    }

    /// Closes the connection (as a crashing plugin would).
    pub fn close(&self) {
        self.mux.close();
        self.server.abort();
    }
}
