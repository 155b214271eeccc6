//! The harness's containerd mode (what `fault-table` and `e2e/faults-vs-containerd.sh`
//! compare Berth with): Debian's containerd started in berthd's place with everything in
//! the test's directory runs a pod from the test registry on the test network, and dropping
//! it leaves no shim, mount, runc state or netns pin behind.

use berth_e2e::containerd::Runtime;
use berth_e2e::workload::env_on;

#[tokio::test]
async fn containerd_in_berthds_place_runs_a_pod_and_leaves_nothing() {
    berth_e2e::require_root();
    let parents = berth_e2e::containerd::new_cgroup_parents();
    let mut e = env_on(Runtime::Containerd, None, None, "/usr/lib/cni").await;
    assert_eq!(e.berthd.runtime(), Runtime::Containerd);
    let version = e
        .cri
        .runtime
        .version(berth_e2e::cri::v1::VersionRequest::default())
        .await
        .expect("Version")
        .into_inner();
    assert_eq!(version.runtime_name, "containerd", "{version:?}");
    let pod = e.pod("ctrd").await;
    let (code, _, log) = e
        .run_to_exit(&pod, e.container("hello", &["sh", "-c", "echo hello from $(hostname)"]))
        .await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("hello from"), "{log}");
    let state = e.berthd.state().to_path_buf();
    let dir = e.berthd.dir().to_path_buf();
    assert!(
        !berth_e2e::chaos::shims(&state).is_empty(),
        "containerd's shim is found by its state dir"
    );
    assert!(
        berth_e2e::berthd::mounts_under(&dir)
            .iter()
            .any(|m| m.display().to_string().contains("/netns/")),
        "netns pins live under the test directory"
    );
    drop(e);
    assert_eq!(berth_e2e::chaos::shims(&state), Vec::<u32>::new(), "shims left");
    assert!(berth_e2e::berthd::mounts_under(&dir).is_empty(), "mounts left");
    assert!(!dir.exists(), "{} removed", dir.display());
    let made: Vec<_> = parents.iter().filter(|p| p.exists()).collect();
    assert!(made.is_empty(), "cgroup parents containerd made are left: {made:?}");
}
