//! Container lifecycle: create (rootfs, OCI bundle, shim + `runc create`), start, stop with
//! the stop signal then SIGKILL, remove, status and listing. Records persist in the
//! metadata store; after a berthd restart, running containers are found again through their
//! shims, and exits that happened meanwhile are read from the shim's exit record. What
//! happens outside the records goes through a [`Driver`].

use std::sync::Arc;
use std::time::Duration;

use super::driver::Driver;
pub use super::error::ContainerError;
use super::hooks::ContainerHooks;
pub use super::model::{ContainerFilter, ContainerRecord, ContainerState, ImageRef};
use super::shim_driver::ShimDriver;
use crate::config::CgroupDriver;
use crate::events::{self, Event, EventBus, EventKind};
use crate::image::{ImageRecord, Images};
use crate::locks::KeyedLocks;
use crate::runtime::shim::{ShimError, Status};
use crate::sandbox::hooks::HookSlot;
use crate::sandbox::Sandboxes;
use crate::snapshot::Snapshotter;
use crate::store::{Index, MetaStore, Observer};

pub struct ContainersOptions {
    pub state_dir: std::path::PathBuf,
    pub root_dir: std::path::PathBuf,
    pub shim_binary: std::path::PathBuf,
    /// Runtime handler ("" = default) to OCI runtime binary.
    pub runtimes: std::collections::BTreeMap<String, crate::runtime::handler::Runtime>,
    pub cgroup_driver: CgroupDriver,
    /// CDI devices (GPUs and others) containers may ask for.
    pub cdi: Arc<crate::cdi::Cdi>,
    /// Where berthd's volumes live.
    pub volume_root: std::path::PathBuf,
    /// berthd's ttrpc Events service, for shim v2 runtime handlers.
    pub events_address: Option<std::path::PathBuf>,
}

/// Where containers find their images, and keep them while in use.
pub trait ImageSource: Send + Sync {
    /// The image an id, a unique id prefix, a tag or a digest reference names, leased to
    /// container `holder` (the image cannot be removed until the holder releases it).
    fn lease(&self, holder: &str, name: &str) -> Option<ImageRecord>;
    /// Ends every lease of `holder`.
    fn release(&self, holder: &str);
}

impl ImageSource for Images {
    fn lease(&self, holder: &str, name: &str) -> Option<ImageRecord> {
        Images::lease(self, holder, name)
    }

    fn release(&self, holder: &str) {
        Images::release(self, holder)
    }
}

