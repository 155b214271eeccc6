//! Faults under a real kubelet: kubelet keeps static pods churning (created, probed with an
//! exec readiness probe, deleted) while berthd is killed with SIGKILL and restarted at
//! random, the CNI bridge plugin fails one ADD in ten, and now and then a container's shim
//! is killed. Afterwards every pod that should run runs (kubelet's view and Berth's agree),
//! and once every pod is deleted nothing is left: no sandbox, container, shim, netns pin,
//! mount, cgroup, veth or IP address.
//!
//! The CI run keeps `CHAOS_PODS` (default 5) pods for `CHAOS_SECS` (default 75) seconds;
//! `CHAOS_PODS=30 CHAOS_SECS=600` is the long run.
//! `CHAOS_SEED` replays a run (the seed is printed). Alone in its test binary: kubelet owns
//! its cgroup root and ports while it runs.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::kubelet::Kubelet;
use berth_e2e::workload::{env_with_cni_bin, Env};

/// xorshift64*: the run's randomness, from a seed that can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn manifest(name: &str, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["/bin/busybox", "sh", "-c", "echo up > /tmp/ready; exec /bin/busybox sleep 3600"]
    readinessProbe:
      exec:
        command: ["/bin/busybox", "cat", "/tmp/ready"]
      periodSeconds: 1
"#
    )
}

/// A `bridge` CNI plugin that fails one ADD in ten and otherwise is Debian's.
fn flaky_bridge(dir: &Path) {
    let script = "#!/bin/sh\n\
        if [ \"$CNI_COMMAND\" = ADD ] && [ $(( $(od -An -N1 -tu1 /dev/urandom) % 10 )) -eq 0 ]; then\n\
          echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"chaos: injected ADD failure\"}'\n\
          exit 1\n\
        fi\n\
        exec /usr/lib/cni/bridge\n";
    let path = dir.join("bridge");
    std::fs::write(&path, script).expect("write the flaky plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Pids of the shims of this berthd (their command lines name its state directory).
fn shims(state: &Path) -> Vec<u32> {
    let state = state.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("berth-shim") && cmdline.contains(&state)
        })
        .collect()
}

async fn sandboxes(e: &mut Env) -> Vec<cri::PodSandbox> {
    e.cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .map(|r| r.into_inner().items)
        .unwrap_or_default()
}

/// The pod name kubelet gives a static pod `name` on this node.
fn pod_name(kubelet: &Kubelet, name: &str) -> String {
    format!("{name}-{}", kubelet.node_name)
}

/// Whether each of `want` has exactly one ready sandbox with a running container, and no
/// other pod has a ready sandbox.
async fn converged(e: &mut Env, kubelet: &Kubelet, want: &[String]) -> Result<(), String> {
    let ready: Vec<cri::PodSandbox> = sandboxes(e)
        .await
        .into_iter()
        .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        .collect();
    let containers = e.containers().await;
    for name in want {
        let full = pod_name(kubelet, name);
        let mine: Vec<_> = ready
            .iter()
            .filter(|s| s.metadata.as_ref().is_some_and(|m| m.name == full))
            .collect();
        if mine.len() != 1 {
            return Err(format!("{full}: {} ready sandboxes", mine.len()));
        }
        let running = containers
            .iter()
            .any(|c| c.pod_sandbox_id == mine[0].id && c.state == cri::ContainerState::ContainerRunning as i32);
        if !running {
            return Err(format!("{full}: no running container"));
        }
    }
    let wanted: Vec<String> = want.iter().map(|n| pod_name(kubelet, n)).collect();
    if let Some(extra) = ready
        .iter()
        .find(|s| s.metadata.as_ref().is_some_and(|m| !wanted.contains(&m.name)))
    {
        return Err(format!("a deleted pod is still ready: {:?}", extra.metadata));
    }
    Ok(())
}

/// What kubelet's API says of its pods: (name, all containers ready).
async fn kubelet_pods(kubelet: &Kubelet) -> Vec<(String, bool)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let Ok(resp) = client
        .get(format!("https://127.0.0.1:{}/pods", kubelet.port))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    else {
        return Vec::new();
    };
    let list: serde_json::Value = resp.json().await.unwrap_or_default();
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let statuses = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let ready = !statuses.is_empty() && statuses.iter().all(|c| c["ready"] == true);
            (p["metadata"]["name"].as_str().unwrap_or_default().to_string(), ready)
        })
        .collect()
}

