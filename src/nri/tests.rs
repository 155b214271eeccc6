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

#[derive(Default)]
struct Host {
    pods: Vec<PodSandbox>,
    containers: Vec<Container>,
    updates: Mutex<Vec<ContainerUpdate>>,
    evictions: Mutex<Vec<ContainerEviction>>,
}

impl NriHost for Host {
    fn list(&self) -> BoxFuture<'_, (Vec<PodSandbox>, Vec<Container>)> {
        Box::pin(async move { (self.pods.clone(), self.containers.clone()) })
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

#[tokio::test]
async fn adjustments_of_two_plugins_merge_and_apply_to_the_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let order = Shared::default();
    let mut a = probe("a", &[Event::CreateContainer], &order);
    let mut adj = env_adj("INJECTED", "yes");
    adj.annotations.insert("nri.example/by".into(), "a".into());
    a.adjust = Some(adj);
    let mut b = probe("b", &[Event::CreateContainer], &order);
    b.adjust = Some(ContainerAdjustment {
        mounts: vec![Mount {
            destination: "/data".into(),
            r#type: "bind".into(),
            source: "/srv/data".into(),
            options: vec!["rbind".into(), "ro".into()],
        }],
        ..Default::default()
    });
    let _a = connect(&nri, dir.path(), "a", "10", a).await;
    let _b = connect(&nri, dir.path(), "b", "20", b).await;
    let result = nri.create_container(&pod(), &ctr()).await.expect("create");
    let mut spec = oci_spec::runtime::Spec::default();
    apply_adjustment(&mut spec, &result.adjust).expect("apply");
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    assert!(env.contains(&"INJECTED=yes".to_string()), "{env:?}");
    let mounts = spec.mounts().clone().unwrap_or_default();
    let data = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/data"))
        .expect("mount");
    assert_eq!(data.source().as_deref(), Some(Path::new("/srv/data")));
    let annotations = spec.annotations().clone().unwrap_or_default();
    assert_eq!(annotations.get("nri.example/by").map(String::as_str), Some("a"));
}

#[tokio::test]
async fn two_plugins_setting_the_same_env_conflict_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let order = Shared::default();
    let mut a = probe("first", &[Event::CreateContainer], &order);
    a.adjust = Some(env_adj("X", "1"));
    let mut b = probe("second", &[Event::CreateContainer], &order);
    b.adjust = Some(env_adj("X", "2"));
    let _a = connect(&nri, dir.path(), "first", "10", a).await;
    let _b = connect(&nri, dir.path(), "second", "20", b).await;
    let err = nri.create_container(&pod(), &ctr()).await.expect_err("conflict");
    let msg = err.to_string();
    assert!(msg.contains("first") && msg.contains("second"), "{msg}");
    assert!(matches!(err, NriError::Conflict { .. }), "{err:?}");
    assert_eq!(nri.plugins().len(), 2, "a conflict drops nobody");
}

#[tokio::test]
async fn a_plugin_error_fails_create_naming_the_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let mut p = probe("gpu-check", &[Event::CreateContainer], &Shared::default());
    p.fail = true;
    let _p = connect(&nri, dir.path(), "gpu-check", "30", p).await;
    let err = nri.create_container(&pod(), &ctr()).await.expect_err("fails");
    assert_eq!(err.plugin(), Some("gpu-check"));
    assert!(err.to_string().contains("no such device"), "{err}");
    assert!(nri.has_plugins(), "an error reply keeps the plugin");
    assert_eq!(nri.stats().plugins[0].failures, 1);
}

#[tokio::test]
async fn a_hanging_plugin_times_out_and_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let mut p = probe(
        "slow",
        &[Event::CreateContainer, Event::StartContainer],
        &Shared::default(),
    );
    p.hang = true;
    let client = connect(&nri, dir.path(), "slow", "40", p).await;
    let start = Instant::now();
    let err = nri.create_container(&pod(), &ctr()).await.expect_err("times out");
    assert!(start.elapsed() < Duration::from_millis(1900), "{:?}", start.elapsed());
    assert!(
        matches!(&err, NriError::Timeout { plugin, .. } if plugin == "slow"),
        "{err:?}"
    );
    assert!(!nri.has_plugins());
    assert_eq!(nri.stats().dropped, 1);
    nri.start_container(&pod(), &ctr()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(client.is_closed(), "the runtime closed the connection");
}

