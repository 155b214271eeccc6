//! Pod helpers for the sandbox tests: a private CNI network, sandbox configs, running
//! commands inside a pod's network namespace, and a snapshot of host state for leak checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::cri::{v1 as cri, Cri};
use crate::{require_root, Berthd, BerthdOpts};

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A CNI network of its own for one test: a bridge and a /24 no other test uses. Dropping
/// it deletes the bridge and host-local's allocation files.
pub struct TestNet {
    dir: tempfile::TempDir,
    pub bridge: String,
    pub name: String,
    /// The first three octets of the /24, e.g. `10.201.17`.
    pub subnet_prefix: String,
}

impl TestNet {
    pub fn new() -> TestNet {
        require_root();
        let n = NEXT_NET.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{}{}", pid % 10000, n);
        let bridge = format!("bt{tag}");
        let name = format!("berth-e2e-{tag}");
        let subnet_prefix = format!("10.{}.{}", 200 + n, pid % 250);
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("{subnet_prefix}.0/24")}]]}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        std::fs::write(dir.path().join("10-test.conflist"), conf.to_string()).expect("write conflist");
        TestNet {
            dir,
            bridge,
            name,
            subnet_prefix,
        }
    }

    pub fn conf_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestNet {
    fn default() -> Self {
        TestNet::new()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(Path::new("/var/lib/cni/networks").join(&self.name));
    }
}

/// A berthd using `net` and Debian's plugins.
pub async fn berthd(net: &TestNet) -> (Berthd, Cri) {
    let berthd = Berthd::start(BerthdOpts {
        extra_args: vec![
            "--cni-conf-dir".into(),
            net.conf_dir().display().to_string(),
            "--cni-bin-dir".into(),
            "/usr/lib/cni".into(),
        ],
        ..Default::default()
    })
    .await
    .expect("berthd starts");
    let cri = Cri::connect(berthd.socket()).await.expect("connect");
    (berthd, cri)
}

pub fn pod_config(name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: 0,
                    pid: 1,
                    ipc: 0,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn run(cri: &mut Cri, config: cri::PodSandboxConfig) -> Result<String, tonic::Status> {
    let req = cri::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    };
    Ok(cri.runtime.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id)
}

pub async fn status(cri: &mut Cri, id: &str) -> Result<(cri::PodSandboxStatus, serde_json::Value), tonic::Status> {
    let req = cri::PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose: true,
    };
    let resp = cri.runtime.pod_sandbox_status(req).await?.into_inner();
    let info = resp
        .info
        .get("info")
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or_default();
    Ok((resp.status.expect("status"), info))
}

pub async fn stop_remove(cri: &mut Cri, id: &str) {
    cri.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .expect("stop");
    cri.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .expect("remove");
}

/// Runs a command inside a network namespace file.
pub fn in_netns(netns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={netns}")).args(args);
    c
}

/// A listener that answers one TCP connection with `reply`, inside `netns`.
pub struct Listener(std::process::Child);

impl Listener {
    pub fn start(netns: &str, port: u16, reply: &str) -> Listener {
        let script = format!("while true; do echo '{reply}' | busybox nc -l -p {port}; done");
        let child = in_netns(netns, &["busybox", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        std::thread::sleep(Duration::from_millis(300));
        Listener(child.expect("listener"))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn output(mut c: Command) -> String {
    let out = c.output().expect("run");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

pub fn mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(PathBuf::from))
        .collect()
}

/// What a leak would change: mounts, network namespaces, interfaces, NAT/filter rules and
/// Berth's cgroups.
pub fn host_snapshot() -> (usize, usize, String, usize, usize) {
    let links = output({
        let mut c = Command::new("ip");
        c.args(["-o", "link", "show"]);
        c
    });
    let mut names: Vec<String> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .collect();
    names.sort();
    let rules = output(Command::new("iptables-save"))
        .lines()
        .filter(|l| l.starts_with('-'))
        .count();
    // Berth's default cgroup parent is /berth, in every hierarchy.
    let cgroups = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| d.flatten().map(|h| count(&h.path().join("berth"))).sum())
        .unwrap_or(0);
    (
        mounts().len(),
        count(Path::new("/run/netns")),
        names.join(","),
        rules,
        cgroups,
    )
}
