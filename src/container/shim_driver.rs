//! The daemon's [`Driver`]: an overlay root filesystem under `root/containers/<id>/`, a
//! bundle under `state/containers/<id>/`, one `berth-shim` per container, and the runtime
//! handler's OCI runtime (through the shim, or directly to update limits and to clean up
//! after a lost shim).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_shim::oci::OciRuntime;
use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use oci_spec::runtime::LinuxResources;

use super::driver::{Driver, Prepared, Spawn};
use super::error::{setup_err, ContainerError};
use super::model::PodUserNs;
use super::rootfs::{Idmap, RootfsPaths};
use crate::config::CgroupDriver;
use crate::image::ImageRecord;
use crate::runtime::exec::RuntimeTarget;
use crate::runtime::features::Features;
use crate::runtime::handler::{runtime_root, HandlerKind, Runtime};
use crate::runtime::shim::{self, ExecArgs, ExecResult, Exit, ShimError, ShimState};
use crate::snapshot::Snapshotter;

pub struct ShimDriver {
    pub state_dir: PathBuf,
    pub root_dir: PathBuf,
    pub shim_binary: PathBuf,
    /// Runtime handler ("" = default) to its runtime.
    pub runtimes: BTreeMap<String, Runtime>,
    /// What each handler's runtime supports (probed once, at start).
    pub features: BTreeMap<String, Features>,
    pub cgroup_driver: CgroupDriver,
    pub snapshots: Arc<dyn Snapshotter>,
    /// berthd's ttrpc Events service, for shim v2 runtime handlers.
    pub events_address: Option<PathBuf>,
}

impl ShimDriver {
    fn rootfs(&self, id: &str) -> RootfsPaths {
        RootfsPaths::new(&self.root_dir.join("containers"), id)
    }

    /// The runtime of a runtime handler, and its own state root (runtimes do not share
    /// state formats).
    fn runtime(&self, handler: &str) -> Result<(&Runtime, PathBuf), ContainerError> {
        let runtime = self
            .runtimes
            .get(handler)
            .ok_or_else(|| ContainerError::Invalid(format!("unknown runtime handler {handler:?}")))?;
        Ok((runtime, runtime_root(&self.state_dir, handler)))
    }