#[tokio::test]
async fn kubelet_pods_survive_berthd_kills_cni_failures_and_shim_kills() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let secs: u64 = std::env::var("CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(75);
    let pods: usize = std::env::var("CHAOS_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("chaos: seed {seed}, {pods} pods, {secs} s");
    let mut rng = Rng(seed);
    let wrappers = tempfile::tempdir().expect("tempdir");
    flaky_bridge(wrappers.path());
    let bins = format!("{}:/usr/lib/cni", wrappers.path().display());
    let mut e = env_with_cni_bin(None, None, &bins).await;
    let mut kubelet = Kubelet::start(&e.berthd.endpoint()).expect("kubelet starts");
    let state = e.berthd.state().to_path_buf();

    let mut live: Vec<String> = Vec::new();
    let mut serial = 0;
    let mut add = |live: &mut Vec<String>, kubelet: &Kubelet, image: &str| {
        serial += 1;
        let name = format!("chaos{serial}");
        std::fs::write(kubelet.manifests().join(format!("{name}.yaml")), manifest(&name, image)).expect("manifest");
        live.push(name);
    };
    for _ in 0..pods {
        add(&mut live, &kubelet, &e.image);
    }

    let (mut kills, mut shim_kills, mut churns) = (0, 0, 0);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut next_kill = start + Duration::from_secs(rng.range(15, 30));
    let mut next_shim = start + Duration::from_secs(rng.range(10, 25));
    let mut next_churn = start + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert!(kubelet.is_running(), "kubelet exited:\n{}", kubelet.log_tail(40));
        let now = Instant::now();
        if now >= next_churn {
            let gone = live.remove(rng.range(0, live.len() as u64) as usize);
            std::fs::remove_file(kubelet.manifests().join(format!("{gone}.yaml"))).expect("rm manifest");
            add(&mut live, &kubelet, &e.image);
            churns += 1;
            next_churn = now + Duration::from_secs(rng.range(4, 10));
        }
        if now >= next_shim {
            let pids = shims(&state);
            if !pids.is_empty() {
                let pid = pids[rng.range(0, pids.len() as u64) as usize];
                // A shim of this test's berthd, by pid.
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
                shim_kills += 1;
            }
            next_shim = now + Duration::from_secs(rng.range(15, 30));
        }
        if now >= next_kill {
            e.berthd.kill9();
            tokio::time::sleep(Duration::from_millis(rng.range(0, 2000))).await;
            e.berthd.restart().await.expect("berthd restarts");
            e.cri = berth_e2e::cri::Cri::connect(e.berthd.socket())
                .await
                .expect("reconnect");
            kills += 1;
            next_kill = Instant::now() + Duration::from_secs(rng.range(15, 30));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("chaos: {kills} berthd kills, {shim_kills} shim kills, {churns} pods replaced");
    assert!(kills >= 1, "berthd was killed at least once");

    // Calm again: the pods that should run, run, and kubelet says they are ready.
    let settle = Instant::now() + Duration::from_secs(180);
    loop {
        let ours = converged(&mut e, &kubelet, &live).await;
        let pods = kubelet_pods(&kubelet).await;
        let all_ready = live.iter().all(|n| {
            pods.iter()
                .any(|(name, ready)| *name == pod_name(&kubelet, n) && *ready)
        });
        if ours.is_ok() && all_ready {
            break;
        }
        assert!(
            Instant::now() < settle,
            "not converged after the faults (seed {seed}): {ours:?}, kubelet {pods:?}\nkubelet:\n{}\nberthd:\n{}",
            kubelet.log_tail(60),
            e.berthd.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Every pod deleted: nothing of them stays.
    for name in &live {
        std::fs::remove_file(kubelet.manifests().join(format!("{name}.yaml"))).expect("rm manifest");
    }
    let gone = Instant::now() + Duration::from_secs(180);
    loop {
        let left = sandboxes(&mut e).await;
        if left.is_empty() && e.containers().await.is_empty() {
            break;
        }
        assert!(
            Instant::now() < gone,
            "kubelet did not get everything removed (seed {seed}): {left:?}\nkubelet:\n{}",
            kubelet.log_tail(60)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    kubelet.stop();
    let log = e.berthd.log();
    assert!(!log.contains("panicked"), "berthd panicked:\n{log}");
    assert_eq!(shims(&state), Vec::<u32>::new(), "shims left");
    assert_eq!(berth_e2e::pod::count(&state.join("netns")), 0, "netns pins left");
    let mounts: Vec<_> = berth_e2e::berthd::mounts_under(e.berthd.dir())
        .into_iter()
        .filter(|m| {
            let m = m.display().to_string();
            m.contains("/containers/") || m.contains("/sandboxes/") || m.contains("/netns/")
        })
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let runtime_state: usize = std::fs::read_dir(state.join("runtimes"))
        .map(|d| d.flatten().map(|r| berth_e2e::pod::count(&r.path())).sum())
        .unwrap_or(0);
    assert_eq!(runtime_state, 0, "runc state left");
    let veths = berth_e2e::pod::output({
        let mut c = std::process::Command::new("ip");
        c.args(["-o", "link", "show", "master", &e.net().bridge]);
        c
    });
    assert!(veths.trim().is_empty(), "veths left on {}: {veths}", e.net().bridge);
    let ipam = Path::new("/var/lib/cni/networks").join(&e.net().name);
    let reserved: Vec<String> = std::fs::read_dir(&ipam)
        .map(|d| {
            d.flatten()
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(reserved.is_empty(), "IP addresses still reserved: {reserved:?}");
    let cgroups: Vec<String> = kubelet
        .cgroup_dirs()
        .into_iter()
        .filter(|d| {
            let leaf = d.rsplit('/').next().unwrap_or_default();
            leaf.len() == 64 && leaf.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .collect();
    assert!(cgroups.is_empty(), "sandbox or container cgroups left: {cgroups:?}");
}