pub struct Containers {
    pub(super) cgroup_driver: CgroupDriver,
    pub(super) cdi: Arc<crate::cdi::Cdi>,
    pub(super) images: Arc<dyn ImageSource>,
    pub(super) sandboxes: Arc<Sandboxes>,
    pub(super) records: Index<ContainerRecord>,
    pub(super) locks: KeyedLocks,
    pub(super) driver: Arc<dyn Driver>,
    /// Where berthd's volumes live: an empty one mounted gets the image's content first.
    pub(super) volume_root: Option<std::path::PathBuf>,
    pub(super) hooks: Arc<HookSlot<dyn ContainerHooks>>,
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
        std::fs::create_dir_all(&opts.root_dir).map_err(|e| ContainerError::Setup {
            id: String::new(),
            message: format!("{}: {e}", opts.root_dir.display()),
        })?;
        let idmap = super::rootfs::userns_supported(&opts.root_dir, &opts.state_dir);
        let features = opts
            .runtimes
            .iter()
            .map(|(handler, rt)| {
                let bin = &rt.binary;
                // A shim v2 has no `features` command (an unknown one makes it serve): the
                // OCI runtime under it answers, if the config names it.
                let asked = match rt.kind {
                    crate::runtime::handler::HandlerKind::ShimV2 => rt.features_from.as_deref(),
                    _ => Some(bin.as_path()),
                };
                let mut f = asked.map_or_else(Default::default, |b| {
                    crate::runtime::features::probe(b, Duration::from_secs(5))
                });
                f.user_namespace &= idmap;
                if rt.kind == crate::runtime::handler::HandlerKind::Gvisor && f.last_cap.is_none() {
                    // runsc releases without `features` (Debian's 20221219) know capabilities
                    // up to CAP_AUDIT_READ; a privileged container asking for CAP_PERFMON,
                    // CAP_BPF or CAP_CHECKPOINT_RESTORE would not start.
                    f.last_cap = Some(crate::runtime::handler::GVISOR_LAST_CAP);
                }
                tracing::info!(handler, runtime = %bin.display(), features = ?f, "runtime handler");
                (handler.clone(), f)
            })
            .collect();
        let volume_root = opts.volume_root;
        let driver = ShimDriver {
            state_dir: opts.state_dir,
            root_dir: opts.root_dir,
            shim_binary: opts.shim_binary,
            runtimes: opts.runtimes,
            features,
            cgroup_driver: opts.cgroup_driver,
            snapshots,
            events_address: opts.events_address,
        };
        let mut containers = Containers::with_driver(
            Arc::new(driver),
            opts.cgroup_driver,
            opts.cdi,
            meta,
            images,
            sandboxes,
            events,
        )?;
        containers.volume_root = Some(volume_root);
        Ok(containers)
    }

    /// Containers carried out by `driver`.
    pub fn with_driver(
        driver: Arc<dyn Driver>,
        cgroup_driver: CgroupDriver,
        cdi: Arc<crate::cdi::Cdi>,
        meta: Arc<MetaStore>,
        images: Arc<dyn ImageSource>,
        sandboxes: Arc<Sandboxes>,
        events: Arc<EventBus>,
    ) -> Result<Containers, ContainerError> {
        let hooks: Arc<HookSlot<dyn ContainerHooks>> = Arc::default();
        let records = Index::load(meta, |_| false)?.observed_by(announcer(sandboxes.clone(), events, hooks.clone()));
        // Leases live in memory: take them again for the containers a restart finds.
        for rec in records.list(|_| true) {
            let volumes = rec.spec.mounts.iter().filter_map(|m| m.image.as_ref()).map(|v| &v.id);
            for image in std::iter::once(&rec.image.id).chain(volumes) {
                if images.lease(&rec.id, image).is_none() {
                    tracing::warn!(container = rec.id, image, "the image of a container is gone");
                }
            }
        }
        Ok(Containers {
            cgroup_driver,
            cdi,
            images,
            sandboxes,
            records,
            locks: KeyedLocks::default(),
            driver,
            volume_root: None,
            hooks,
        })
    }

    /// Installs the containers' extension points (once; later calls are ignored).
    pub fn set_hooks(&self, hooks: Arc<dyn ContainerHooks>) {
        self.hooks.set(hooks);
    }

    /// Stores the record; the store's observer publishes what the change amounts to.
    pub(super) fn save(&self, rec: &ContainerRecord) -> Result<(), ContainerError> {
        self.records.put(rec)?;
        Ok(())
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
        let exit = match self.driver.state(&rec.id).await {
            Ok(s) => {
                if s.status == Status::Running && rec.state == ContainerState::Created {
                    rec.state = ContainerState::Running;
                    rec.started_at = s.started_at;
                    self.save(&rec)?;
                }
                s.exit.filter(|_| s.status == Status::Stopped)
            }
            Err(ShimError::Gone { .. }) => match self.driver.read_exit(&rec.id) {
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
        let ids: Vec<String> = self.records.ids().into_iter().collect();
        self.driver.live_shims(&ids)
    }

    /// The container's writable layer (the overlay's upper directory).
    pub fn writable_layer(&self, id: &str) -> std::path::PathBuf {
        self.driver.writable_layer(id)
    }

    /// The shim directory of a container (its API socket lives there).
    pub fn bundle_dir(&self, id: &str) -> std::path::PathBuf {
        self.driver.bundle(id)
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
        if let (Some(h), Ok(pod)) = (self.hooks.get(), self.sandboxes.get(&rec.sandbox_id)) {
            h.start(&pod, &rec).await.map_err(super::error::setup_err(&rec.id))?;
        }
        self.driver.start(&rec.id).await?;
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
        let driver = self.driver.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            loop {
                let waited = driver.wait(&id, ROUND).await;
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
        let mut rec = self.get(&rec.id).await?;
        if !matches!(rec.state, ContainerState::Running | ContainerState::Created) {
            return Ok(());
        }
        if !rec.stop_requested {
            rec.stop_requested = true;
            self.save(&rec)?;
        }
        if rec.state == ContainerState::Running && !timeout.is_zero() {
            self.driver.kill(&rec.id, rec.stop_signal, false).await?;
            if self.driver.wait(&rec.id, timeout).await? {
                self.get(&rec.id).await?;
                return Ok(());
            }
        }
        self.driver.kill(&rec.id, 9, true).await?;
        self.driver.wait(&rec.id, Duration::from_secs(10)).await?;
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
        self.driver.teardown(&rec.id, Some(&rec.runtime_handler)).await;
        self.records.remove(&rec.id)?;
        self.images.release(&rec.id);
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
}

/// Publishes the lifecycle events of a container record's move between states, with the
/// pod's sandbox and containers as they are once it is stored.
fn announcer(
    sandboxes: Arc<Sandboxes>,
    events: Arc<EventBus>,
    hooks: Arc<HookSlot<dyn ContainerHooks>>,
) -> Observer<ContainerRecord> {
    Box::new(move |index, old, new| {
        let Some(rec) = new.or(old) else { return };
        let kinds = events::container_transition(old.map(|r| r.state), new.map(|r| r.state));
        if kinds.is_empty() {
            return;
        }
        let containers = index.list(|r| r.sandbox_id == rec.sandbox_id);
        let sandbox = sandboxes.get(&rec.sandbox_id).ok();
        if let Some(h) = hooks.get() {
            h.changed(sandbox.as_ref(), old, new);
        }
        for kind in kinds {
            let at = match kind {
                EventKind::Created => rec.created_at,
                EventKind::Started => rec.started_at,
                EventKind::Stopped => rec.finished_at,
                EventKind::Deleted => crate::clock::now_nanos(),
            };
            events.publish(Event {
                kind,
                container_id: rec.id.clone(),
                sandbox_id: rec.sandbox_id.clone(),
                at,
                sandbox: sandbox.clone(),
                containers: Some(containers.clone()),
                oom_killed: kind == EventKind::Stopped && rec.reason == "OOMKilled",
            });
        }
    })
}
