//! Container lifecycle: create (rootfs, OCI bundle, shim + `runc create`), start, stop with
//! the stop signal then SIGKILL, remove, status and listing. Records persist in the
//! metadata store; after a berthd restart, running containers are found again through their
//! shims, and exits that happened meanwhile are read from the shim's exit record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::model::{reserved_name, ContainerSpec};
pub use super::model::{ContainerFilter, ContainerRecord, ContainerState, ImageRef};
use super::rootfs::RootfsPaths;
use super::spec::{self, ImageDefaults, SpecError, SpecInput};
use crate::config::CgroupDriver;
use crate::events::{self, Event, EventBus, EventKind};
use crate::image::{ImageRecord, Images};
use crate::locks::KeyedLocks;
use crate::runtime::shim::{self, ExecArgs, ExecResult, ShimError};
use crate::sandbox::{NsMode, SandboxRecord, SandboxState, Sandboxes};
use crate::snapshot::Snapshotter;
use crate::store::{Index, MetaStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("container name {name} is reserved by container {id}")]
    NameTaken { name: String, id: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Shim(#[from] ShimError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("container {id}: {message}")]
    Setup { id: String, message: String },
}

pub struct ContainersOptions {
    pub state_dir: PathBuf,
    pub root_dir: PathBuf,
    pub shim_binary: PathBuf,
    /// Runtime handler ("" = default) to OCI runtime binary.
    pub runtimes: std::collections::BTreeMap<String, PathBuf>,
    pub cgroup_driver: CgroupDriver,
    /// CDI devices (GPUs and others) containers may ask for.
    pub cdi: Arc<crate::cdi::Cdi>,
}

pub struct Containers {
    pub(super) opts: ContainersOptions,
    images: Arc<Images>,
    snapshots: Arc<dyn Snapshotter>,
    sandboxes: Arc<Sandboxes>,
    pub(super) records: Index<ContainerRecord>,
    locks: KeyedLocks,
    events: Arc<EventBus>,
}

fn setup_err(id: &str) -> impl Fn(String) -> ContainerError + '_ {
    move |message| ContainerError::Setup {
        id: id.to_string(),
        message,
    }
}

impl Containers {
    pub fn open(
        opts: ContainersOptions,
        meta: Arc<MetaStore>,
        images: Arc<Images>,
        snapshots: Arc<dyn Snapshotter>,
        sandboxes: Arc<Sandboxes>,
        events: Arc<EventBus>,
    ) -> Result<Containers, ContainerError> {
        Ok(Containers {
            opts,
            images,
            snapshots,
            sandboxes,
            records: Index::load(meta, |_| false)?,
            locks: KeyedLocks::default(),
            events,
        })
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.opts.state_dir.join("containers").join(id)
    }

    fn rootfs(&self, id: &str) -> RootfsPaths {
        RootfsPaths::new(&self.opts.root_dir.join("containers"), id)
    }

    /// How to run container `id`'s OCI runtime directly (the shim runs it otherwise).
    fn oci_runtime(&self, handler: &str, id: &str) -> Result<berth_shim::oci::OciRuntime, ContainerError> {
        let (bin, root) = self.runtime(handler)?;
        Ok(berth_shim::oci::OciRuntime {
            bin,
            root,
            systemd_cgroup: self.opts.cgroup_driver == CgroupDriver::Systemd,
            // runc fails before anything else when it cannot open its log.
            log: Some(self.bundle(id))
                .filter(|b| b.is_dir())
                .map_or_else(|| PathBuf::from("/dev/null"), |b| b.join("runc.log")),
        })
    }

    /// The OCI runtime binary of a runtime handler, and its own state root (runtimes do not
    /// share state formats).
    fn runtime(&self, handler: &str) -> Result<(PathBuf, PathBuf), ContainerError> {
        let binary = self
            .opts
            .runtimes
            .get(handler)
            .ok_or_else(|| ContainerError::Invalid(format!("unknown runtime handler {handler:?}")))?;
        let name = if handler.is_empty() { "default" } else { handler };
        Ok((binary.clone(), self.opts.state_dir.join("runtimes").join(name)))
    }

