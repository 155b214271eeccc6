//! NRI plugins against a real berthd, written here against the same socket a plugin on a
//! node would use: an injector whose changes the container sees, a plugin that fails
//! CreateContainer (nothing left, a retry works), one that hangs (timed out and dropped)
//! and one killed in the middle of a call, and a plugin installed in the plugin directory
//! that berthd starts, and starts again (synchronized with what runs) after a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::nri::plugin_client::{lifecycle_events, mask, PluginClient, Reply, TestPlugin};
use berth_e2e::cri::{v1 as cri, Cri};
use berth_e2e::require_root;
use berth_e2e::workload::{env, env_with, Env};
use berth_proto::nri as api;

fn socket(e: &Env) -> PathBuf {
    e.berthd.state().join("nri.sock")
}

/// A call name as the test plugin logs it, in one spelling ("RunPodSandbox" and the
/// StateChange name "RUN_POD_SANDBOX" are both "runpodsandbox").
fn norm(call: &str) -> String {
    call.chars().filter(|c| *c != '_').collect::<String>().to_lowercase()
}

/// The plugins berthd lists in `Status` verbose info.
async fn plugins(e: &mut Env) -> Vec<String> {
    let resp = e
        .cri
        .runtime
        .status(cri::StatusRequest { verbose: true })
        .await
        .expect("status")
        .into_inner();
    let nri: serde_json::Value = serde_json::from_str(resp.info.get("nri").expect("nri in info")).expect("json");
    nri["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| {
            format!(
                "{}-{}",
                p["index"].as_str().unwrap_or(""),
                p["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn wait_for(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Injector {
    dir: PathBuf,
}

impl TestPlugin for Injector {
    fn events(&self) -> u32 {
        lifecycle_events()
    }

    fn create_container(&self, _req: api::CreateContainerRequest) -> Reply<api::CreateContainerResponse> {
        let adjust = api::ContainerAdjustment {
            env: vec![api::KeyValue {
                key: "NRI_INJECTED".into(),
                value: "by-test".into(),
            }],
            mounts: vec![api::Mount {
                destination: "/nri".into(),
                r#type: "bind".into(),
                source: self.dir.display().to_string(),
                options: vec!["rbind".into(), "ro".into()],
            }],
            annotations: [("nri.test/injected".to_string(), "yes".to_string())].into(),
            ..Default::default()
        };
        Box::pin(async move {
            Ok(api::CreateContainerResponse {
                adjust: Some(adjust),
                ..Default::default()
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_injector_changes_the_container_and_sees_its_whole_life_in_order() {
    require_root();
    let mut e = env(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello"), "hello from the host\n").expect("write");
    let plugin = Arc::new(Injector {
        dir: dir.path().to_path_buf(),
    });
    let client = PluginClient::connect(&socket(&e), "injector", "10", plugin)
        .await
        .expect("register");
    wait_for("the plugin to be listed", 10, async || {
        plugins(&mut e).await == ["10-injector"]
    })
    .await;

    let pod = e.pod("nri-inject").await;
    let cmd = ["sh", "-c", "echo \"env=$NRI_INJECTED\"; cat /nri/hello"];
    let (code, _, log) = e.run_to_exit(&pod, e.container("inject", &cmd)).await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("env=by-test"), "the injected variable: {log}");
    assert!(log.contains("hello from the host"), "the injected mount: {log}");
    let ids: Vec<String> = e.containers().await.into_iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 1);
    let bundle = e.berthd.state().join("containers").join(&ids[0]).join("config.json");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle).expect("the bundle's config.json")).expect("json");
    assert_eq!(
        spec.pointer("/annotations/nri.test~1injected").and_then(|v| v.as_str()),
        Some("yes"),
        "the injected annotation in the OCI spec: {spec}"
    );
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;

    let want = [
        "RunPodSandbox",
        "CreateContainer",
        "PostCreateContainer",
        "StartContainer",
        "PostStartContainer",
        "StopContainer",
        // The pod is stopped, then removed with its container.
        "StopPodSandbox",
        "RemoveContainer",
        "RemovePodSandbox",
    ];
    wait_for("every event", 10, async || {
        client.calls().iter().any(|c| norm(c) == "removepodsandbox")
    })
    .await;
    let calls: Vec<String> = client
        .calls()
        .iter()
        .map(|c| norm(c))
        .filter(|c| want.iter().any(|w| norm(w) == *c))
        .collect();
    let want: Vec<String> = want.iter().map(|w| norm(w)).collect();
    assert_eq!(calls, want, "events in the order they happened: {:?}", client.calls());
}

/// Fails the first `fail` CreateContainer calls.
struct Failing {
    fail: Mutex<u32>,
}

impl TestPlugin for Failing {
    fn events(&self) -> u32 {
        mask(&[api::Event::CreateContainer])
    }

    fn create_container(&self, _req: api::CreateContainerRequest) -> Reply<api::CreateContainerResponse> {
        let fail = match self.fail.lock() {
            Ok(mut n) => {
                let f = *n > 0;
                *n = n.saturating_sub(1);
                f
            }
            Err(_) => false,
        };
        Box::pin(async move {
            if fail {
                Err("induced CreateContainer failure".into())
            } else {
                Ok(api::CreateContainerResponse::default())
            }
        })
    }
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_plugin_fails_create_container_leaving_nothing_and_a_retry_works() {
    require_root();
    let mut e = env(None).await;
    let plugin = Arc::new(Failing { fail: Mutex::new(1) });
    let _client = PluginClient::connect(&socket(&e), "failing", "10", plugin)
        .await
        .expect("register");
    let pod = e.pod("nri-fail").await;
    let (bundles, layers) = (e.berthd.state().join("containers"), e.berthd.root().join("containers"));
    let dir = e.berthd.dir().to_path_buf();
    let mounts = || berth_e2e::berthd::mounts_under(&dir).len();
    let before = (entries(&bundles), entries(&layers), mounts());
    let err = e
        .create(&pod, e.container("first", &["sleep", "30"]))
        .await
        .expect_err("the plugin fails it");
    assert!(
        err.message().contains("failing") && err.message().contains("induced CreateContainer failure"),
        "the error names the plugin and says why: {err:?}"
    );
    assert!(e.containers().await.is_empty(), "no container is listed");
    assert_eq!(
        (entries(&bundles), entries(&layers), mounts()),
        before,
        "no bundle, layer or mount is left"
    );
    let id = e
        .create(&pod, e.container("first", &["sleep", "30"]))
        .await
        .expect("the retry, with the same name");
    e.start(&id).await;
    assert_eq!(e.status(&id).await.state, cri::ContainerState::ContainerRunning as i32);
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
}

/// Answers CreateContainer never (until the test ends); tells the test it was called.
struct Hanging {
    called: tokio::sync::mpsc::UnboundedSender<()>,
}

impl TestPlugin for Hanging {
    fn events(&self) -> u32 {
        mask(&[api::Event::CreateContainer])
    }

    fn create_container(&self, _req: api::CreateContainerRequest) -> Reply<api::CreateContainerResponse> {
        let _ = self.called.send(());
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(api::CreateContainerResponse::default())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_plugin_times_out_and_is_dropped() {
    require_root();
    let toml = "[nri]\nplugin_request_timeout_secs = 1\n".to_string();
    let mut e = env_with(None, Some(toml)).await;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let client = PluginClient::connect(&socket(&e), "hang", "10", Arc::new(Hanging { called: tx }))
        .await
        .expect("register");
    let pod = e.pod("nri-hang").await;
    let t0 = Instant::now();
    let err = e
        .create(&pod, e.container("c", &["sleep", "30"]))
        .await
        .expect_err("the hanging plugin fails the creation");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "failed within the request timeout: {took:?}"
    );
    assert!(err.message().contains("hang"), "names the plugin: {err:?}");
    wait_for("berthd to drop the plugin", 10, async || client.is_closed()).await;
    assert!(plugins(&mut e).await.is_empty());
    let id = e
        .create(&pod, e.container("c", &["sleep", "30"]))
        .await
        .expect("created without the plugin");
    e.start(&id).await;
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_killed_in_the_middle_of_a_call_fails_that_call_only() {
    require_root();
    let mut e = env(None).await;
    let (tx, mut called) = tokio::sync::mpsc::unbounded_channel();
    let client = PluginClient::connect(&socket(&e), "crash", "10", Arc::new(Hanging { called: tx }))
        .await
        .expect("register");
    let pod = e.pod("nri-crash").await;
    let config = e.container("c", &["sleep", "30"]);
    let mut cri = Cri::connect(e.berthd.socket()).await.expect("connect");
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.0.clone(),
        config: Some(config.clone()),
        sandbox_config: Some(pod.1.clone()),
    };
    let create = tokio::spawn(async move { cri.runtime.create_container(req).await });
    called.recv().await.expect("the plugin is called");
    let t0 = Instant::now();
    client.close();
    let res = create.await.expect("join");
    assert!(res.is_err(), "the call the plugin died in fails: {res:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "at once, not at the timeout: {:?}",
        t0.elapsed()
    );
    wait_for("berthd to drop the plugin", 10, async || {
        plugins(&mut e).await.is_empty()
    })
    .await;
    let id = e.create(&pod, config).await.expect("created without the plugin");
    e.start(&id).await;
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
}

/// Processes running `exe`.
fn running(exe: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|l| l == exe))
                .collect()
        })
        .unwrap_or_default()
}

/// The e2e crate's example plugin (built by `cargo test` beside the tests).
fn example_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples/nri_plugin");
    assert!(p.is_file(), "{} is built by cargo test", p.display());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugins_from_the_plugin_dir_start_with_berthd_and_synchronize_again_after_a_restart() {
    require_root();
    let dirs = tempfile::tempdir().expect("tempdir");
    let (plugin_dir, conf_dir) = (dirs.path().join("plugins"), dirs.path().join("conf"));
    std::fs::create_dir_all(&plugin_dir).expect("mkdir");
    std::fs::create_dir_all(&conf_dir).expect("mkdir");
    let exe = plugin_dir.join("10-inject");
    std::fs::copy(example_plugin(), &exe).expect("install the plugin");
    let out = dirs.path().join("synced");
    std::fs::write(conf_dir.join("10-inject.conf"), format!("out={}\n", out.display())).expect("conf");
    let toml = format!(
        "[nri]\nplugin_path = \"{}\"\nplugin_config_path = \"{}\"\n",
        plugin_dir.display(),
        conf_dir.display()
    );
    let mut e = env_with(None, Some(toml)).await;
    wait_for("berthd to start the plugin", 10, async || {
        plugins(&mut e).await == ["10-inject"]
    })
    .await;

    let pod = e.pod("nri-dir").await;
    let (code, _, log) = e
        .run_to_exit(&pod, e.container("once", &["sh", "-c", "echo \"plugin=$NRI_PLUGIN\""]))
        .await;
    assert_eq!((code, log.contains("plugin=inject")), (0, true), "{log}");
    let id = e
        .create(&pod, e.container("long", &["sleep", "300"]))
        .await
        .expect("create");
    e.start(&id).await;

    // An external plugin too: after the restart it connects again, as plugins do.
    let external = Arc::new(Failing { fail: Mutex::new(0) });
    let client = PluginClient::connect(&socket(&e), "external", "20", external.clone())
        .await
        .expect("register");
    let first = running(&exe);
    assert_eq!(first.len(), 1, "one plugin process");

    e.berthd.restart().await.expect("restart berthd");
    e.cri = Cri::connect(e.berthd.socket()).await.expect("reconnect");
    wait_for("the external plugin to see the restart", 10, async || {
        client.is_closed()
    })
    .await;
    let again = PluginClient::connect(&socket(&e), "external", "20", external)
        .await
        .expect("the external plugin registers again");
    wait_for("both plugins", 10, async || {
        plugins(&mut e).await == ["10-inject", "20-external"]
    })
    .await;
    assert!(
        !first.iter().any(|p| running(&exe).contains(p)),
        "the old plugin process ended"
    );
    let synced = std::fs::read_to_string(&out).expect("sync log");
    let lines: Vec<&str> = synced.lines().collect();
    assert_eq!(lines.len(), 2, "synchronized at each start: {synced}");
    assert!(
        lines[1].contains(&id),
        "the restarted plugin learns the running container: {synced}"
    );
    assert_eq!(e.status(&id).await.state, cri::ContainerState::ContainerRunning as i32);

    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
    drop(again);
    drop(e);
    wait_for("the plugin process to end with berthd", 10, async || {
        running(&exe).is_empty()
    })
    .await;
}

/// A plugin that talks first; of the events, it takes only pod removals.
struct Quiet;

impl TestPlugin for Quiet {
    fn events(&self) -> u32 {
        mask(&[api::Event::RemovePodSandbox])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_updates_and_evicts_running_containers_unasked() {
    require_root();
    let mut e = env(None).await;
    let client = PluginClient::connect(&socket(&e), "tuner", "10", Arc::new(Quiet))
        .await
        .expect("register");
    let pod = e.pod("nri-update").await;
    let id = e
        .create(&pod, e.container("c", &["sleep", "300"]))
        .await
        .expect("create");
    e.start(&id).await;

    let limit = 48i64 << 20;
    let update = api::ContainerUpdate {
        container_id: id.clone(),
        linux: Some(api::LinuxContainerUpdate {
            resources: Some(api::LinuxResources {
                memory: Some(api::LinuxMemory {
                    limit: Some(api::OptionalInt64 { value: limit }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ignore_failure: false,
    };
    let resp = client
        .update_containers(api::UpdateContainersRequest {
            update: vec![update.clone()],
            evict: Vec::new(),
        })
        .await
        .expect("UpdateContainers");
    assert!(resp.failed.is_empty(), "{resp:?}");
    assert_eq!(
        e.memory_limit(&id).await,
        limit.to_string(),
        "the new limit is in the cgroup"
    );

    // An update of a container that does not exist is reported back as failed.
    let unknown = api::ContainerUpdate {
        container_id: "0123456789abcdef".into(),
        ..update
    };
    let resp = client
        .update_containers(api::UpdateContainersRequest {
            update: vec![unknown],
            evict: Vec::new(),
        })
        .await
        .expect("UpdateContainers");
    assert_eq!(resp.failed.len(), 1, "{resp:?}");

    let resp = client
        .update_containers(api::UpdateContainersRequest {
            update: Vec::new(),
            evict: vec![api::ContainerEviction {
                container_id: id.clone(),
                reason: "evicted by the test".into(),
            }],
        })
        .await
        .expect("UpdateContainers");
    assert!(resp.failed.is_empty(), "{resp:?}");
    let st = e.wait_exit(&id).await;
    assert_eq!(st.exit_code, 137, "killed: {st:?}");
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
}
