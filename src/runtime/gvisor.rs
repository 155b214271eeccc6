//! Pods of a `gvisor` runtime handler: one gVisor sandbox per pod.
//!
//! runsc groups containers by their OCI annotations: a container whose
//! `io.kubernetes.cri.container-type` is `sandbox` starts a new sandbox (a gVisor kernel,
//! its gofer), and one whose type is `container` joins the sandbox named by
//! `io.kubernetes.cri.sandbox-id`. Berth's containers carry `container` and their pod's id
//! (container/spec.rs), so each gVisor pod gets a sandbox container of its own, created
//! under the pod's id when the pod starts: `berth-pause` as its process, the pod's network
//! namespace, the pod's cgroup, served by a `berth-shim` like any container. Its bundle is
//! `<pod state dir>/gvisor`, its root file system an empty read-only directory with
//! `berth-pause` and the shared libraries it loads bind-mounted read-only (only those
//! directories of the host reach the sandbox's file server, never `/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use serde_json::{json, Value};

use super::handler::{runtime_root, HandlerKind, Runtime};
use super::shim;
use crate::sandbox::hooks::PodRuntime;
use crate::sandbox::{NsMode, SandboxRecord};

/// Library directories of the host that `berth-pause` may load from.
const LIB_DIRS: [&str; 4] = ["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

pub struct GvisorPods {
    pub shim_binary: PathBuf,
    pub pause_binary: PathBuf,
    pub state_dir: PathBuf,
    /// The configured handlers; only `gvisor` ones are acted on.
    pub runtimes: BTreeMap<String, Runtime>,
}

impl GvisorPods {
    /// Some when a configured handler is a gVisor one.
    pub fn new(pods: GvisorPods) -> Option<GvisorPods> {
        pods.runtimes
            .values()
            .any(|r| r.kind == HandlerKind::Gvisor)
            .then_some(pods)
    }

    fn runtime(&self, pod: &SandboxRecord) -> Option<&Runtime> {
        self.runtimes
            .get(&pod.spec.runtime_handler)
            .filter(|r| r.kind == HandlerKind::Gvisor)
    }

    fn root(&self, pod: &SandboxRecord) -> PathBuf {
        runtime_root(&self.state_dir, &pod.spec.runtime_handler)
    }

    async fn do_start(&self, pod: &SandboxRecord, rt: &Runtime, bundle: &Path) -> Result<(), String> {
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
        let mut mounts = vec![
            json!({"destination": "/proc", "type": "proc", "source": "proc"}),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}),
            json!({"destination": "/pause", "type": "bind", "source": self.pause_binary, "options": ["rbind", "ro"]}),
        ];
        for dir in LIB_DIRS {
            let host = Path::new(dir);
            let inside = rootfs.join(dir.trim_start_matches('/'));
            if let Ok(target) = std::fs::read_link(host) {
                // Merged /usr: the same link inside, pointing at the bound directory.
                if let Some(parent) = inside.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                match std::os::unix::fs::symlink(&target, &inside) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(format!("{}: {e}", inside.display()))
                    }
                    _ => {}
                }
            } else if host.is_dir() {
                mounts.push(json!({"destination": dir, "type": "bind", "source": dir, "options": ["rbind", "ro"]}));
            }
        }
        let config = sandbox_spec(pod, mounts);
        let bytes = serde_json::to_vec_pretty(&config).map_err(|e| format!("config.json: {e}"))?;
        std::fs::write(bundle.join("config.json"), bytes).map_err(|e| format!("config.json: {e}"))?;
        shim::start(shim::StartArgs {
            binary: &self.shim_binary,
            id: &pod.id,
            bundle,
            runtime: &rt.binary,
            runtime_root: &self.root(pod),
            log_path: Path::new("/dev/null"),
            stdin: false,
            stdin_once: false,
            tty: false,
            // The pod's cgroup is a hierarchy path whatever the cgroup driver.
            systemd_cgroup: false,
            runtime_args: &rt.args,
            gvisor: true,
            shim_v2: false,
            events_address: None,
        })
        .await
        .map_err(|e| format!("gVisor sandbox: {e}"))?;
        shim::start_container(bundle)
            .await
            .map_err(|e| format!("starting the gVisor sandbox: {e}"))
    }

    async fn do_stop(&self, pod: &SandboxRecord, rt: &Runtime, bundle: &Path) {
        if !bundle.exists() {
            return;
        }
        let _ = shim::take_down(bundle, &pod.id).await;
        let runtime = berth_shim::oci::OciRuntime {
            bin: rt.binary.clone(),
            root: self.root(pod),
            systemd_cgroup: false,
            log: bundle.join("runc.log"),
            args: rt.args.clone(),
        };
        let _ = tokio::process::Command::from(runtime.delete_force(&pod.id))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        if let Err(e) = std::fs::remove_dir_all(bundle) {
            tracing::warn!(sandbox = %pod.id, error = %e, "removing the gVisor sandbox's bundle");
        }
    }
}

