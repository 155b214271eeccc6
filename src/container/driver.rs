//! What a container's lifecycle does outside Berth's own records: its root filesystem and
//! bundle on disk, its shim process, and the OCI runtime behind it. The lifecycle decides
//! (states, names, order, errors); a [`Driver`] carries it out. The daemon's driver is
//! [`super::shim_driver::ShimDriver`]; unit tests put a fake in its place, so the lifecycle
//! is tested without root, mounts or processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::BoxFuture;
use oci_spec::runtime::{LinuxResources, Spec};

use super::error::ContainerError;
use super::model::PodUserNs;
use crate::image::ImageRecord;
use crate::runtime::exec::RuntimeTarget;
use crate::runtime::features::Features;
use crate::runtime::shim::{ExecArgs, ExecResult, Exit, ShimError, ShimState};

/// Where a prepared container's root filesystem is, for its OCI spec.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The mounted root filesystem.
    pub rootfs: PathBuf,
    /// Where image VOLUMEs get their directories.
    pub volumes: PathBuf,
}

/// How to create the container once its spec is written.
pub struct Spawn<'a> {
    pub id: &'a str,
    /// The runtime handler ("" = default).
    pub handler: &'a str,
    pub spec: &'a Spec,
    /// The container log (empty: none).
    pub log_path: &'a str,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

pub trait Driver: Send + Sync {
    /// Makes the container's bundle directory and mounts its root filesystem over the
    /// image's layers.
    /// In a pod with its own user namespace (`userns`), the layers are shifted into it and
    /// the writable layer belongs to the pod's root.
    fn prepare<'a>(
        &'a self,
        id: &'a str,
        image: &'a ImageRecord,
        userns: Option<&'a PodUserNs>,
    ) -> BoxFuture<'a, Result<Prepared, ContainerError>>;
    /// Mounts a read-only view of `image` as the container's image volume `n` (after
    /// `prepare`); returns where. `teardown` unmounts it.
    fn mount_image(
        &self,
        id: &str,
        n: usize,
        image: &ImageRecord,
        userns: Option<&PodUserNs>,
    ) -> Result<PathBuf, ContainerError>;
    /// An idmapped view, shifted into the pod's user namespace, of the source of volume
    /// mount `n`; returns where. `teardown` unmounts it.
    fn idmap_volume(&self, id: &str, n: usize, source: &Path, userns: &PodUserNs) -> Result<PathBuf, ContainerError>;
    /// Hands container `from`'s writable layer (and image-volume directories) to container
    /// `to` before `to` is prepared: a restart keeps what the container wrote. `from` must
    /// have exited; its root filesystem is unmounted.
    fn move_layer(&self, from: &str, to: &str) -> Result<(), ContainerError>;
    /// Writes the spec into the bundle and creates the container (shim and `runtime
    /// create`); returns its init pid.
    fn spawn<'a>(&'a self, s: Spawn<'a>) -> BoxFuture<'a, Result<u32, ContainerError>>;
    /// Takes down whatever `prepare` and `spawn` left, best effort and idempotent: the
    /// process, the runtime's state, the root filesystem, the bundle. `None` tries every
    /// runtime handler (the one it was created with is not known).
    fn teardown<'a>(&'a self, id: &'a str, handler: Option<&'a str>) -> BoxFuture<'a, ()>;
    /// Ids of containers with something on disk (bundle or root filesystem directory).
    fn on_disk(&self) -> Vec<String>;

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ShimError>>;
    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ShimState, ShimError>>;
    /// How the container ended, as its shim recorded before going away.
    fn read_exit(&self, id: &str) -> Option<Exit>;
    fn kill<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> BoxFuture<'a, Result<(), ShimError>>;
    /// Waits up to `timeout` for the container to stop; whether it did.
    fn wait<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<bool, ShimError>>;
    fn exec<'a>(&'a self, id: &'a str, args: ExecArgs) -> BoxFuture<'a, Result<ExecResult, ShimError>>;
    fn reopen_log<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ShimError>>;
    /// Applies new limits to the created or running container.
    fn update<'a>(
        &'a self,
        id: &'a str,
        handler: &'a str,
        resources: &'a LinuxResources,
    ) -> BoxFuture<'a, Result<(), ContainerError>>;
    /// Where the container lives in its OCI runtime (interactive exec runs it directly).
    fn runtime_target(&self, id: &str, handler: &str) -> Result<RuntimeTarget, ContainerError>;
    /// The container's shim directory (its API socket lives there).
    fn bundle(&self, id: &str) -> PathBuf;
    /// The container's writable layer.
    fn writable_layer(&self, id: &str) -> PathBuf;
    /// Where the container's root filesystem is mounted (while it exists and is mounted).
    fn rootfs_dir(&self, id: &str) -> PathBuf;
    /// How many of these containers have a live shim.
    fn live_shims(&self, ids: &[String]) -> usize;
    /// Each runtime handler ("" = default) with what its OCI runtime supports.
    fn features(&self) -> BTreeMap<String, Features>;
}