#[tokio::test]
async fn a_plugin_disconnecting_mid_call_fails_the_call_and_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let mut p = probe("crash", &[Event::CreateContainer], &Shared::default());
    p.hang = true;
    let client = connect(&nri, dir.path(), "crash", "50", p).await;
    let call = {
        let nri = nri.clone();
        tokio::spawn(async move { nri.create_container(&pod(), &ctr()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.close();
    let err = call.await.expect("join").expect_err("connection lost");
    assert!(
        matches!(&err, NriError::Closed { plugin, .. } if plugin == "crash"),
        "{err:?}"
    );
    assert!(nri.plugins().is_empty());
    let next = nri.create_container(&pod(), &ctr()).await.expect("no plugins: no-op");
    assert_eq!(next, CreateContainerResult::default());
}

#[tokio::test]
async fn unsolicited_updates_reach_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Arc::new(Host::default());
    let nri = start(dir.path(), host.clone()).await;
    let client = connect(
        &nri,
        dir.path(),
        "balancer",
        "60",
        probe("balancer", &[], &Shared::default()),
    )
    .await;
    let update = |id: &str| ContainerUpdate {
        container_id: id.into(),
        ..Default::default()
    };
    let resp = client
        .update_containers(UpdateContainersRequest {
            update: vec![update("ctr1"), update("missing")],
            evict: vec![ContainerEviction {
                container_id: "ctr9".into(),
                reason: "pressure".into(),
            }],
        })
        .await
        .expect("update");
    assert_eq!(resp.failed, vec![update("missing")]);
    assert_eq!(host.updates.lock().expect("lock").len(), 2);
    assert_eq!(host.evictions.lock().expect("lock")[0].reason, "pressure");
}

#[tokio::test]
async fn a_validator_can_reject_the_merged_adjustment() {
    struct Validator;
    impl TestPlugin for Validator {
        fn events(&self) -> u32 {
            mask(&[Event::ValidateContainerAdjustment])
        }
        fn validate(&self, req: ValidateContainerAdjustmentRequest) -> Reply<ValidateContainerAdjustmentResponse> {
            let owners = req.owners.unwrap_or_default();
            let by = owners
                .owners
                .get("ctr1")
                .and_then(|f| f.compound.get(&(berth_proto::nri::Field::Env as i32)));
            let owner = by.and_then(|c| c.owners.get("X")).cloned().unwrap_or_default();
            Box::pin(async move {
                Ok(ValidateContainerAdjustmentResponse {
                    reject: true,
                    reason: format!("X set by {owner}"),
                })
            })
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let mut a = probe("setter", &[Event::CreateContainer], &Shared::default());
    a.adjust = Some(env_adj("X", "1"));
    let _a = connect(&nri, dir.path(), "setter", "10", a).await;
    let _v = connect(&nri, dir.path(), "policy", "90", Validator).await;
    let err = nri.create_container(&pod(), &ctr()).await.expect_err("rejected");
    assert_eq!(err.plugin(), Some("policy"));
    assert!(err.to_string().contains("X set by setter"), "{err}");
}

#[tokio::test]
async fn disabled_nri_does_nothing() {
    let nri = Nri::disabled();
    assert!(!nri.has_plugins());
    nri.run_pod_sandbox(&pod()).await.expect("no-op");
    assert_eq!(
        nri.create_container(&pod(), &ctr()).await.expect("no-op"),
        CreateContainerResult::default()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = NriConfig {
        enabled: false,
        ..config(dir.path())
    };
    let off = Nri::start(&cfg, Arc::new(Host::default())).expect("start");
    assert!(!cfg.socket_path.exists());
    off.shutdown().await;
}

/// The plugin half of `a_plugin_from_the_plugin_dir_is_started`: this test binary, run
/// again by a launcher script with the inherited socket (otherwise it does nothing).
#[test]
fn prestarted_plugin_child() {
    let Ok(fd) = std::env::var("NRI_PLUGIN_SOCKET") else {
        return;
    };
    struct Echo {
        config: Mutex<String>,
    }
    impl TestPlugin for Echo {
        fn events(&self) -> u32 {
            mask(&[Event::CreateContainer])
        }
        fn configure(&self, req: ConfigureRequest) -> Reply<()> {
            *self.config.lock().expect("lock") = req.config;
            Box::pin(async { Ok(()) })
        }
        fn create_container(&self, _req: CreateContainerRequest) -> Reply<CreateContainerResponse> {
            let config = self.config.lock().expect("lock").clone();
            let env = ["NRI_PLUGIN_NAME", "NRI_PLUGIN_IDX"]
                .map(|k| std::env::var(k).unwrap_or_default())
                .join("/");
            let annotations = HashMap::from([("config".to_string(), config), ("env".to_string(), env)]);
            Box::pin(async move {
                Ok(CreateContainerResponse {
                    adjust: Some(ContainerAdjustment {
                        annotations,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            })
        }
    }
    let fd = crate::sys::fdpass::take_inherited(fd.parse().expect("fd number")).expect("inherited socket");
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true).expect("nonblocking");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let stream = tokio::net::UnixStream::from_std(stream).expect("stream");
        let plugin = Arc::new(Echo {
            config: Mutex::default(),
        });
        let name = std::env::var("NRI_PLUGIN_NAME").unwrap_or_default();
        let idx = std::env::var("NRI_PLUGIN_IDX").unwrap_or_default();
        let client = PluginClient::with_stream(stream, &name, &idx, plugin)
            .await
            .expect("register");
        let start = Instant::now();
        while !client.is_closed() && start.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[tokio::test]
async fn a_plugin_from_the_plugin_dir_is_started() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    std::fs::create_dir_all(&cfg.plugin_path).expect("mkdir");
    std::fs::create_dir_all(&cfg.plugin_config_path).expect("mkdir");
    let exe = std::env::current_exe().expect("test binary");
    let script = format!(
        "#!/bin/sh\nexec '{}' --exact nri::tests::prestarted_plugin_child --test-threads=1 --nocapture\n",
        exe.display()
    );
    let launcher = cfg.plugin_path.join("07-echo");
    std::fs::write(&launcher, script).expect("write");
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(cfg.plugin_config_path.join("echo.conf"), "level: 3").expect("conf");
    let nri = Nri::start(&cfg, Arc::new(Host::default())).expect("start");
    wait_for(&nri, 1).await;
    let info = &nri.plugins()[0];
    assert_eq!((info.name.as_str(), info.index.as_str()), ("echo", "07"));
    assert!(info.pid.is_some());
    let result = nri.create_container(&pod(), &ctr()).await.expect("create");
    assert_eq!(result.adjust.annotations["config"], "level: 3");
    assert_eq!(result.adjust.annotations["env"], "echo/07");
    nri.shutdown().await;
}
