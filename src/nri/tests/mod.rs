//! NRI end to end over real unix sockets, with [`PluginClient`] as the plugins.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_proto::nri::ConfigureRequest;
use berth_proto::nri::{
    Container, ContainerAdjustment, ContainerEviction, ContainerUpdate, CreateContainerRequest,
    CreateContainerResponse, Event, KeyValue, Mount, PodSandbox, StateChangeEvent, SynchronizeRequest,
    SynchronizeResponse, UpdateContainersRequest, ValidateContainerAdjustmentRequest,
    ValidateContainerAdjustmentResponse,
};

use super::plugin_client::{mask, PluginClient, Reply, TestPlugin};
use super::*;

mod adjust;
mod create;
mod failures;
mod prestart;
mod sync;

#[derive(Default)]
struct Host {
    pods: Vec<PodSandbox>,
    containers: Vec<Container>,
    updates: Mutex<Vec<ContainerUpdate>>,
    evictions: Mutex<Vec<ContainerEviction>>,
}

impl NriHost for Host {
    fn list(&self) -> BoxFuture<'_, Listing> {
        Box::pin(async move { Listing::new(self.pods.clone(), self.containers.clone()) })
    }

    fn update_containers(
        &self,
        updates: Vec<ContainerUpdate>,
        evictions: Vec<ContainerEviction>,
    ) -> BoxFuture<'_, Vec<ContainerUpdate>> {
        Box::pin(async move {
            let failed = updates
                .iter()
                .filter(|u| u.container_id == "missing")
                .cloned()
                .collect();
            self.updates.lock().expect("lock").extend(updates);
            self.evictions.lock().expect("lock").extend(evictions);
            failed
        })
    }
}

fn config(dir: &Path) -> NriConfig {
    NriConfig {
        enabled: true,
        socket_path: dir.join("run/nri.sock"),
        plugin_path: dir.join("plugins"),
        plugin_config_path: dir.join("conf.d"),
        plugin_registration_timeout_secs: 3,
        plugin_request_timeout_secs: 1,
    }
}

async fn wait_for(nri: &Nri, n: usize) {
    let start = Instant::now();
    while nri.plugins().len() != n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} plugins, not {n}",
            nri.plugins().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pod() -> PodSandbox {
    PodSandbox {
        id: "pod1".into(),
        name: "web".into(),
        ..Default::default()
    }
}

fn ctr() -> Container {
    Container {
        id: "ctr1".into(),
        pod_sandbox_id: "pod1".into(),
        name: "app".into(),
        ..Default::default()
    }
}

type Shared = Arc<Mutex<Vec<String>>>;

/// Records `name:event` in a log shared by several plugins; adjusts as told.
struct Probe {
    name: &'static str,
    events: u32,
    order: Shared,
    adjust: Option<ContainerAdjustment>,
    fail: bool,
    hang: bool,
}

fn probe(name: &'static str, events: &[Event], order: &Shared) -> Probe {
    Probe {
        name,
        events: mask(events),
        order: order.clone(),
        adjust: None,
        fail: false,
        hang: false,
    }
}

impl TestPlugin for Probe {
    fn events(&self) -> u32 {
        self.events
    }

    fn state_change(&self, req: StateChangeEvent) -> Reply<()> {
        self.order
            .lock()
            .expect("lock")
            .push(format!("{}:{}", self.name, req.event().as_str_name()));
        Box::pin(async { Ok(()) })
    }

