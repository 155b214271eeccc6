//! Faults under a real kubelet, shared by `tests/kubelet_chaos.rs` (which asserts that Berth
//! loses nothing) and the `fault-table` program (which runs the same faults against Berth or
//! containerd and reports what each left): static pods kept churning, the runtime daemon
//! SIGKILLed and restarted, a CNI `bridge` that fails one ADD in ten, shims killed.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cri::v1 as cri;
use crate::kubelet::Kubelet;
use crate::workload::{env_with_cni_bin, Env};

/// xorshift64*: a run's randomness, from a seed that can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// A static pod whose one container is ready once it has written its file.
pub fn manifest(name: &str, image: &str) -> String {
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

/// A CNI plugin directory: Debian's plugins, except a `bridge` that fails one ADD in ten
/// (one directory, as containerd takes only one).
pub fn flaky_cni_dir(dir: &Path) {
    let script = "#!/bin/sh\n\
        if [ \"$CNI_COMMAND\" = ADD ] && [ $(( $(od -An -N1 -tu1 /dev/urandom) % 10 )) -eq 0 ]; then\n\
          echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"chaos: injected ADD failure\"}'\n\
          exit 1\n\
        fi\n\
        exec /usr/lib/cni/bridge\n";
    let path = dir.join("bridge");
    std::fs::write(&path, script).expect("write the flaky plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for plugin in std::fs::read_dir("/usr/lib/cni").expect("/usr/lib/cni").flatten() {
        if plugin.file_name() != "bridge" {
            std::os::unix::fs::symlink(plugin.path(), dir.join(plugin.file_name())).expect("symlink a plugin");
        }
    }
}

/// Pids of the shims of the daemon whose state is `state` (their command lines name it).
pub fn shims(state: &Path) -> Vec<u32> {
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
            (cmdline.contains("berth-shim") || cmdline.contains("containerd-shim")) && cmdline.contains(&state)
        })
        .collect()
}

pub async fn sandboxes(e: &mut Env) -> Vec<cri::PodSandbox> {
    e.cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .map(|r| r.into_inner().items)
        .unwrap_or_default()
}

/// The pod name kubelet gives a static pod `name` on this node.
pub fn pod_name(kubelet: &Kubelet, name: &str) -> String {
    format!("{name}-{}", kubelet.node_name)
}