impl PodRuntime for GvisorPods {
    fn start<'a>(&'a self, pod: &'a SandboxRecord, dir: &'a Path) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let Some(rt) = self.runtime(pod) else { return Ok(()) };
            let bundle = dir.join("gvisor");
            let r = self.do_start(pod, rt, &bundle).await;
            if r.is_err() {
                self.do_stop(pod, rt, &bundle).await;
            }
            r
        }
        .boxed()
    }

    fn stop<'a>(&'a self, pod: &'a SandboxRecord, dir: &'a Path) -> BoxFuture<'a, ()> {
        async move {
            if let Some(rt) = self.runtime(pod) {
                self.do_stop(pod, rt, &dir.join("gvisor")).await;
            }
        }
        .boxed()
    }

    /// With the host stack (`--network=host`), the Sentry opens its sockets on the host in
    /// the pod's network namespace from a user namespace of its own, where binding a port
    /// below 1024 is refused (a web server on :80 fails with EACCES). The pod's own
    /// namespace lets any port be bound, as Docker sets it for every container.
    fn net_sysctls(&self, pod: &SandboxRecord) -> Vec<(String, String)> {
        match self.runtime(pod) {
            Some(rt) if !rt.args.iter().any(|a| a == "--network=sandbox") => {
                vec![("net.ipv4.ip_unprivileged_port_start".into(), "0".into())]
            }
            _ => Vec::new(),
        }
    }
}

