//! A workload environment for container-level tests: a real registry holding a static
//! busybox image, a CNI network, a berthd that can reach both, and CRI helpers.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::containerd::Runtime;
use crate::cri::{v1 as cri, Cri};
use crate::image::{busybox_layer, push_image, Compression, ImageSpec};
use crate::pod::{pod_config, run, TestNet};
use crate::registry::{RegistryOpts, TestRegistry};
use crate::{Berthd, BerthdOpts};

pub struct Env {
    // Fields drop in this order: berthd first (its pods' CNI DEL still needs the network),
    // the network and the registry last.
    pub berthd: Berthd,
    pub cri: Cri,
    pub image: String,
    pub logs: tempfile::TempDir,
    _net: TestNet,
    _reg: TestRegistry,
    /// berthd's registry hosts directory.
    _hosts: tempfile::TempDir,
}

/// A registry with a busybox image (USER app = 1000 when `user` is set), a berthd that
/// can reach it and a CNI network.
pub async fn env(user: Option<&str>) -> Env {
    env_with(user, None).await
}

pub async fn env_with(user: Option<&str>, config_toml: Option<String>) -> Env {
    env_with_cni_bin(user, config_toml, "/usr/lib/cni").await
}

/// [`env_with`], berthd looking for CNI plugins in `cni_bin_dirs` (`:`-separated), e.g. a
/// directory of wrappers before `/usr/lib/cni`.
pub async fn env_with_cni_bin(user: Option<&str>, config_toml: Option<String>, cni_bin_dirs: &str) -> Env {
    env_on(Runtime::from_env(), user, config_toml, cni_bin_dirs).await
}

