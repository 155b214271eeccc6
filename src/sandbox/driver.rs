//! What a sandbox's lifecycle does to the host besides its network (which is behind
//! [`crate::network::PodNetwork`]): the pod's /dev/shm, its pinned network namespace, its
//! cgroup and its infra process. The lifecycle decides; a [`Driver`] carries it out. The
//! daemon's driver is [`HostDriver`]; unit tests put a fake in its place, so the lifecycle
//! is tested without root.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;

use super::infra::{self, InfraArgs};
use super::UserNsMap;
use crate::cgroup::{self, Hierarchy};
use crate::sys;

pub trait Driver: Send + Sync {
    /// Mounts a tmpfs of `size` bytes at `dir` (the pod's /dev/shm).
    fn mount_shm(&self, dir: &Path, size: u64) -> io::Result<()>;
    /// Unmounts `dir`; nothing mounted there is fine.
    fn unmount(&self, dir: &Path) -> io::Result<()>;
    /// Creates a network namespace pinned at `pin`.
    fn create_netns(&self, pin: &Path) -> io::Result<()>;
    /// Creates a user namespace with `map`, pinned at `user_pin`, and a network namespace
    /// it owns, pinned at `net_pin`; on failure neither pin stays.
    fn create_userns(&self, user_pin: &Path, net_pin: &Path, map: &UserNsMap) -> io::Result<()>;
    /// Releases the namespace pinned at `pin` (network or user); a missing pin is fine.
    fn remove_netns(&self, pin: &Path) -> io::Result<()>;
    /// Creates cgroup `path` in every hierarchy; returns the directories it made.
    fn create_cgroup(&self, path: &str) -> io::Result<Vec<PathBuf>>;
    /// Moves `pid` into cgroup `path`.
    fn add_to_cgroup(&self, path: &str, pid: u32) -> io::Result<()>;
    /// Removes the directories of `made` that are cgroup `path` or below it.
    fn remove_cgroup(&self, made: &[PathBuf], path: &str) -> io::Result<()>;
    /// The directories cgroup `path` has now (after a crash, nothing says which were made).
    fn cgroup_dirs(&self, path: &str) -> Vec<PathBuf>;
    /// Starts the infra process; returns its pid once its namespaces are ready.
    fn start_infra<'a>(&'a self, args: InfraArgs<'a>) -> BoxFuture<'a, Result<u32, String>>;
    /// The start time of process `pid` (tells a reused pid apart).
    fn started(&self, pid: u32) -> Option<u64>;
    /// Whether the infra process (`pid`, `started`) still runs.
    fn alive(&self, pid: u32, started: u64) -> bool;
    /// Ends the infra process: SIGTERM, then SIGKILL after `grace`.
    fn stop_infra(&self, pid: u32, started: u64, grace: Duration) -> BoxFuture<'static, ()>;
}

/// The host itself: mounts, namespaces and cgroups through `sys` and `cgroup`, and
/// `berth-pause` as the infra process.
pub struct HostDriver {
    /// `None`: no cgroup hierarchy found; sandboxes run without a cgroup.
    pub cgroups: Option<Hierarchy>,
}

impl HostDriver {
    pub fn detect() -> HostDriver {
        let cgroups = Hierarchy::detect()
            .map_err(|e| tracing::warn!(error = %e, "no cgroups: sandboxes run without a cgroup"))
            .ok();
        HostDriver { cgroups }
    }
}

impl Driver for HostDriver {
    fn mount_shm(&self, dir: &Path, size: u64) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        sys::mount::tmpfs(dir, size, 0o1777)
    }

    fn unmount(&self, dir: &Path) -> io::Result<()> {
        sys::mount::unmount(dir)
    }

    fn create_netns(&self, pin: &Path) -> io::Result<()> {
        sys::ns::create_netns(pin)
    }

    fn create_userns(&self, user_pin: &Path, net_pin: &Path, map: &UserNsMap) -> io::Result<()> {
        let ns = sys::userns::create(&map.uids.map_line(), &map.gids.map_line(), true)?;
        let net = ns
            .net
            .as_ref()
            .ok_or_else(|| io::Error::other("no network namespace"))?;
        sys::userns::pin(&ns.user, user_pin)?;
        if let Err(e) = sys::userns::pin(net, net_pin) {
            let _ = sys::ns::remove_netns(user_pin);
            return Err(e);
        }
        Ok(())
    }

    fn remove_netns(&self, pin: &Path) -> io::Result<()> {
        sys::ns::remove_netns(pin)
    }

    fn create_cgroup(&self, path: &str) -> io::Result<Vec<PathBuf>> {
        match &self.cgroups {
            Some(h) => cgroup::create(h, path),
            None => Ok(Vec::new()),
        }
    }

    fn add_to_cgroup(&self, path: &str, pid: u32) -> io::Result<()> {
        match &self.cgroups {
            Some(h) => cgroup::add_process(h, path, pid),
            None => Ok(()),
        }
    }

    fn remove_cgroup(&self, made: &[PathBuf], path: &str) -> io::Result<()> {
        cgroup::remove_dirs(&cgroup::owned_leaves(made, path))
    }

    fn cgroup_dirs(&self, path: &str) -> Vec<PathBuf> {
        self.cgroups
            .as_ref()
            .map(|h| cgroup::leaf_dirs(h, path))
            .unwrap_or_default()
    }

    fn start_infra<'a>(&'a self, args: InfraArgs<'a>) -> BoxFuture<'a, Result<u32, String>> {
        infra::start(args).boxed()
    }

    fn started(&self, pid: u32) -> Option<u64> {
        infra::start_time(pid)
    }

    fn alive(&self, pid: u32, started: u64) -> bool {
        infra::alive(pid, started)
    }

    fn stop_infra(&self, pid: u32, started: u64, grace: Duration) -> BoxFuture<'static, ()> {
        infra::stop(pid, started, grace).boxed()
    }
}