/// The OCI spec of a pod's sandbox container. runsc shares a PID or IPC namespace between
/// the containers of a sandbox whose specs name the same namespace path: the sandbox
/// container names the infra process's, as the pod's containers do (container/spec.rs), so
/// with a shared PID namespace its `berth-pause` is PID 1 there, as the infra process is
/// under runc.
fn sandbox_spec(pod: &SandboxRecord, mounts: Vec<Value>) -> Value {
    let infra_ns = |mode: NsMode, kind: &str| match (mode, pod.infra_pid) {
        (NsMode::Pod, Some(pid)) => json!({"type": kind, "path": format!("/proc/{pid}/ns/{kind}")}),
        _ => json!({"type": kind}),
    };
    let mut namespaces = vec![
        infra_ns(pod.spec.namespaces.pid, "pid"),
        infra_ns(pod.spec.namespaces.ipc, "ipc"),
        json!({"type": "mount"}),
    ];
    if let Some(netns) = &pod.netns {
        namespaces.push(json!({"type": "uts"}));
        namespaces.push(json!({"type": "network", "path": netns}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "args": ["/pause"],
            "env": ["PATH=/"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": pod.spec.hostname,
        "mounts": mounts,
        "annotations": {
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": pod.id,
            "io.kubernetes.cri.sandbox-name": pod.spec.name,
            "io.kubernetes.cri.sandbox-namespace": pod.spec.namespace,
            "io.kubernetes.cri.sandbox-uid": pod.spec.uid,
        },
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": pod.cgroup,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(netns: Option<&str>) -> SandboxRecord {
        SandboxRecord {
            id: "p1".into(),
            spec: crate::sandbox::SandboxSpec {
                name: "web".into(),
                hostname: "web-0".into(),
                runtime_handler: "runsc".into(),
                ..Default::default()
            },
            state: crate::sandbox::SandboxState::Ready,
            created_at: 0,
            netns: netns.map(PathBuf::from),
            userns: None,
            ips: Vec::new(),
            infra_pid: None,
            infra_start: 0,
            cgroup: "/berth/p1".into(),
            cgroup_dirs: Vec::new(),
            resources: None,
        }
    }

    #[test]
    fn the_sandbox_container_starts_a_sandbox_in_the_pod_netns() {
        let spec = sandbox_spec(&pod(Some("/run/berth/sandboxes/p1/netns")), Vec::new());
        assert_eq!(spec["annotations"]["io.kubernetes.cri.container-type"], "sandbox");
        assert_eq!(spec["annotations"]["io.kubernetes.cri.sandbox-id"], "p1");
        assert_eq!(spec["linux"]["cgroupsPath"], "/berth/p1");
        let ns = spec["linux"]["namespaces"].as_array().expect("namespaces");
        assert!(ns
            .iter()
            .any(|n| n["type"] == "network" && n["path"] == "/run/berth/sandboxes/p1/netns"));
        assert_eq!(spec["root"]["readonly"], true);
        // Host network: no network namespace of its own (runsc uses the one it runs in).
        let host = sandbox_spec(&pod(None), Vec::new());
        let ns = host["linux"]["namespaces"].as_array().expect("namespaces");
        assert!(!ns.iter().any(|n| n["type"] == "network" || n["type"] == "uts"));
        // A shared PID namespace and the pod's IPC one are named by the infra's paths.
        let mut shared = pod(Some("/n"));
        shared.infra_pid = Some(42);
        shared.spec.namespaces.pid = NsMode::Pod;
        shared.spec.namespaces.ipc = NsMode::Pod;
        let spec = sandbox_spec(&shared, Vec::new());
        let ns = spec["linux"]["namespaces"].as_array().expect("namespaces");
        assert!(ns.iter().any(|n| n["type"] == "pid" && n["path"] == "/proc/42/ns/pid"));
        assert!(ns.iter().any(|n| n["type"] == "ipc" && n["path"] == "/proc/42/ns/ipc"));
        shared.spec.namespaces.pid = NsMode::Container;
        let spec = sandbox_spec(&shared, Vec::new());
        let ns = spec["linux"]["namespaces"].as_array().expect("namespaces");
        assert!(ns.iter().any(|n| n["type"] == "pid" && n.get("path").is_none()));
    }

    #[test]
    fn only_gvisor_handlers_make_a_pod_runtime() {
        let mk = |kind| GvisorPods {
            shim_binary: "s".into(),
            pause_binary: "p".into(),
            state_dir: "/run/berth".into(),
            runtimes: [(
                "runsc".to_string(),
                Runtime {
                    binary: "runsc".into(),
                    args: Vec::new(),
                    kind,
                    features_from: None,
                },
            )]
            .into(),
        };
        assert!(GvisorPods::new(mk(HandlerKind::Oci)).is_none());
        let pods = GvisorPods::new(mk(HandlerKind::Gvisor)).expect("gvisor");
        assert!(pods.runtime(&pod(None)).is_some());
        let mut other = pod(None);
        other.spec.runtime_handler = String::new();
        assert!(pods.runtime(&other).is_none());
        // Ports below 1024 in the pod's namespace, for the host stack only.
        let port = ("net.ipv4.ip_unprivileged_port_start".to_string(), "0".to_string());
        assert_eq!(pods.net_sysctls(&pod(None)), [port]);
        assert!(pods.net_sysctls(&other).is_empty());
        let mut own_stack = mk(HandlerKind::Gvisor);
        if let Some(rt) = own_stack.runtimes.get_mut("runsc") {
            rt.args = vec!["--network=sandbox".into()];
        }
        assert!(own_stack.net_sysctls(&pod(None)).is_empty());
    }
}
