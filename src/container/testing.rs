//! A fake container driver and image source for unit tests: a runtime that only keeps
//! books (states, exits, what is on disk) and one image.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use oci_spec::runtime::{LinuxResources, Spec};

use super::driver::{Driver, Prepared, Spawn};
use super::error::ContainerError;
use super::lifecycle::ImageSource;
use super::model::PodUserNs;
use crate::image::ImageRecord;
use crate::runtime::exec::RuntimeTarget;
use crate::runtime::features::Features;
use crate::runtime::shim::{ExecArgs, ExecResult, Exit, ShimError, ShimState, Status};

pub(super) const IMAGE: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// One container as the fake runtime holds it.
#[derive(Debug, Clone)]
pub(super) struct Proc {
    pub status: Status,
    pub started_at: i64,
    pub exit: Option<Exit>,
    /// Its shim is gone; `exit` is what it left on disk.
    pub gone: bool,
    /// Ignores the stop signal (only SIGKILL ends it).
    pub stubborn: bool,
}

#[derive(Default)]
pub(super) struct Fake {
    pub procs: Mutex<HashMap<String, Proc>>,
    /// Ids with something on disk (prepared, not yet torn down).
    pub disk: Mutex<Vec<String>>,
    /// Every side effect, in order (`prepare ID`, `spawn ID`, `teardown ID`, ...).
    pub calls: Mutex<Vec<String>>,
    /// The next spawn fails with this message.
    pub fail_spawn: Mutex<Option<String>>,
    /// Specs written, by id.
    pub specs: Mutex<HashMap<String, Spec>>,
    pub updates: Mutex<Vec<LinuxResources>>,
    /// The runtime knows no optional feature (no `rro`).
    pub plain_runtime: std::sync::atomic::AtomicBool,
    /// What image volumes show (every image the same tree); unset, mounting one fails.
    pub image_root: Mutex<Option<PathBuf>>,
    /// Spawns take this long (to overlap them with other calls).
    pub spawn_delay: Mutex<Duration>,
}

impl Fake {
    pub fn log(&self, call: &str, id: &str) {
        self.calls.lock().unwrap().push(format!("{call} {id}"));
    }

    pub fn calls(&self, call: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with(call))
            .count()
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Proc) -> T) -> Result<T, ShimError> {
        match self.procs.lock().unwrap().get_mut(id) {
            Some(p) if !p.gone => Ok(f(p)),
            _ => Err(ShimError::Gone { path: id.into() }),
        }
    }

    pub fn end(p: &mut Proc, code: i32) {
        if p.status != Status::Stopped {
            p.status = Status::Stopped;
            p.exit = Some(Exit {
                exit_code: code,
                finished_at: crate::clock::now_nanos(),
                oom_killed: false,
            });
        }
    }
}

