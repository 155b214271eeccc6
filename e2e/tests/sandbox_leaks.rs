//! Leak check, alone in its own test binary so no other test changes the host meanwhile:
//! 50 pods run, stopped and removed leave mounts, namespaces, interfaces, iptables rules and
//! cgroups exactly as they were.

use berth_e2e::pod::{berthd, count, host_snapshot, pod_config, run, stop_remove, TestNet};

#[tokio::test]
async fn fifty_pods_leave_the_host_as_it_was() {
    let net = TestNet::new();
    let (berthd, mut cri) = berthd(&net).await;
    // Warm up once so the bridge (which stays, like any CNI bridge) exists before counting.
    let warm = run(&mut cri, pod_config("warm")).await.expect("warm");
    stop_remove(&mut cri, &warm).await;
    let before = host_snapshot();
    for i in 0..50 {
        let id = run(&mut cri, pod_config(&format!("p{i}"))).await.expect("run");
        stop_remove(&mut cri, &id).await;
    }
    let after = host_snapshot();
    assert_eq!(before, after, "host state changed after 50 pods");
    assert_eq!(count(&berthd.state().join("netns")), 0);
}