/// Whether each of `want` has exactly one ready sandbox with a running container, and no
/// other pod has a ready sandbox.
pub async fn converged(e: &mut Env, kubelet: &Kubelet, want: &[String]) -> Result<(), String> {
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
pub async fn kubelet_pods(kubelet: &Kubelet) -> Vec<(String, bool)> {
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

/// What one chaos run did and what it left.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub daemon_kills: u32,
    pub shim_kills: u32,
    pub churns: u32,
    /// Seconds from the end of the faults until kubelet and the runtime agreed; `None` when
    /// they did not within the settle time.
    pub converged_after: Option<f64>,
    /// Why they did not converge.
    pub not_converged: Option<String>,
    /// Sandboxes or containers still listed after every pod was deleted and the settle time.
    pub not_removed: Vec<String>,
    /// What stayed on the host once every pod was deleted.
    pub leftovers: Vec<String>,
}

/// Runs the faults for `secs` seconds with `pods` pods, then waits (3 minutes at most) for
/// convergence, deletes every pod and looks for what is left.
pub async fn run(seed: u64, pods: usize, secs: u64) -> (Report, Env, Kubelet) {
    let mut rng = Rng(seed);
    let wrappers = tempfile::tempdir().expect("tempdir");
    flaky_cni_dir(wrappers.path());
    let mut e = env_with_cni_bin(None, None, &wrappers.path().display().to_string()).await;
    let mut kubelet = Kubelet::start(&e.berthd.endpoint()).expect("kubelet starts");
    let state = e.berthd.state().to_path_buf();
    let mut report = Report {
        seed,
        ..Default::default()
    };

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
            report.churns += 1;
            next_churn = now + Duration::from_secs(rng.range(4, 10));
        }
        if now >= next_shim {
            let pids = shims(&state);
            if !pids.is_empty() {
                // A shim of this run's daemon, by pid.
                let pid = pids[rng.range(0, pids.len() as u64) as usize];
                let _ = crate::sys::signal(pid, libc::SIGKILL);
                report.shim_kills += 1;
            }
            next_shim = now + Duration::from_secs(rng.range(15, 30));
        }
        if now >= next_kill {
            e.berthd.kill9();
            tokio::time::sleep(Duration::from_millis(rng.range(0, 2000))).await;
            e.berthd.restart().await.expect("the runtime restarts");
            e.cri = crate::cri::Cri::connect(e.berthd.socket()).await.expect("reconnect");
            report.daemon_kills += 1;
            next_kill = Instant::now() + Duration::from_secs(rng.range(15, 30));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Calm again: the pods that should run, run, and kubelet says they are ready.
    let calm = Instant::now();
    let settle = calm + Duration::from_secs(180);
    loop {
        let ours = converged(&mut e, &kubelet, &live).await;
        let pods = kubelet_pods(&kubelet).await;
        let all_ready = live.iter().all(|n| {
            pods.iter()
                .any(|(name, ready)| *name == pod_name(&kubelet, n) && *ready)
        });
        if ours.is_ok() && all_ready {
            report.converged_after = Some(calm.elapsed().as_secs_f64());
            break;
        }
        if Instant::now() > settle {
            report.not_converged = Some(format!("{ours:?}, kubelet {pods:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Every pod deleted: nothing of them may stay.
    for name in &live {
        std::fs::remove_file(kubelet.manifests().join(format!("{name}.yaml"))).expect("rm manifest");
    }
    let gone = Instant::now() + Duration::from_secs(180);
    loop {
        let pods = sandboxes(&mut e).await;
        let containers = e.containers().await;
        if pods.is_empty() && containers.is_empty() {
            break;
        }
        if Instant::now() > gone {
            report.not_removed = pods
                .iter()
                .map(|p| format!("sandbox {} {:?}", p.id, p.metadata.as_ref().map(|m| &m.name)))
                .chain(containers.iter().map(|c| format!("container {}", c.id)))
                .collect();
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    kubelet.stop();
    report.leftovers = leftovers(&e, &kubelet);
    (report, e, kubelet)
}

/// What a runtime left on the host once it lists no pod: shims, netns pins and container or
/// sandbox mounts under its directory, runc state, veths on the test bridge, reserved IP
/// addresses, sandbox and container cgroups under kubelet's cgroup root.
pub fn leftovers(e: &Env, kubelet: &Kubelet) -> Vec<String> {
    let state = e.berthd.state();
    let mut out: Vec<String> = shims(state).iter().map(|p| format!("shim pid {p}")).collect();
    out.extend(
        crate::berthd::mounts_under(e.berthd.dir())
            .into_iter()
            .map(|m| m.display().to_string())
            .filter(|m| {
                ["/containers/", "/sandboxes/", "/netns", "rootfs", "/shm"]
                    .iter()
                    .any(|k| m.contains(k))
            })
            .map(|m| format!("mount {m}")),
    );
    for pins in [state.join("netns"), state.join("io.containerd.grpc.v1.cri/netns")] {
        if let Ok(rd) = std::fs::read_dir(&pins) {
            out.extend(rd.flatten().map(|p| format!("netns pin {}", p.path().display())));
        }
    }
    for root in crate::containerd::runc_roots(state) {
        if let Ok(rd) = std::fs::read_dir(&root) {
            out.extend(rd.flatten().map(|c| format!("runc state {}", c.path().display())));
        }
    }
    let veths = crate::pod::output({
        let mut c = std::process::Command::new("ip");
        c.args(["-o", "link", "show", "master", &e.net().bridge]);
        c
    });
    out.extend(
        veths
            .lines()
            .map(|l| format!("veth {}", l.split(':').nth(1).unwrap_or(l).trim())),
    );
    let ipam = Path::new("/var/lib/cni/networks").join(&e.net().name);
    if let Ok(rd) = std::fs::read_dir(&ipam) {
        out.extend(
            rd.flatten()
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
                .map(|ip| format!("IP {ip} reserved")),
        );
    }
    out.extend(
        kubelet
            .cgroup_dirs()
            .into_iter()
            .filter(|d| {
                let leaf = d.rsplit('/').next().unwrap_or_default();
                leaf.len() == 64 && leaf.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .map(|d| format!("cgroup {d}")),
    );
    out
}
