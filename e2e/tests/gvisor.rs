//! gVisor pods end to end: Debian's `runsc` behind the default config's `runsc` handler, a
//! real registry, CNI, cgroups. A pod's containers run in one gVisor sandbox (one Sentry
//! process), serve through the pod IP, answer exec and write CRI logs; berthd can be
//! killed and restarted under them; removal leaves no sandbox, shim, mount or runtime state.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::pod;
use berth_e2e::probe::{processes_with, wait_http};
use berth_e2e::workload::{env, Env};

/// `runsc list` of the handler's state root: (id, pid) of every container runsc knows.
fn runsc_list(e: &Env) -> Vec<(String, u64)> {
    let root = e.berthd.state().join("runtimes").join("runsc");
    let out = std::process::Command::new("runsc")
        .arg("--root")
        .arg(&root)
        .args(["list", "--format", "json"])
        .output()
        .expect("runsc list");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or("").to_string(),
                        c["pid"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_gvisor_pod_runs_its_containers_in_one_sandbox() {
    assert!(
        std::process::Command::new("runsc").arg("--version").output().is_ok(),
        "runsc is not installed (e2e/run.sh installs Debian's runsc)"
    );
    let mut e = env(None).await;
    let status = e.runtime_status().await;
    assert!(
        status.runtime_handlers.iter().any(|h| h.name == "runsc"),
        "the default config offers runsc: {:?}",
        status.runtime_handlers
    );
    let (pod, ip) = e.pod_on("gvisor-web", "runsc").await;
    let pod_id = pod.0.clone();

    let web = e
        .create(
            &pod,
            e.container(
                "web",
                &[
                    "sh",
                    "-c",
                    "mkdir -p /www && echo served-by-gvisor > /www/index.html && echo web-started && i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; exec httpd -f -p 80 -h /www",
                ],
            ),
        )
        .await
        .expect("create web");
    e.start(&web).await;
    let side = e
        .create(
            &pod,
            e.container(
                "side",
                &[
                    "sh",
                    "-c",
                    "echo side-started; i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; exec sleep 100000",
                ],
            ),
        )
        .await
        .expect("create side");
    e.start(&side).await;

    // Served through the pod IP from the host, on a port below 1024 (the Sentry binds it
    // on the host stack in the pod's namespace).
    assert_eq!(wait_http(&ip, 80, "/index.html").await.trim(), "served-by-gvisor");
    // Exec runs inside gVisor's kernel, not the host's.
    let uname = std::process::Command::new("uname").arg("-r").output().expect("uname");
    let host_kernel = String::from_utf8_lossy(&uname.stdout).trim().to_string();
    let r = e.exec(&web, &["busybox", "uname", "-r"], 10).await.expect("exec");
    assert_eq!(r.exit_code, 0, "{r:?}");
    let kernel = String::from_utf8_lossy(&r.stdout).trim().to_string();
    assert!(
        !kernel.is_empty() && kernel != host_kernel,
        "gVisor kernel {kernel:?}, host {host_kernel:?}"
    );
    // An exec past its timeout is answered at the timeout and its process is gone from the
    // sandbox (killing runsc's exec process alone would leave it running there).
    e.assert_exec_sync(&side, "sleep 100000").await;
    // One sandbox for the pod: runsc lists the pod's sandbox container and both containers
    // with one and the same (Sentry) pid.
    let listed = runsc_list(&e);
    let pids: Vec<u64> = [&pod_id, &web, &side]
        .iter()
        .map(|id| {
            listed
                .iter()
                .find(|(i, _)| i == *id)
                .unwrap_or_else(|| panic!("runsc does not list {id}: {listed:?}"))
                .1
        })
        .collect();
    assert!(pids[0] > 0 && pids.iter().all(|p| *p == pids[0]), "{listed:?}");
    // Container stats come from inside the sandbox (the containers' own cgroups are empty:
    // the Sentry runs in the pod's): memory in use and CPU time of each. Both containers
    // count to 50000 in their shell before their main process (gVisor accounts CPU time in
    // ticks, so a container that only started `sleep` may still show none).
    for id in [&web, &side] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stats = e.container_stats(id).await;
            let memory = stats.memory.and_then(|m| m.working_set_bytes).map_or(0, |v| v.value);
            let cpu = stats.cpu.and_then(|c| c.usage_core_nano_seconds).map_or(0, |v| v.value);
            if memory > 0 && cpu > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{id}: working set {memory} B, CPU {cpu} ns");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // CRI logs.
    let log_of = |name: &str| std::fs::read_to_string(Path::new(&pod.1.log_directory).join(format!("{name}.log")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_of("side").unwrap_or_default().contains("stdout F side-started") {
        assert!(Instant::now() < deadline, "side's log: {:?}", log_of("side"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log_of("web").unwrap_or_default().contains("stdout F web-started"));

    // berthd killed and restarted: the pod keeps serving and stays controllable.
    e.kill9_restart().await;
    assert_eq!(wait_http(&ip, 80, "/index.html").await.trim(), "served-by-gvisor");
    let r = e
        .exec(&web, &["cat", "/www/index.html"], 10)
        .await
        .expect("exec after restart");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "served-by-gvisor");

    // A container stopped alone reports its own exit; the pod keeps running.
    e.stop(&side, 2).await;
    let st = e.wait_exit(&side).await;
    // SIGTERM (143), or SIGKILL after the grace period where sleep is its PID 1 (137).
    assert!([137, 143].contains(&st.exit_code), "{st:?}");
    assert_eq!(wait_http(&ip, 80, "/index.html").await.trim(), "served-by-gvisor");

    let sandbox_pid = pids[0];
    pod::stop_remove(&mut e.cri, &pod_id).await;
    assert!(runsc_list(&e).is_empty(), "runsc state left: {:?}", runsc_list(&e));
    assert!(
        !Path::new(&format!("/proc/{sandbox_pid}")).exists(),
        "the gVisor sandbox {sandbox_pid} still runs"
    );
    let left = processes_with(&pod_id);
    assert!(left.is_empty(), "processes of the pod left: {left:?}");
    let state = e.berthd.state().to_string_lossy().into_owned();
    let mounts: Vec<_> = pod::mounts()
        .into_iter()
        .filter(|m| m.to_string_lossy().starts_with(&state))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(!e.berthd.state().join("sandboxes").join(&pod_id).exists());
}