    fn save(&self, rec: &ContainerRecord) -> Result<(), ContainerError> {
        let old = self.records.put(rec)?.map(|r| r.state);
        self.announce(rec, old, Some(rec.state));
        Ok(())
    }

    /// Publishes the lifecycle events of a record's move between states, with the pod's
    /// sandbox and containers as they are now.
    fn announce(&self, rec: &ContainerRecord, old: Option<ContainerState>, new: Option<ContainerState>) {
        let kinds = events::container_transition(old, new);
        if kinds.is_empty() {
            return;
        }
        let containers = self.records.list(|r| r.sandbox_id == rec.sandbox_id);
        let sandbox = self.sandboxes.get(&rec.sandbox_id).ok();
        for kind in kinds {
            let at = match kind {
                EventKind::Created => rec.created_at,
                EventKind::Started => rec.started_at,
                EventKind::Stopped => rec.finished_at,
                EventKind::Deleted => crate::clock::now_nanos(),
            };
            self.events.publish(Event {
                kind,
                container_id: rec.id.clone(),
                sandbox_id: rec.sandbox_id.clone(),
                at,
                sandbox: sandbox.clone(),
                containers: Some(containers.clone()),
                oom_killed: kind == EventKind::Stopped && rec.reason == "OOMKilled",
            });
        }
    }

    fn find(&self, id: &str) -> Result<ContainerRecord, ContainerError> {
        self.records
            .find(id)
            .ok_or_else(|| ContainerError::NotFound(format!("container {id}")))
    }

    /// The record with its state brought up to date from the shim.
    pub async fn get(&self, id: &str) -> Result<ContainerRecord, ContainerError> {
        let rec = self.find(id)?;
        self.refresh(rec).await
    }

