//! Plugins that fail, hang or go away; updates a plugin asks for; NRI switched off.

use super::*;

/// Records what an observer sees.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl NriObserver for Seen {
    fn call(&self, index: &str, plugin: &str, method: &str, ok: bool, _elapsed: Duration) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("{index}-{plugin} {method} {ok}"));
    }
    fn dropped(&self, index: &str, plugin: &str) {
        self.0.lock().expect("lock").push(format!("{index}-{plugin} dropped"));
    }
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
    let seen = Arc::new(Seen::default());
    nri.set_observer(seen.clone());
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
    assert_eq!(
        *seen.0.lock().expect("lock"),
        [
            "40-slow Configure true",
            "40-slow Synchronize true",
            "40-slow CreateContainer false",
            "40-slow dropped"
        ]
    );
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