/// [`env_with_cni_bin`] on a given runtime (berthd, or containerd in its place, which gets
/// a sandbox image pushed for it).
pub async fn env_on(runtime: Runtime, user: Option<&str>, config_toml: Option<String>, cni_bin_dirs: &str) -> Env {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let spec = ImageSpec {
        layers: vec![busybox_layer(Compression::Gzip)],
        user: user.map(Into::into),
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    push_image(&reg.addr(), "e2e/busybox", "1", &spec, None)
        .await
        .expect("push");
    // containerd runs a sandbox image where berthd has its own infra process.
    let sandbox_image = (runtime == Runtime::Containerd).then(|| format!("{}/e2e/pause:1", reg.addr()));
    if sandbox_image.is_some() {
        let pause = ImageSpec {
            layers: vec![busybox_layer(Compression::Gzip)],
            entrypoint: vec!["/bin/busybox".into(), "sleep".into(), "2147483647".into()],
            ..Default::default()
        };
        push_image(&reg.addr(), "e2e/pause", "1", &pause, None)
            .await
            .expect("push the sandbox image");
    }
    let net = TestNet::new();
    let hosts_dir = tempfile::tempdir().expect("tempdir");
    let hosts = hosts_dir.path().to_path_buf();
    std::fs::create_dir_all(hosts.join(reg.addr())).expect("mkdir");
    std::fs::write(
        hosts.join(reg.addr()).join("hosts.toml"),
        format!("server = \"http://{}\"\n", reg.addr()),
    )
    .expect("hosts");
    let berthd = Berthd::start(BerthdOpts {
        registry_config_dir: Some(hosts),
        extra_args: vec![
            "--cni-conf-dir".into(),
            net.conf_dir().display().to_string(),
            "--cni-bin-dir".into(),
            cni_bin_dirs.into(),
        ],
        config_toml,
        runtime: Some(runtime),
        sandbox_image,
        ..Default::default()
    })
    .await
    .expect("berthd");
    let mut c = Cri::connect(berthd.socket()).await.expect("connect");
    let image = format!("{}/e2e/busybox:1", reg.addr());
    c.pull(&image, None).await.expect("pull");
    Env {
        _reg: reg,
        _net: net,
        berthd,
        cri: c,
        image,
        logs: tempfile::tempdir().expect("logs"),
        _hosts: hosts_dir,
    }
}

/// The memory limit of the cgroup at `path` (as a container record or `inspect` states it),
/// from cgroup v1's memory hierarchy or the v2 tree: bytes, or `max`.
pub fn cgroup_memory_limit(path: &str) -> String {
    let path = path.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/memory")
        .join(path)
        .join("memory.limit_in_bytes");
    let v2 = Path::new("/sys/fs/cgroup").join(path).join("memory.max");
    std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .unwrap_or_else(|e| panic!("no memory limit file for cgroup {path}: {e}"))
        .trim()
        .to_string()
}

impl Env {
    /// The memory limit of container `id`'s cgroup (see [`cgroup_memory_limit`]).
    pub async fn memory_limit(&mut self, id: &str) -> String {
        let info = self.info(id).await;
        cgroup_memory_limit(info["cgroup"].as_str().expect("the container's cgroup"))
    }

    /// The test's CNI network.
    pub fn net(&self) -> &TestNet {
        &self._net
    }

    /// The registry's `host:port`.
    pub fn registry(&self) -> String {
        self._reg.addr()
    }

    /// Every container berthd lists.
    pub async fn containers(&mut self) -> Vec<cri::Container> {
        self.cri
            .runtime
            .list_containers(cri::ListContainersRequest::default())
            .await
            .expect("list containers")
            .into_inner()
            .containers
    }

    /// Every pod sandbox berthd lists.
    pub async fn sandboxes(&mut self) -> Vec<cri::PodSandbox> {
        self.cri
            .runtime
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .expect("list sandboxes")
            .into_inner()
            .items
    }

    pub async fn pod(&mut self, name: &str) -> (String, cri::PodSandboxConfig) {
        let mut config = pod_config(name);
        config.log_directory = self.logs.path().join(name).display().to_string();
        let id = run(&mut self.cri, config.clone()).await.expect("run pod");
        (id, config)
    }

    /// A pod on runtime handler `handler`, its logs under the test's: (id, config) and its IP.
    pub async fn pod_on(&mut self, name: &str, handler: &str) -> ((String, cri::PodSandboxConfig), String) {
        let mut config = pod_config(name);
        config.log_directory = self.logs.path().join(name).display().to_string();
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        let id = self
            .cri
            .runtime
            .run_pod_sandbox(req)
            .await
            .unwrap_or_else(|e| panic!("run a pod on handler {handler}: {e}"))
            .into_inner()
            .pod_sandbox_id;
        let (st, _) = crate::pod::status(&mut self.cri, &id).await.expect("pod status");
        let ip = st.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
        assert!(!ip.is_empty(), "the pod has an IP: {st:?}");
        ((id, config), ip)
    }

    /// ExecSync's contract on running container `id` whose main process runs `main`: an
    /// exec's stderr and exit code come back; one past its timeout is answered with
    /// DeadlineExceeded in about that time, and its process is gone afterwards.
    pub async fn assert_exec_sync(&mut self, id: &str, main: &str) {
        let r = self
            .exec(id, &["sh", "-c", "echo to-stderr >&2; exit 4"], 10)
            .await
            .expect("exec");
        assert_eq!(
            (r.exit_code, String::from_utf8_lossy(&r.stderr).trim()),
            (4, "to-stderr")
        );
        let started = Instant::now();
        let err = self
            .exec(id, &["sleep", "4321"], 1)
            .await
            .expect_err("past its timeout");
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "answered after {:?}",
            started.elapsed()
        );
        let r = self.exec(id, &["ps", "-o", "args"], 10).await.expect("ps");
        let ps = String::from_utf8_lossy(&r.stdout).into_owned();
        assert!(ps.contains(main) && !ps.contains("sleep 4321"), "{ps}");
    }

    /// berthd SIGKILLed and started again on the same state; the CRI client reconnected.
    pub async fn kill9_restart(&mut self) {
        self.berthd.kill9();
        self.berthd.restart().await.expect("restart berthd");
        self.cri = Cri::connect(self.berthd.socket()).await.expect("reconnect");
    }

    /// StopContainer with a grace period of `timeout` seconds.
    pub async fn stop(&mut self, id: &str, timeout: i64) {
        let req = cri::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.cri
            .runtime
            .stop_container(req)
            .await
            .unwrap_or_else(|e| panic!("stop {id}: {e}"));
    }

    pub fn container(&self, name: &str, cmd: &[&str]) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    pub async fn create(
        &mut self,
        pod: &(String, cri::PodSandboxConfig),
        config: cri::ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.0.clone(),
            config: Some(config),
            sandbox_config: Some(pod.1.clone()),
        };
        Ok(self.cri.runtime.create_container(req).await?.into_inner().container_id)
    }

    pub async fn start(&mut self, id: &str) {
        self.cri
            .runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .expect("start");
    }

    pub async fn status(&mut self, id: &str) -> cri::ContainerStatus {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.cri
            .runtime
            .container_status(req)
            .await
            .expect("status")
            .into_inner()
            .status
            .expect("status")
    }

    /// `ContainerStats` of one container.
    pub async fn container_stats(&mut self, id: &str) -> cri::ContainerStats {
        self.cri
            .runtime
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.into(),
            })
            .await
            .expect("ContainerStats")
            .into_inner()
            .stats
            .expect("stats")
    }

    /// `Status` (not verbose).
    pub async fn runtime_status(&mut self) -> cri::StatusResponse {
        let req = cri::StatusRequest { verbose: false };
        self.cri.runtime.status(req).await.expect("status").into_inner()
    }

    /// What `Status` says the default runtime handler ("") supports.
    pub async fn default_handler(&mut self) -> cri::RuntimeHandlerFeatures {
        let status = self.runtime_status().await;
        let default = status.runtime_handlers.iter().find(|h| h.name.is_empty());
        default
            .and_then(|h| h.features)
            .unwrap_or_else(|| panic!("the default handler is listed with features: {status:?}"))
    }

    /// The verbose `info` of ContainerStatus (pid, cgroup, spec...), as JSON.
    pub async fn info(&mut self, id: &str) -> serde_json::Value {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        let resp = self
            .cri
            .runtime
            .container_status(req)
            .await
            .expect("status")
            .into_inner();
        serde_json::from_str(resp.info.get("info").expect("verbose info")).expect("info is JSON")
    }

    /// Waits until the container exited and returns its status.
    pub async fn wait_exit(&mut self, id: &str) -> cri::ContainerStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let st = self.status(id).await;
            if st.state == cri::ContainerState::ContainerExited as i32 {
                return st;
            }
            assert!(Instant::now() < deadline, "container {id} did not exit: {st:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn exec(&mut self, id: &str, cmd: &[&str], timeout: i64) -> Result<cri::ExecSyncResponse, tonic::Status> {
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        };
        Ok(self.cri.runtime.exec_sync(req).await?.into_inner())
    }

    /// Runs `cmd` to completion in a new container of `pod`; returns (exit code, log text).
    pub async fn run_to_exit(
        &mut self,
        pod: &(String, cri::PodSandboxConfig),
        config: cri::ContainerConfig,
    ) -> (i32, String, String) {
        let name = config.metadata.as_ref().expect("meta").name.clone();
        let id = self.create(pod, config).await.expect("create");
        self.start(&id).await;
        let st = self.wait_exit(&id).await;
        let log =
            std::fs::read_to_string(Path::new(&pod.1.log_directory).join(format!("{name}.log"))).unwrap_or_default();
        (st.exit_code, st.reason, log)
    }
}