    async fn refresh(&self, mut rec: ContainerRecord) -> Result<ContainerRecord, ContainerError> {
        if matches!(rec.state, ContainerState::Exited) {
            return Ok(rec);
        }
        let bundle = self.bundle(&rec.id);
        let exit = match shim::state(&bundle).await {
            Ok(s) => {
                if s.status == shim::Status::Running && rec.state == ContainerState::Created {
                    rec.state = ContainerState::Running;
                    rec.started_at = s.started_at;
                    self.save(&rec)?;
                }
                s.exit.filter(|_| s.status == shim::Status::Stopped)
            }
            Err(ShimError::Gone { .. }) => match shim::read_exit(&bundle) {
                Some(e) => Some(e),
                None => {
                    if rec.state != ContainerState::Unknown {
                        rec.state = ContainerState::Unknown;
                        rec.reason = "ShimGone".into();
                        rec.message = "the container's shim is gone and left no exit record".into();
                        rec.finished_at = crate::clock::now_nanos();
                        self.save(&rec)?;
                    }
                    None
                }
            },
            Err(e) => return Err(e.into()),
        };
        if let Some(exit) = exit {
            rec.state = ContainerState::Exited;
            rec.exit_code = exit.exit_code;
            rec.finished_at = exit.finished_at;
            rec.reason = if exit.oom_killed {
                "OOMKilled".into()
            } else if exit.exit_code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            };
            if rec.started_at == 0 {
                rec.started_at = exit.finished_at;
            }
            self.save(&rec)?;
        }
        Ok(rec)
    }

    /// Records as last seen, without asking the shims (state filters apply to that state).
    pub fn records(&self, filter: &ContainerFilter) -> Vec<ContainerRecord> {
        self.records.list(|rec| filter.matches(rec))
    }

    /// Containers matching `filter`, their states brought up to date first.
    pub async fn list(&self, filter: &ContainerFilter) -> Vec<ContainerRecord> {
        let unfiltered = ContainerFilter {
            state: None,
            ..filter.clone()
        };
        let mut out = Vec::new();
        for rec in self.records(&unfiltered) {
            let rec = self.refresh(rec.clone()).await.unwrap_or(rec);
            if filter.state.is_none_or(|s| s == rec.state) {
                out.push(rec);
            }
        }
        out
    }

    /// Shim processes alive now (one per container until it is removed).
    pub fn live_shims(&self) -> usize {
        self.records
            .ids()
            .iter()
            .filter_map(|id| std::fs::read_to_string(self.bundle(id).join(berth_shim::api::PID_FILE)).ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{}/comm", pid.trim()))
                    .is_ok_and(|comm| comm.starts_with("berth-shim"))
            })
            .count()
    }

    /// The container's writable layer (the overlay's upper directory).
    pub fn writable_layer(&self, id: &str) -> PathBuf {
        self.rootfs(id).upper()
    }

    /// Creates a container in a ready sandbox; returns its id.
    pub async fn create(&self, sandbox_id: &str, mut spec: ContainerSpec) -> Result<String, ContainerError> {
        super::validate::validate(&spec).map_err(ContainerError::Invalid)?;
        let sandbox = self
            .sandboxes
            .get(sandbox_id)
            .map_err(|_| ContainerError::NotFound(format!("sandbox {sandbox_id}")))?;
        if sandbox.state != SandboxState::Ready {
            return Err(ContainerError::FailedPrecondition(format!(
                "sandbox {} is not ready",
                sandbox.id
            )));
        }
        let image = self
            .images
            .resolve(&spec.image)
            .ok_or_else(|| ContainerError::NotFound(format!("image {}", spec.image)))?;
        spec.image_id = image.id.clone();
        // Unknown CDI devices fail the request before anything is set up.
        let cdi_edits = self
            .opts
            .cdi
            .resolve(&spec.cdi_devices, &spec.annotations)
            .map_err(ContainerError::Invalid)?;
        let id = crate::sandbox::new_id();
        let name = reserved_name(&sandbox.id, &spec);
        let reservation = self
            .records
            .reserve(&name, &id)
            .map_err(|holder| ContainerError::NameTaken { name, id: holder })?;
        let _lock = self.locks.lock(&id).await;
        match self.setup(&id, &sandbox, &image, spec, &cdi_edits).await {
            Ok(rec) => {
                if let Err(e) = self.save(&rec) {
                    self.teardown(&id, &sandbox.spec.runtime_handler).await;
                    return Err(e);
                }
                reservation.keep();
                Ok(id)
            }
            Err(e) => {
                // The reservation, dropped, gives the name back.
                self.teardown(&id, &sandbox.spec.runtime_handler).await;
                Err(e)
            }
        }
    }

    async fn setup(
        &self,
        id: &str,
        sandbox: &SandboxRecord,
        image: &ImageRecord,
        spec: ContainerSpec,
        cdi_edits: &[crate::cdi::registry::Edit],
    ) -> Result<ContainerRecord, ContainerError> {
        let err = setup_err(id);
        let bundle = self.bundle(id);
        std::fs::create_dir_all(&bundle).map_err(|e| err(format!("{}: {e}", bundle.display())))?;
        let rootfs = self.rootfs(id);
        let lower: Vec<PathBuf> = image
            .chain_ids
            .iter()
            .rev()
            .filter_map(|c| crate::digest::Digest::parse(c).ok())
            .map(|c| self.snapshots.lower_dir(&c))
            .collect();
        rootfs
            .mount(&lower)
            .map_err(|e| err(format!("mounting the root filesystem: {e}")))?;
        let cgroup = match self.opts.cgroup_driver {
            CgroupDriver::Cgroupfs => crate::cgroup::leaf_path(CgroupDriver::Cgroupfs, &sandbox.spec.cgroup_parent, id),
            CgroupDriver::Systemd => {
                let parent = if sandbox.spec.cgroup_parent.is_empty() {
                    "berth.slice"
                } else {
                    &sandbox.spec.cgroup_parent
                };
                Ok(format!("{parent}:berth:{id}"))
            }
        }
        .map_err(ContainerError::Invalid)?;
        let files = self.sandboxes.files_dir(&sandbox.id);
        let ctx = crate::container::model::SandboxContext {
            sandbox_id: sandbox.id.clone(),
            infra_pid: sandbox.infra_pid.unwrap_or(0),
            netns: sandbox.netns.clone(),
            host_network: sandbox.spec.namespaces.network == NsMode::Node,
            host_ipc: sandbox.spec.namespaces.ipc == NsMode::Node,
            pid_mode: sandbox.spec.namespaces.pid,
            hostname: sandbox.spec.hostname.clone(),
            resolv_conf: files.join("resolv.conf"),
            hosts: files.join("hosts"),
            hostname_file: files.join("hostname"),
            shm: (sandbox.spec.namespaces.ipc != NsMode::Node).then(|| files.join("shm")),
            sysctls: sandbox.spec.sysctls.clone(),
            privileged: sandbox.spec.privileged,
        };
        let defaults = image_defaults(image);
        let min_oom = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let input = SpecInput {
            id,
            container: &spec,
            image: &defaults,
            sandbox: &ctx,
            rootfs: &rootfs.mountpoint(),
            cgroups_path: &cgroup,
            volumes_dir: &rootfs.volumes(),
            min_oom_score_adj: min_oom,
        };
        let mut oci = spec::generate(&input)?;
        self.opts
            .cdi
            .inject(&mut oci, cdi_edits)
            .map_err(ContainerError::Invalid)?;
        let stop_signal = spec::stop_signal(&spec, &defaults)?;
        let config = serde_json::to_vec_pretty(&oci).map_err(|e| err(format!("config.json: {e}")))?;
        std::fs::write(bundle.join("config.json"), config).map_err(|e| err(format!("config.json: {e}")))?;
        let log_path = if sandbox.spec.log_directory.is_empty() || spec.log_path.is_empty() {
            String::new()
        } else {
            Path::new(&sandbox.spec.log_directory)
                .join(&spec.log_path)
                .display()
                .to_string()
        };
        let process = oci.process().clone().unwrap_or_default();
        let user = process.user();
        let (runtime, runtime_root) = self.runtime(&sandbox.spec.runtime_handler)?;
        let pid = shim::start(shim::StartArgs {
            binary: &self.opts.shim_binary,
            id,
            bundle: &bundle,
            runtime: &runtime,
            runtime_root: &runtime_root,
            log_path: Path::new(if log_path.is_empty() { "/dev/null" } else { &log_path }),
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            tty: spec.tty,
            systemd_cgroup: self.opts.cgroup_driver == CgroupDriver::Systemd,
        })
        .await?;
        Ok(ContainerRecord {
            id: id.to_string(),
            sandbox_id: sandbox.id.clone(),
            image: ImageRef {
                id: image.id.clone(),
                name: image
                    .repo_digests
                    .first()
                    .or(image.repo_tags.first())
                    .cloned()
                    .unwrap_or_else(|| image.id.clone()),
                tag: image.repo_tags.first().cloned().unwrap_or_default(),
            },
            state: ContainerState::Created,
            created_at: crate::clock::now_nanos(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid,
            log_path,
            cgroup,
            stop_signal,
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().display().to_string(),
            runtime_handler: sandbox.spec.runtime_handler.clone(),
            spec,
        })
    }

    /// Removes whatever `setup` may have left: shim and runc state, rootfs, bundle.
    pub(super) async fn teardown(&self, id: &str, handler: &str) {
        let bundle = self.bundle(id);
        if shim::socket(&bundle).exists() {
            let _ = shim::kill(&bundle, 9, true).await;
            let _ = shim::wait(&bundle, Duration::from_secs(5)).await;
            let _ = shim::delete(&bundle).await;
        }
        // A shim that died leaves runtime state; take it back directly.
        if let Ok(runtime) = self.oci_runtime(handler, id) {
            let _ = tokio::process::Command::from(runtime.delete_force(id))
                .stderr(std::process::Stdio::null())
                .status()
                .await;
        }
        if let Err(e) = self.rootfs(id).remove() {
            tracing::warn!(container = id, error = %e, "removing the root filesystem");
        }
        let _ = std::fs::remove_dir_all(&bundle);
    }

    pub async fn start(self: &Arc<Self>, id: &str) -> Result<(), ContainerError> {
        let rec = self.get(id).await?;
        let _lock = self.locks.lock(&rec.id).await;
        let mut rec = self.get(&rec.id).await?;
        if rec.state != ContainerState::Created {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is {:?}, not created",
                rec.id, rec.state
            )));
        }
        shim::start_container(&self.bundle(&rec.id)).await?;
        rec.state = ContainerState::Running;
        rec.started_at = crate::clock::now_nanos();
        self.save(&rec)?;
        self.watch_exit(&rec.id);
        Ok(())
    }

    /// Follows every running container (after a restart).
    pub fn watch_running(self: &Arc<Self>) {
        for rec in self.records.list(|r| r.state == ContainerState::Running) {
            self.watch_exit(&rec.id);
        }
    }

    /// Follows a running container until it exits, so its stop is recorded (and announced)
    /// when it happens rather than at the next look. Holds one shim connection meanwhile.
    fn watch_exit(self: &Arc<Self>, id: &str) {
        const ROUND: Duration = Duration::from_secs(3600);
        let weak = Arc::downgrade(self);
        let bundle = self.bundle(id);
        let id = id.to_string();
        tokio::spawn(async move {
            loop {
                let waited = shim::wait(&bundle, ROUND).await;
                let Some(this) = weak.upgrade() else { return };
                if matches!(waited, Ok(false)) {
                    continue;
                }
                match this.get(&id).await {
                    Ok(rec) if rec.state == ContainerState::Running => {}
                    _ => return,
                }
                drop(this);
                // The shim answered with an error yet the container runs: try again shortly.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Sends the stop signal, waits up to `timeout`, then kills. Idempotent: a stopped or
    /// unknown container is not an error (kubelet retries stops of containers it lost).
    pub async fn stop(&self, id: &str, timeout: Duration) -> Result<(), ContainerError> {
        let Ok(rec) = self.get(id).await else { return Ok(()) };
        let _lock = self.locks.lock(&rec.id).await;
        let rec = self.get(&rec.id).await?;
        if !matches!(rec.state, ContainerState::Running | ContainerState::Created) {
            return Ok(());
        }
        let bundle = self.bundle(&rec.id);
        if rec.state == ContainerState::Running && !timeout.is_zero() {
            shim::kill(&bundle, rec.stop_signal, false).await?;
            if shim::wait(&bundle, timeout).await? {
                self.get(&rec.id).await?;
                return Ok(());
            }
        }
        shim::kill(&bundle, 9, true).await?;
        shim::wait(&bundle, Duration::from_secs(10)).await?;
        let mut rec = self.get(&rec.id).await?;
        if rec.state == ContainerState::Created {
            // Never started: it is done now, with no exit of its own.
            rec.state = ContainerState::Exited;
            rec.finished_at = crate::clock::now_nanos();
            rec.exit_code = 137;
            rec.reason = "Error".into();
            self.save(&rec)?;
        }
        Ok(())
    }

    /// Removes a container; a running one is killed first. Unknown ids succeed.
    pub async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let Ok(rec) = self.find(id) else { return Ok(()) };
        let _lock = self.locks.lock(&rec.id).await;
        let Ok(rec) = self.find(&rec.id) else { return Ok(()) };
        self.teardown(&rec.id, &rec.runtime_handler).await;
        let old = self.records.remove(&rec.id)?.map(|r| r.state);
        self.announce(&rec, old, None);
        Ok(())
    }

    /// Every container of a sandbox.
    pub async fn in_sandbox(&self, sandbox_id: &str) -> Vec<ContainerRecord> {
        self.list(&ContainerFilter {
            sandbox_id: Some(sandbox_id.to_string()),
            ..Default::default()
        })
        .await
    }

    pub async fn reopen_log(&self, id: &str) -> Result<(), ContainerError> {
        let rec = self.get(id).await?;
        if rec.state != ContainerState::Running {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        shim::reopen_log(&self.bundle(&rec.id)).await?;
        Ok(())
    }

    /// Where a running container lives in its OCI runtime, for interactive exec.
    pub async fn running_target(
        &self,
        id: &str,
    ) -> Result<(ContainerRecord, crate::runtime::exec::RuntimeTarget), ContainerError> {
        let rec = self.get(id).await?;
        if rec.state != ContainerState::Running {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let (runtime, runtime_root) = self.runtime(&rec.runtime_handler)?;
        let target = crate::runtime::exec::RuntimeTarget {
            id: rec.id.clone(),
            bundle: self.bundle(&rec.id),
            runtime,
            runtime_root,
            systemd_cgroup: self.opts.cgroup_driver == CgroupDriver::Systemd,
        };
        Ok((rec, target))
    }

    /// The shim directory of a container (its API socket lives there).
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.bundle(id)
    }

    /// Runs a command in a running container and returns its output (kubelet's exec probes).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Option<Duration>,
    ) -> Result<ExecResult, ContainerError> {
        if cmd.is_empty() {
            return Err(ContainerError::Invalid("exec command is required".into()));
        }
        let rec = self.get(id).await?;
        if rec.state != ContainerState::Running {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let args = ExecArgs {
            args: cmd,
            env: rec.env.clone(),
            cwd: if rec.cwd.is_empty() {
                "/".into()
            } else {
                rec.cwd.clone()
            },
            uid: rec.uid,
            gid: rec.gid,
            additional_gids: rec.additional_gids.clone(),
            timeout,
            max_output: 16 << 20,
        };
        Ok(shim::exec(&self.bundle(&rec.id), args).await?)
    }
}

impl Containers {
    /// Applies new limits to a running or created container with `runc update`.
    pub async fn update_resources(&self, id: &str, r: super::model::Resources) -> Result<(), ContainerError> {
        let rec = self.get(id).await?;
        let _lock = self.locks.lock(&rec.id).await;
        let mut rec = self.get(&rec.id).await?;
        if !matches!(rec.state, ContainerState::Running | ContainerState::Created) {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let mut cpu = serde_json::Map::new();
        if r.cpu_shares > 0 {
            cpu.insert("shares".into(), r.cpu_shares.into());
        }
        if r.cpu_quota != 0 {
            cpu.insert("quota".into(), r.cpu_quota.into());
        }
        if r.cpu_period > 0 {
            cpu.insert("period".into(), r.cpu_period.into());
        }
        if !r.cpuset_cpus.is_empty() {
            cpu.insert("cpus".into(), r.cpuset_cpus.clone().into());
        }
        if !r.cpuset_mems.is_empty() {
            cpu.insert("mems".into(), r.cpuset_mems.clone().into());
        }
        let mut memory = serde_json::Map::new();
        if r.memory_limit_in_bytes > 0 {
            memory.insert("limit".into(), r.memory_limit_in_bytes.into());
        }
        if r.memory_swap_limit_in_bytes > 0 && crate::cgroup::has_swap_accounting() {
            memory.insert("swap".into(), r.memory_swap_limit_in_bytes.into());
        }
        let mut body = serde_json::json!({"cpu": cpu, "memory": memory});
        if !r.unified.is_empty() {
            body["unified"] = serde_json::to_value(&r.unified).unwrap_or_default();
        }
        let runtime = self.oci_runtime(&rec.runtime_handler, &rec.id)?;
        let mut child = tokio::process::Command::from(runtime.update_resources(&rec.id))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| setup_err(&rec.id)(format!("runc update: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt as _;
            let _ = stdin.write_all(body.to_string().as_bytes()).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| setup_err(&rec.id)(format!("runc update: {e}")))?;
        if !out.status.success() {
            return Err(ContainerError::Invalid(format!(
                "updating resources of {}: {}",
                rec.id,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        rec.spec.resources = r;
        self.save(&rec)
    }
}

fn image_defaults(image: &ImageRecord) -> ImageDefaults {
    let c = &image.run_config;
    ImageDefaults {
        user: c.user.clone(),
        env: c.env.clone().unwrap_or_default(),
        entrypoint: c.entrypoint.clone().unwrap_or_default(),
        cmd: c.cmd.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        volumes: c
            .volumes
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default(),
        stop_signal: c.stop_signal.clone(),
    }
}
