//! Faults under a real kubelet: kubelet keeps static pods churning (created, probed with an
//! exec readiness probe, deleted) while berthd is killed with SIGKILL and restarted at
//! random, the CNI bridge plugin fails one ADD in ten, and now and then a container's shim
//! is killed. Afterwards every pod that should run runs (kubelet's view and Berth's agree),
//! and once every pod is deleted nothing is left: no sandbox, container, shim, netns pin,
//! mount, cgroup, veth or IP address (see [`berth_e2e::chaos`]).
//!
//! The CI run keeps `CHAOS_PODS` (default 5) pods for `CHAOS_SECS` (default 75) seconds;
//! `CHAOS_PODS=30 CHAOS_SECS=600` is the long run.
//! `CHAOS_SEED` replays a run (the seed is printed). Alone in its test binary: kubelet owns
//! its cgroup root and ports while it runs.

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::test]
async fn kubelet_pods_survive_berthd_kills_cni_failures_and_shim_kills() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let seed = env_or("CHAOS_SEED", now);
    let (pods, secs) = (env_or("CHAOS_PODS", 5), env_or("CHAOS_SECS", 75));
    println!("chaos: seed {seed}, {pods} pods, {secs} s");
    let (report, e, kubelet) = berth_e2e::chaos::run(seed, pods, secs).await;
    println!("chaos: {report:?}");
    assert!(report.daemon_kills >= 1, "berthd was killed at least once");
    assert!(
        report.not_converged.is_none(),
        "not converged after the faults (seed {seed}): {:?}\nkubelet:\n{}\nberthd:\n{}",
        report.not_converged,
        kubelet.log_tail(60),
        e.berthd.log()
    );
    assert!(
        report.not_removed.is_empty(),
        "kubelet did not get everything removed (seed {seed}): {:?}\nkubelet:\n{}",
        report.not_removed,
        kubelet.log_tail(60)
    );
    let log = e.berthd.log();
    assert!(!log.contains("panicked"), "berthd panicked:\n{log}");
    assert!(
        report.leftovers.is_empty(),
        "left after every pod was deleted: {:?}",
        report.leftovers
    );
}