    fn create_container(&self, _req: CreateContainerRequest) -> Reply<CreateContainerResponse> {
        self.order
            .lock()
            .expect("lock")
            .push(format!("{}:CREATE_CONTAINER", self.name));
        let (adjust, fail, hang) = (self.adjust.clone(), self.fail, self.hang);
        Box::pin(async move {
            if hang {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            if fail {
                return Err("no such device".into());
            }
            Ok(CreateContainerResponse {
                adjust,
                ..Default::default()
            })
        })
    }
}

async fn start(dir: &Path, host: Arc<Host>) -> Nri {
    Nri::start(&config(dir), host).expect("start")
}

async fn connect(nri: &Nri, dir: &Path, name: &str, idx: &str, p: impl TestPlugin) -> PluginClient {
    let n = nri.plugins().len();
    let c = PluginClient::connect(&config(dir).socket_path, name, idx, Arc::new(p))
        .await
        .expect("connect");
    wait_for(nri, n + 1).await;
    c
}

fn env_adj(key: &str, value: &str) -> ContainerAdjustment {
    ContainerAdjustment {
        env: vec![KeyValue {
            key: key.into(),
            value: value.into(),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn registration_configures_and_synchronizes_existing_state() {
    struct Sync {
        seen: Arc<Mutex<Option<(ConfigureRequest, SynchronizeRequest)>>>,
    }
    impl TestPlugin for Sync {
        fn events(&self) -> u32 {
            0
        }
        fn configure(&self, req: ConfigureRequest) -> Reply<()> {
            *self.seen.lock().expect("lock") = Some((req, SynchronizeRequest::default()));
            Box::pin(async { Ok(()) })
        }
        fn synchronize(&self, req: SynchronizeRequest) -> Reply<SynchronizeResponse> {
            if let Some(s) = self.seen.lock().expect("lock").as_mut() {
                s.1 = req;
            }
            Box::pin(async {
                Ok(SynchronizeResponse {
                    update: vec![ContainerUpdate {
                        container_id: "ctr1".into(),
                        ..Default::default()
                    }],
                    more: false,
                })
            })
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Arc::new(Host {
        pods: vec![pod()],
        containers: vec![
            ctr(),
            Container {
                id: "ctr2".into(),
                ..ctr()
            },
        ],
        ..Default::default()
    });
    // A stale socket file is replaced; the new one is private.
    std::fs::create_dir_all(dir.path().join("run")).expect("mkdir");
    std::fs::write(config(dir.path()).socket_path, "stale").expect("stale");
    let nri = start(dir.path(), host.clone()).await;
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(config(dir.path()).socket_path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!nri.has_plugins());
    let seen = Arc::new(Mutex::new(None));
    let client = connect(&nri, dir.path(), "sync", "05", Sync { seen: seen.clone() }).await;
    let (cfg, sync) = seen.lock().expect("lock").clone().expect("configured");
    assert_eq!(
        (cfg.runtime_name.as_str(), cfg.registration_timeout, cfg.request_timeout),
        ("berth", 3000, 1000)
    );
    assert_eq!(sync.pods, vec![pod()]);
    assert_eq!(sync.containers.len(), 2);
    assert!(!sync.more);
    assert_eq!(client.calls(), ["Configure", "Synchronize"]);
    assert_eq!(
        host.updates.lock().expect("lock")[0].container_id,
        "ctr1",
        "sync updates reach the host"
    );
    let info = nri.plugins();
    assert_eq!((info[0].name.as_str(), info[0].index.as_str()), ("sync", "05"));
    assert_eq!(info[0].events, plugin::ALL_EVENTS, "no subscription means all events");
    assert!(nri.has_plugins());
    nri.shutdown().await;
    assert_eq!(client.calls().last().map(String::as_str), Some("Shutdown"));
    assert!(!nri.has_plugins());
    assert!(!config(dir.path()).socket_path.exists());
}

#[tokio::test]
async fn events_go_in_index_order_to_subscribers_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let order = Shared::default();
    let all = [
        Event::RunPodSandbox,
        Event::StopPodSandbox,
        Event::CreateContainer,
        Event::StartContainer,
    ];
    let _b = connect(&nri, dir.path(), "b", "20", probe("b", &all, &order)).await;
    let _a = connect(
        &nri,
        dir.path(),
        "a",
        "10",
        probe("a", &[Event::RunPodSandbox, Event::CreateContainer], &order),
    )
    .await;
    let _c = connect(
        &nri,
        dir.path(),
        "c",
        "10",
        probe("c", &[Event::StartContainer], &order),
    )
    .await;
    let names: Vec<String> = nri.plugins().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["a", "c", "b"]);
    nri.run_pod_sandbox(&pod()).await.expect("run");
    nri.create_container(&pod(), &ctr()).await.expect("create");
    nri.start_container(&pod(), &ctr()).await;
    nri.stop_pod_sandbox(&pod()).await;
    nri.remove_pod_sandbox(&pod()).await;
    assert_eq!(
        *order.lock().expect("lock"),
        [
            "a:RUN_POD_SANDBOX",
            "b:RUN_POD_SANDBOX",
            "a:CREATE_CONTAINER",
            "b:CREATE_CONTAINER",
            "c:START_CONTAINER",
            "b:START_CONTAINER",
            "b:STOP_POD_SANDBOX",
        ]
    );
    let stats = nri.stats();
    assert_eq!(stats.plugins.iter().map(|s| s.calls).collect::<Vec<_>>(), [4, 3, 6]);
    assert_eq!(stats.dropped, 0);
}

#[tokio::test]
async fn older_plugins_get_events_by_state_change() {
    struct Legacy {
        order: Shared,
    }
    impl TestPlugin for Legacy {
        fn events(&self) -> u32 {
            mask(&[Event::RunPodSandbox, Event::StopPodSandbox])
        }
        fn state_change(&self, req: StateChangeEvent) -> Reply<()> {
            self.order
                .lock()
                .expect("lock")
                .push(req.event().as_str_name().to_string());
            Box::pin(async { Ok(()) })
        }
        fn legacy(&self) -> bool {
            true
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let order = Shared::default();
    let client = connect(&nri, dir.path(), "old", "10", Legacy { order: order.clone() }).await;
    nri.run_pod_sandbox(&pod()).await.expect("run");
    nri.stop_pod_sandbox(&pod()).await;
    assert_eq!(*order.lock().expect("lock"), ["RUN_POD_SANDBOX", "STOP_POD_SANDBOX"]);
    assert_eq!(
        client.calls(),
        [
            "Configure",
            "Synchronize",
            "unimplemented:RunPodSandbox",
            "RUN_POD_SANDBOX",
            "STOP_POD_SANDBOX"
        ],
        "one Unimplemented, then StateChange only"
    );
}
