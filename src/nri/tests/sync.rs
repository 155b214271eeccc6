//! Registration and synchronization: timeouts, split state, the host's hold.

use super::*;

#[tokio::test]
async fn a_slow_synchronize_gets_the_registration_timeout() {
    struct Slow;
    impl TestPlugin for Slow {
        fn events(&self) -> u32 {
            mask(&[Event::RunPodSandbox])
        }
        fn synchronize(&self, _req: SynchronizeRequest) -> Reply<SynchronizeResponse> {
            Box::pin(async {
                // Longer than the request timeout (1 s), shorter than registration's (3 s).
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok(SynchronizeResponse::default())
            })
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), Arc::default()).await;
    let _c = connect(&nri, dir.path(), "slow-sync", "10", Slow).await;
    assert_eq!(nri.stats().dropped, 0);
}

#[tokio::test]
async fn a_large_state_is_synchronized_in_pieces() {
    let big = |i: usize| PodSandbox {
        id: format!("pod{i}"),
        name: "n".repeat(2 << 20),
        ..Default::default()
    };
    let host = Arc::new(Host {
        pods: vec![big(1), big(2)],
        containers: vec![ctr()],
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let nri = start(dir.path(), host).await;
    let c = connect(&nri, dir.path(), "p", "10", probe("p", &[], &Shared::default())).await;
    assert_eq!(c.calls(), ["Configure", "Synchronize", "Synchronize"]);
}

#[tokio::test]
async fn a_connection_that_never_registers_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = NriConfig {
        plugin_registration_timeout_secs: 1,
        ..config(dir.path())
    };
    let nri = Nri::start(&cfg, Arc::new(Host::default())).expect("start");
    let _silent = tokio::net::UnixStream::connect(&cfg.socket_path)
        .await
        .expect("connect");
    let start = Instant::now();
    while nri.stats().dropped == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(!nri.has_plugins());
}

#[tokio::test]
async fn the_listing_hold_lasts_through_synchronization() {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    struct Holding(Arc<AtomicBool>);
    impl NriHost for Holding {
        fn list(&self) -> BoxFuture<'_, Listing> {
            let flag = Flag(self.0.clone());
            Box::pin(async move {
                Listing {
                    pods: vec![pod()],
                    containers: Vec::new(),
                    hold: Box::new(flag),
                }
            })
        }
        fn update_containers(
            &self,
            _: Vec<ContainerUpdate>,
            _: Vec<ContainerEviction>,
        ) -> BoxFuture<'_, Vec<ContainerUpdate>> {
            Box::pin(async { Vec::new() })
        }
    }
    struct Checks(Arc<AtomicBool>, Arc<AtomicBool>);
    impl TestPlugin for Checks {
        fn events(&self) -> u32 {
            0
        }
        fn synchronize(&self, _req: SynchronizeRequest) -> Reply<SynchronizeResponse> {
            self.1.store(self.0.load(Ordering::SeqCst), Ordering::SeqCst);
            Box::pin(async { Ok(SynchronizeResponse::default()) })
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (released, released_during_sync) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(true)));
    let nri = Nri::start(&config(dir.path()), Arc::new(Holding(released.clone()))).expect("start");
    assert!(nri.is_enabled() && !Nri::disabled().is_enabled());
    let _c = connect(
        &nri,
        dir.path(),
        "h",
        "10",
        Checks(released.clone(), released_during_sync.clone()),
    )
    .await;
    assert!(!released_during_sync.load(Ordering::SeqCst), "held while synchronizing");
    // Released right after the plugin is listed (so it misses no later change).
    let start = Instant::now();
    while !released.load(Ordering::SeqCst) {
        assert!(start.elapsed() < Duration::from_secs(5), "hold never released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let json = serde_json::to_value(nri.plugins()).expect("json");
    assert_eq!(json[0]["name"], "h");
    nri.update_pod_sandbox(&pod(), None, Some(&LinuxResources::default()))
        .await
        .expect("update pod");
}