impl Driver for Fake {
    fn prepare<'a>(
        &'a self,
        id: &'a str,
        _image: &'a ImageRecord,
        _userns: Option<&'a PodUserNs>,
    ) -> BoxFuture<'a, Result<Prepared, ContainerError>> {
        self.log("prepare", id);
        self.disk.lock().unwrap().push(id.to_string());
        let dir = PathBuf::from("/nonexistent").join(id);
        async move {
            Ok(Prepared {
                rootfs: dir.join("rootfs"),
                volumes: dir.join("volumes"),
            })
        }
        .boxed()
    }

    fn idmap_volume(&self, id: &str, n: usize, source: &Path, _userns: &PodUserNs) -> Result<PathBuf, ContainerError> {
        self.log(&format!("idmap_volume{n}"), id);
        Ok(source.to_path_buf())
    }

    fn mount_image(
        &self,
        id: &str,
        n: usize,
        _image: &ImageRecord,
        _userns: Option<&PodUserNs>,
    ) -> Result<PathBuf, ContainerError> {
        self.log(&format!("mount_image{n}"), id);
        self.image_root
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| ContainerError::Invalid("no image root in this fake".into()))
    }

    fn move_layer(&self, from: &str, to: &str) -> Result<(), ContainerError> {
        self.log("move_layer", &format!("{from}>{to}"));
        Ok(())
    }

    fn spawn<'a>(&'a self, s: Spawn<'a>) -> BoxFuture<'a, Result<u32, ContainerError>> {
        self.log("spawn", s.id);
        let failed = self.fail_spawn.lock().unwrap().take();
        if failed.is_none() {
            self.specs.lock().unwrap().insert(s.id.to_string(), s.spec.clone());
            let proc = Proc {
                status: Status::Created,
                started_at: 0,
                exit: None,
                gone: false,
                stubborn: false,
            };
            self.procs.lock().unwrap().insert(s.id.to_string(), proc);
        }
        let id = s.id.to_string();
        let delay = *self.spawn_delay.lock().unwrap();
        async move {
            tokio::time::sleep(delay).await;
            match failed {
                Some(message) => Err(ContainerError::Setup { id, message }),
                None => Ok(4242),
            }
        }
        .boxed()
    }

    fn teardown<'a>(&'a self, id: &'a str, _handler: Option<&'a str>) -> BoxFuture<'a, ()> {
        self.log("teardown", id);
        self.procs.lock().unwrap().remove(id);
        self.disk.lock().unwrap().retain(|d| d != id);
        async {}.boxed()
    }

    fn on_disk(&self) -> Vec<String> {
        self.disk.lock().unwrap().clone()
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ShimError>> {
        self.log("start", id);
        let r = self.with(id, |p| {
            p.status = Status::Running;
            p.started_at = crate::clock::now_nanos();
        });
        async move { r }.boxed()
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ShimState, ShimError>> {
        let r = self.with(id, |p| ShimState {
            status: p.status,
            pid: 4242,
            started_at: p.started_at,
            exit: p.exit,
        });
        async move { r }.boxed()
    }

    fn read_exit(&self, id: &str) -> Option<Exit> {
        self.procs.lock().unwrap().get(id).and_then(|p| p.exit)
    }

    fn kill<'a>(&'a self, id: &'a str, signal: i32, _all: bool) -> BoxFuture<'a, Result<(), ShimError>> {
        self.log(&format!("kill {signal}"), id);
        let r = self.with(id, |p| {
            if signal == 9 || !p.stubborn {
                Fake::end(p, 128 + signal);
            }
        });
        async move { r }.boxed()
    }

    fn wait<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<bool, ShimError>> {
        let r = self.with(id, |p| p.status == Status::Stopped);
        async move {
            if matches!(r, Ok(false)) {
                tokio::time::sleep(timeout.min(Duration::from_millis(20))).await;
            }
            r
        }
        .boxed()
    }

    fn exec<'a>(&'a self, id: &'a str, args: ExecArgs) -> BoxFuture<'a, Result<ExecResult, ShimError>> {
        let r = self.with(id, |_| ExecResult {
            exit_code: 0,
            stdout: args.args.join(" ").into_bytes(),
            stderr: Vec::new(),
            timed_out: false,
        });
        async move { r }.boxed()
    }

    fn reopen_log<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ShimError>> {
        let r = self.with(id, |_| ());
        async move { r }.boxed()
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        _handler: &'a str,
        resources: &'a LinuxResources,
    ) -> BoxFuture<'a, Result<(), ContainerError>> {
        self.log("update", id);
        self.updates.lock().unwrap().push(resources.clone());
        async { Ok(()) }.boxed()
    }

    fn runtime_target(&self, id: &str, _handler: &str) -> Result<RuntimeTarget, ContainerError> {
        Ok(RuntimeTarget {
            id: id.to_string(),
            bundle: self.bundle(id),
            runtime: "runc".into(),
            runtime_root: "/nonexistent".into(),
            systemd_cgroup: false,
            runtime_args: Vec::new(),
            gvisor: false,
            shim_v2: false,
        })
    }

    fn bundle(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/bundles").join(id)
    }

    fn writable_layer(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/upper").join(id)
    }

    fn rootfs_dir(&self, id: &str) -> PathBuf {
        PathBuf::from("/nonexistent/rootfs").join(id)
    }

    fn live_shims(&self, ids: &[String]) -> usize {
        let procs = self.procs.lock().unwrap();
        ids.iter().filter(|id| procs.get(*id).is_some_and(|p| !p.gone)).count()
    }

    fn features(&self) -> std::collections::BTreeMap<String, Features> {
        let plain = self.plain_runtime.load(std::sync::atomic::Ordering::SeqCst);
        let f = Features {
            recursive_read_only: !plain,
            ..Features::default()
        };
        [(String::new(), f)].into()
    }
}

/// One image, and the containers that lease it.
#[derive(Default)]
pub(super) struct Images {
    pub leases: Mutex<Vec<String>>,
}

impl ImageSource for Images {
    fn lease(&self, holder: &str, name: &str) -> Option<ImageRecord> {
        if name != IMAGE && name != "busybox:latest" {
            return None;
        }
        let mut rec = ImageRecord::bare(IMAGE);
        rec.repo_tags = vec!["busybox:latest".into()];
        rec.run_config.cmd = Some(vec!["sh".into()]);
        rec.run_config.stop_signal = Some("SIGQUIT".into());
        self.leases.lock().unwrap().push(holder.to_string());
        Some(rec)
    }

    fn release(&self, holder: &str) {
        self.leases.lock().unwrap().retain(|h| h != holder);
    }
}