    /// The image's layer snapshots, top-most first.
    fn lower_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .chain_ids
            .iter()
            .rev()
            .filter_map(|c| crate::digest::Digest::parse(c).ok())
            .map(|c| self.snapshots.lower_dir(&c))
            .collect()
    }

    /// How to run container `id`'s OCI runtime directly (the shim runs it otherwise).
    fn oci_runtime(&self, handler: &str, id: &str) -> Result<OciRuntime, ContainerError> {
        let (rt, root) = self.runtime(handler)?;
        Ok(OciRuntime {
            bin: rt.binary.clone(),
            args: rt.args.clone(),
            root,
            systemd_cgroup: self.cgroup_driver == CgroupDriver::Systemd,
            // runc fails before anything else when it cannot open its log.
            log: Some(self.bundle(id))
                .filter(|b| b.is_dir())
                .map_or_else(|| PathBuf::from("/dev/null"), |b| b.join("runc.log")),
        })
    }

    async fn do_spawn(&self, s: Spawn<'_>) -> Result<u32, ContainerError> {
        let err = setup_err(s.id);
        let bundle = self.bundle(s.id);
        let config = serde_json::to_vec_pretty(s.spec).map_err(|e| err(format!("config.json: {e}")))?;
        std::fs::write(bundle.join("config.json"), config).map_err(|e| err(format!("config.json: {e}")))?;
        let (runtime, runtime_root) = self.runtime(s.handler)?;
        let pid = shim::start(shim::StartArgs {
            binary: &self.shim_binary,
            id: s.id,
            bundle: &bundle,
            runtime: &runtime.binary,
            runtime_root: &runtime_root,
            runtime_args: &runtime.args,
            gvisor: runtime.kind == HandlerKind::Gvisor,
            shim_v2: runtime.kind == HandlerKind::ShimV2,
            events_address: self.events_address.as_deref(),
            log_path: Path::new(if s.log_path.is_empty() { "/dev/null" } else { s.log_path }),
            stdin: s.stdin,
            stdin_once: s.stdin_once,
            tty: s.tty,
            systemd_cgroup: self.cgroup_driver == CgroupDriver::Systemd,
        })
        .await?;
        Ok(pid)
    }

    async fn do_teardown(&self, id: &str, handler: Option<&str>) {
        let bundle = self.bundle(id);
        // A shim that answered deleted the container from its runtime; one that died
        // leaves runtime state, taken back here directly.
        let answered = shim::take_down(&bundle, id).await;
        let handlers: Vec<&str> = match handler {
            _ if answered => Vec::new(),
            Some(h) => vec![h],
            None => self.runtimes.keys().map(String::as_str).collect(),
        };
        for handler in handlers {
            if self
                .runtimes
                .get(handler)
                .is_some_and(|r| r.kind == HandlerKind::ShimV2)
            {
                // A berth-shim that died leaves the container to its shim v2.
                if berth_shim::task::take_down(&bundle, id).await {
                    tracing::warn!(container = id, "took a container down through its shim v2");
                }
                continue;
            }
            if let Ok(runtime) = self.oci_runtime(handler, id) {
                let _ = tokio::process::Command::from(runtime.delete_force(id))
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await;
            }
        }
        if let Err(e) = self.rootfs(id).remove() {
            tracing::warn!(container = id, error = %e, "removing the root filesystem");
        }
        let _ = std::fs::remove_dir_all(&bundle);
    }

    async fn do_update(&self, id: &str, handler: &str, resources: &LinuxResources) -> Result<(), ContainerError> {
        let body = serde_json::to_vec(resources).map_err(|e| setup_err(id)(format!("resources: {e}")))?;
        if self.runtime(handler)?.0.kind == HandlerKind::ShimV2 {
            return update_through_shim_v2(&self.bundle(id), id, body).await;
        }
        let runtime = self.oci_runtime(handler, id)?;
        let mut child = tokio::process::Command::from(runtime.update_resources(id))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| setup_err(id)(format!("runtime update: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt as _;
            let _ = stdin.write_all(&body).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| setup_err(id)(format!("runtime update: {e}")))?;
        if !out.status.success() {
            return Err(ContainerError::Invalid(format!(
                "updating resources of {id}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// A resources update through the container's shim v2 (`Update` of the Task API).
async fn update_through_shim_v2(bundle: &Path, id: &str, body: Vec<u8>) -> Result<(), ContainerError> {
    let address = berth_shim::task::address(bundle)
        .ok_or_else(|| ContainerError::FailedPrecondition(format!("container {id} has no shim v2 running")))?;
    let mut client = berth_shim::task::TaskClient::connect(&address)
        .await
        .map_err(|e| ContainerError::FailedPrecondition(format!("container {id}: shim v2: {e}")))?;
    client
        .update(id, body)
        .await
        .map_err(|e| ContainerError::Invalid(format!("updating resources of {id}: {e}")))
}

impl Driver for ShimDriver {
    fn prepare<'a>(
        &'a self,
        id: &'a str,
        image: &'a ImageRecord,
        userns: Option<&'a PodUserNs>,
    ) -> BoxFuture<'a, Result<Prepared, ContainerError>> {
        async move {
            let err = setup_err(id);
            let bundle = self.bundle(id);
            std::fs::create_dir_all(&bundle).map_err(|e| err(format!("{}: {e}", bundle.display())))?;
            let idmap = userns.map(idmap).transpose().map_err(&err)?;
            let rootfs = self.rootfs(id);
            rootfs
                .mount(&self.lower_dirs(image), idmap.as_ref())
                .map_err(|e| err(format!("mounting the root filesystem: {e}")))?;
            Ok(Prepared {
                rootfs: rootfs.mountpoint(),
                volumes: rootfs.volumes(),
            })
        }
        .boxed()
    }

    fn mount_image(
        &self,
        id: &str,
        n: usize,
        image: &ImageRecord,
        userns: Option<&PodUserNs>,
    ) -> Result<PathBuf, ContainerError> {
        let idmap = userns.map(idmap).transpose().map_err(setup_err(id))?;
        self.rootfs(id)
            .mount_image(n, &self.lower_dirs(image), idmap.as_ref())
            .map_err(|e| setup_err(id)(format!("mounting image volume {n} ({}): {e}", image.id)))
    }

    fn idmap_volume(&self, id: &str, n: usize, source: &Path, userns: &PodUserNs) -> Result<PathBuf, ContainerError> {
        let idmap = idmap(userns).map_err(setup_err(id))?;
        self.rootfs(id)
            .idmap_volume(n, source, &idmap)
            .map_err(|e| setup_err(id)(format!("idmapping volume {}: {e}", source.display())))
    }

    fn move_layer(&self, from: &str, to: &str) -> Result<(), ContainerError> {
        self.rootfs(from)
            .move_layer(&self.rootfs(to))
            .map_err(|e| setup_err(to)(format!("taking over the writable layer of {from}: {e}")))
    }

    fn spawn<'a>(&'a self, s: Spawn<'a>) -> BoxFuture<'a, Result<u32, ContainerError>> {
        self.do_spawn(s).boxed()
    }

    fn teardown<'a>(&'a self, id: &'a str, handler: Option<&'a str>) -> BoxFuture<'a, ()> {
        self.do_teardown(id, handler).boxed()
    }

    fn on_disk(&self) -> Vec<String> {
        let mut ids = std::collections::BTreeSet::new();
        for dir in [self.state_dir.join("containers"), self.root_dir.join("containers")] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    ids.insert(name);
                }
            }
        }
        ids.into_iter().collect()
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ShimError>> {
        async move { shim::start_container(&self.bundle(id)).await }.boxed()
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ShimState, ShimError>> {
        async move { shim::state(&self.bundle(id)).await }.boxed()
    }

    fn read_exit(&self, id: &str) -> Option<Exit> {
        shim::read_exit(&self.bundle(id))
    }

    fn kill<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> BoxFuture<'a, Result<(), ShimError>> {
        async move { shim::kill(&self.bundle(id), signal, all).await }.boxed()
    }

    fn wait<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<bool, ShimError>> {
        async move { shim::wait(&self.bundle(id), timeout).await }.boxed()
    }

    fn exec<'a>(&'a self, id: &'a str, args: ExecArgs) -> BoxFuture<'a, Result<ExecResult, ShimError>> {
        async move { shim::exec(&self.bundle(id), args).await }.boxed()
    }

    fn reopen_log<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ShimError>> {
        async move { shim::reopen_log(&self.bundle(id)).await }.boxed()
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        handler: &'a str,
        resources: &'a LinuxResources,
    ) -> BoxFuture<'a, Result<(), ContainerError>> {
        self.do_update(id, handler, resources).boxed()
    }

    fn runtime_target(&self, id: &str, handler: &str) -> Result<RuntimeTarget, ContainerError> {
        let (runtime, runtime_root) = self.runtime(handler)?;
        Ok(RuntimeTarget {
            id: id.to_string(),
            bundle: self.bundle(id),
            runtime: runtime.binary.clone(),
            runtime_args: runtime.args.clone(),
            gvisor: runtime.kind == HandlerKind::Gvisor,
            shim_v2: runtime.kind == HandlerKind::ShimV2,
            runtime_root,
            systemd_cgroup: self.cgroup_driver == CgroupDriver::Systemd,
        })
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.state_dir.join("containers").join(id)
    }

    fn writable_layer(&self, id: &str) -> PathBuf {
        self.rootfs(id).upper()
    }

    fn rootfs_dir(&self, id: &str) -> PathBuf {
        self.rootfs(id).mountpoint()
    }

    fn live_shims(&self, ids: &[String]) -> usize {
        ids.iter()
            .filter_map(|id| std::fs::read_to_string(self.bundle(id).join(berth_shim::api::PID_FILE)).ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{}/comm", pid.trim()))
                    .is_ok_and(|comm| comm.starts_with("berth-shim"))
            })
            .count()
    }

    fn features(&self) -> BTreeMap<String, Features> {
        self.features.clone()
    }
}

/// The pod's pinned user namespace, opened, and the host ids of its root.
fn idmap(userns: &PodUserNs) -> Result<Idmap, String> {
    let file = std::fs::File::open(&userns.pin)
        .map_err(|e| format!("opening the pod's user namespace {}: {e}", userns.pin.display()))?;
    Ok(Idmap {
        userns: file,
        root: userns.map.host_root(),
    })
}
