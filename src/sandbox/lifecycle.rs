//! Run, stop, remove and inspect sandboxes. Every step of `run` is undone when a later one
//! fails, and `stop`/`remove` are idempotent, so nothing is left behind either way: no
//! netns mount, veth, iptables rule, cgroup, shm mount or infra process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::driver::{Driver, HostDriver};
use super::hooks::{HookSlot, PodHooks, PodRuntime};
use super::infra::InfraArgs;
use super::validate::{shm_size, validate};
use super::{files, NsMode, SandboxFilter, SandboxRecord, SandboxSpec, SandboxState};
use crate::cgroup;
use crate::config::CgroupDriver;
use crate::events::{self, Event, EventBus, EventKind};
use crate::locks::KeyedLocks;
use crate::network::{NetworkError, PodNetwork, PodNetworkRequest};
use crate::store::{Index, MetaStore, Observer, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Invalid(String),
    #[error("sandbox {0} not found")]
    NotFound(String),
    #[error("sandbox name {name} is reserved by sandbox {id}")]
    NameTaken { name: String, id: String },
    #[error("pod network: {0}")]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sandbox {id}: {message}")]
    Setup { id: String, message: String },
}

pub struct SandboxesOptions {
    pub state_dir: PathBuf,
    pub infra_binary: PathBuf,
    pub cgroup_driver: CgroupDriver,
    pub shm_size: u64,
    pub stop_grace: Duration,
}

pub struct Sandboxes {
    pub(super) opts: SandboxesOptions,
    network: Arc<dyn PodNetwork>,
    pub(super) driver: Arc<dyn Driver>,
    /// Records, and the names (`name_namespace_uid_attempt`) they hold.
    pub(super) records: Index<SandboxRecord>,
    locks: KeyedLocks,
    /// Held while a container joins a sandbox and while a pod's containers are stopped or
    /// removed with it, so no container is created into a pod being taken down.
    members: KeyedLocks,
    hooks: Arc<HookSlot<dyn PodHooks>>,
    pod_runtime: HookSlot<dyn PodRuntime>,
}

fn setup_err(id: &str) -> impl Fn(String) -> SandboxError + '_ {
    move |message| SandboxError::Setup {
        id: id.to_string(),
        message,
    }
}

impl Sandboxes {
    pub fn open(
        opts: SandboxesOptions,
        meta: Arc<MetaStore>,
        network: Arc<dyn PodNetwork>,
        events: Arc<EventBus>,
    ) -> Result<Sandboxes, SandboxError> {
        Sandboxes::with_driver(opts, meta, network, Arc::new(HostDriver::detect()), events)
    }

    /// Sandboxes carried out by `driver`.
    pub fn with_driver(
        opts: SandboxesOptions,
        meta: Arc<MetaStore>,
        network: Arc<dyn PodNetwork>,
        driver: Arc<dyn Driver>,
        events: Arc<EventBus>,
    ) -> Result<Sandboxes, SandboxError> {
        let hooks: Arc<HookSlot<dyn PodHooks>> = Arc::default();
        let records = Index::load(meta, |rec: &mut SandboxRecord| {
            // The infra process may have died while berthd was down.
            let died = !live(driver.as_ref(), rec);
            if died {
                rec.state = SandboxState::NotReady;
            }
            died
        })?
        .observed_by(announcer(events, hooks.clone()));
        Ok(Sandboxes {
            opts,
            network,
            driver,
            records,
            locks: KeyedLocks::default(),
            members: KeyedLocks::default(),
            hooks,
            pod_runtime: HookSlot::default(),
        })
    }

    /// Installs the pod's extension points (once; later calls are ignored).
    pub fn set_pod_runtime(&self, runtime: Arc<dyn PodRuntime>) {
        self.pod_runtime.set(runtime);
    }

    pub fn set_hooks(&self, hooks: Arc<dyn PodHooks>) {
        self.hooks.set(hooks);
    }

    /// Holds the sandbox's membership: a container being created into it, or the pod being
    /// stopped or removed as a whole, excludes the others until the guard drops.
    /// `id` may be a unique prefix, as everywhere; the guard is keyed by the full id.
    pub async fn hold_members(&self, id: &str) -> crate::locks::KeyedGuard<'_> {
        let full = self.records.find(id).map_or_else(|| id.to_string(), |r| r.id);
        self.members.lock(&full).await
    }

    /// After a restart: asks the CNI plugins to CHECK every ready sandbox's network, so a
    /// network lost while berthd was down is logged rather than found by users.
    pub async fn recover(&self) {
        self.sweep_orphans().await;
        let ready: Vec<SandboxRecord> = self.list(&SandboxFilter {
            state: Some(SandboxState::Ready),
            ..Default::default()
        });
        for rec in ready {
            if let Some(ns) = &rec.netns {
                if let Err(e) = self.network.check(&network_request(&rec, ns)).await {
                    tracing::warn!(sandbox = %rec.id, error = %e, "pod network check failed after restart");
                }
            }
        }
    }

    pub(super) fn dir(&self, id: &str) -> PathBuf {
        self.opts.state_dir.join("sandboxes").join(id)
    }

    pub(super) fn netns_path(&self, id: &str) -> PathBuf {
        self.opts.state_dir.join("netns").join(id)
    }

    /// Where a pod's own user namespace is pinned.
    pub(super) fn userns_path(&self, id: &str) -> PathBuf {
        self.opts.state_dir.join("userns").join(id)
    }

    /// Stores the record; the store's observer publishes what the change amounts to.
    fn save(&self, rec: &SandboxRecord) -> Result<(), SandboxError> {
        self.records.put(rec)?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<SandboxRecord, SandboxError> {
        // A unique prefix (3 characters or more) also names a sandbox, as in crictl.
        self.records
            .find(id)
            .map(|r| self.refresh(r))
            .ok_or_else(|| SandboxError::NotFound(id.to_string()))
    }

    pub fn list(&self, filter: &SandboxFilter) -> Vec<SandboxRecord> {
        self.records
            .list(|_| true)
            .into_iter()
            .map(|r| self.refresh(r))
            .filter(|r| filter.matches(r))
            .collect()
    }

    /// Creates and starts a sandbox; returns its id.
    pub async fn run(&self, spec: SandboxSpec) -> Result<String, SandboxError> {
        validate(&spec).map_err(SandboxError::Invalid)?;
        let id = new_id();
        let name = SandboxRecord::reserved_name(&spec);
        let reservation = self
            .records
            .reserve(&name, &id)
            .map_err(|holder| SandboxError::NameTaken { name, id: holder })?;
        let _lock = self.locks.lock(&id).await;
        let cgroup =
            cgroup::leaf_path(self.opts.cgroup_driver, &spec.cgroup_parent, &id).map_err(SandboxError::Invalid)?;
        let mut rec = SandboxRecord {
            id: id.clone(),
            spec,
            state: SandboxState::NotReady,
            created_at: crate::clock::now_nanos(),
            netns: None,
            userns: None,
            ips: Vec::new(),
            infra_pid: None,
            infra_start: 0,
            cgroup,
            cgroup_dirs: Vec::new(),
            resources: None,
        };
        let set_up = match self.setup(&mut rec).await {
            Ok(()) => {
                rec.state = SandboxState::Ready;
                self.hook_run(&rec).await
            }
            Err(e) => Err(e),
        };
        match set_up {
            Ok(()) => {
                if let Err(e) = self.save(&rec) {
                    self.undo(&rec).await;
                    return Err(e);
                }
                reservation.keep();
                if let Some(group) = super::hosts_group::group_of(&rec) {
                    self.refresh_hosts_group(group);
                }
                Ok(id)
            }
            Err(e) => {
                self.undo(&rec).await;
                Err(e)
            }
        }
    }

    /// The hooks' say on a set-up sandbox before it is recorded (and so before anyone sees it).
    async fn hook_run(&self, rec: &SandboxRecord) -> Result<(), SandboxError> {
        match self.hooks.get() {
            Some(h) => h.run(rec).await.map_err(setup_err(&rec.id)),
            None => Ok(()),
        }
    }

    async fn setup(&self, rec: &mut SandboxRecord) -> Result<(), SandboxError> {
        let id = rec.id.clone();
        let err = setup_err(&id);
        let dir = self.dir(&id);
        std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        // What a start-up sweep needs to take this sandbox down if berthd dies before it
        // is recorded.
        super::intent::write_intent(&dir, rec).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let host_net = rec.spec.namespaces.network == NsMode::Node;
        let host_ipc = rec.spec.namespaces.ipc == NsMode::Node;
        let hostname = if rec.spec.hostname.is_empty() && host_net {
            rustix::system::uname().nodename().to_string_lossy().into_owned()
        } else {
            rec.spec.hostname.clone()
        };
        let resolv = files::resolv_conf(rec.spec.dns.as_ref()).map_err(|e| err(format!("resolv.conf: {e}")))?;
        files::write(&dir.join("resolv.conf"), &resolv).map_err(|e| err(format!("resolv.conf: {e}")))?;
        files::write(&dir.join("hostname"), &format!("{hostname}\n")).map_err(|e| err(format!("hostname: {e}")))?;
        if !host_ipc {
            let size = shm_size(&rec.spec.annotations)
                .ok()
                .flatten()
                .unwrap_or(self.opts.shm_size);
            self.driver
                .mount_shm(&dir.join("shm"), size)
                .map_err(|e| err(format!("mounting /dev/shm: {e}")))?;
        }
        if !host_net {
            let ns = self.netns_path(&id);
            match &rec.spec.userns {
                Some(map) => {
                    let user = self.userns_path(&id);
                    self.driver
                        .create_userns(&user, &ns, map)
                        .map_err(|e| err(format!("creating user and network namespaces: {e}")))?;
                    rec.userns = Some(user);
                }
                None => self
                    .driver
                    .create_netns(&ns)
                    .map_err(|e| err(format!("creating network namespace: {e}")))?,
            }
            rec.netns = Some(ns);
        }
        rec.cgroup_dirs = self
            .driver
            .create_cgroup(&rec.cgroup)
            .map_err(|e| err(format!("cgroup {}: {e}", rec.cgroup)))?;
        let mut sysctls: Vec<(String, String)> = rec.spec.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(rt) = self.pod_runtime.get().filter(|_| !host_net) {
            for (k, v) in rt.net_sysctls(rec) {
                if !rec.spec.sysctls.contains_key(&k) {
                    sysctls.push((k, v));
                }
            }
        }
        // The infra process and the CNI plugins work on the same, already created network
        // namespace, so they run side by side (pod start waits for the slower one, not
        // both). Pod `net.*` sysctls are the exception: they are applied by the infra
        // process before the plugins run, as a pod that sets them expects.
        let net_sysctls = sysctls.iter().any(|(k, _)| k.starts_with("net."));
        let infra = self.driver.start_infra(InfraArgs {
            binary: &self.opts.infra_binary,
            userns: rec.userns.as_deref(),
            netns: rec.netns.as_deref(),
            uts: !host_net,
            hostname: &hostname,
            ipc: !host_ipc,
            pid: rec.spec.namespaces.pid == NsMode::Pod,
            sysctls,
            spawned: Box::new({
                let (dir, intent, driver) = (dir.clone(), rec.clone(), self.driver.clone());
                move |pid| super::intent::write_infra(&dir, &intent, pid, driver.started(pid).unwrap_or(0))
            }),
        });
        let intent = rec.clone();
        let infra = async {
            let pid = infra.await;
            if let Ok(pid) = &pid {
                let started = self.driver.started(*pid).unwrap_or(0);
                super::intent::write_infra(&dir, &intent, *pid, started);
            }
            pid
        };
        let net_req = rec.netns.clone().map(|ns| network_request(rec, &ns));
        let network = async {
            match &net_req {
                Some(req) => self.network.setup(req).await.map(Some),
                None => Ok(None),
            }
        };
        let (pid, net) = if net_sysctls {
            let pid = infra.await;
            (pid, network.await)
        } else {
            tokio::join!(infra, network)
        };
        // Recorded before any error is returned, so that `undo` stops what did start.
        if let Ok(pid) = &pid {
            rec.infra_pid = Some(*pid);
            rec.infra_start = self.driver.started(*pid).unwrap_or(0);
        }
        let pid = pid.map_err(&err)?;
        let net = net?;
        self.driver
            .add_to_cgroup(&rec.cgroup, pid)
            .map_err(|e| err(format!("moving infra into its cgroup: {e}")))?;
        if let Some(status) = net {
            rec.ips = status.ips.iter().map(|ip| ip.to_string()).collect();
            files::write(&dir.join("hosts"), &files::hosts(&hostname, &rec.ips))
                .map_err(|e| err(format!("hosts: {e}")))?;
        } else {
            let host = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            files::write(&dir.join("hosts"), &host).map_err(|e| err(format!("hosts: {e}")))?;
        }
        if let Some(rt) = self.pod_runtime.get() {
            rt.start(rec, &dir).await.map_err(&err)?;
        }
        Ok(())
    }

    /// Takes back everything `setup` may have done, best effort (used on failure).
    async fn undo(&self, rec: &SandboxRecord) {
        if let Err(e) = self.release(rec).await {
            tracing::warn!(sandbox = %rec.id, error = %e, "cleaning up a failed sandbox");
        }
        let _ = self.purge(rec);
    }

    /// Network down, infra stopped, netns and shm released. Idempotent.
    pub(super) async fn release(&self, rec: &SandboxRecord) -> Result<(), SandboxError> {
        let mut first_err = None;
        // The CNI DEL and the end of the pod's processes do not wait for each other: the
        // netns stays pinned until both are done, and the plugins work on it, not on them.
        let processes = async {
            if let Some(rt) = self.pod_runtime.get() {
                rt.stop(rec, &self.dir(&rec.id)).await;
            }
            if let Some(pid) = rec.infra_pid {
                self.driver.stop_infra(pid, rec.infra_start, self.opts.stop_grace).await;
            }
        };
        let network = async {
            match &rec.netns {
                Some(ns) => self.network.teardown(&network_request(rec, ns)).await,
                None => Ok(()),
            }
        };
        let ((), torn_down) = tokio::join!(processes, network);
        if let Err(e) = torn_down {
            first_err.get_or_insert(SandboxError::from(e));
        }
        if let Some(ns) = &rec.netns {
            if let Err(e) = self.driver.remove_netns(ns) {
                first_err.get_or_insert(setup_err(&rec.id)(format!("removing network namespace: {e}")));
            }
        }
        if let Some(user) = &rec.userns {
            if let Err(e) = self.driver.remove_netns(user) {
                first_err.get_or_insert(setup_err(&rec.id)(format!("removing user namespace: {e}")));
            }
        }
        let shm = self.dir(&rec.id).join("shm");
        if let Err(e) = self.driver.unmount(&shm) {
            first_err.get_or_insert(setup_err(&rec.id)(format!("unmounting /dev/shm: {e}")));
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Removes the sandbox's files and cgroup.
    pub(super) fn purge(&self, rec: &SandboxRecord) -> Result<(), SandboxError> {
        let dir = self.dir(&rec.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| setup_err(&rec.id)(format!("{}: {e}", dir.display())))?;
        }
        self.driver
            .remove_cgroup(&rec.cgroup_dirs, &rec.cgroup)
            .map_err(|e| setup_err(&rec.id)(format!("cgroup: {e}")))?;
        Ok(())
    }

    /// Stops a sandbox: its network is torn down and its infra process ended. Stopping a
    /// stopped or unknown sandbox succeeds (the CRI call is idempotent).
    pub async fn stop(&self, id: &str) -> Result<(), SandboxError> {
        let Ok(rec) = self.get(id) else { return Ok(()) };
        let _lock = self.locks.lock(&rec.id).await;
        let mut rec = self.get(&rec.id)?;
        if let (Some(h), SandboxState::Ready) = (self.hooks.get(), rec.state) {
            h.stop(&rec).await;
        }
        self.release(&rec).await?;
        rec.state = SandboxState::NotReady;
        rec.netns = None;
        self.save(&rec)?;
        if let Some(group) = super::hosts_group::group_of(&rec) {
            self.refresh_hosts_group(group);
        }
        Ok(())
    }

    /// Removes a sandbox and all its state. Removing an unknown sandbox succeeds.
    pub async fn remove(&self, id: &str) -> Result<(), SandboxError> {
        let Ok(rec) = self.get(id) else { return Ok(()) };
        let _lock = self.locks.lock(&rec.id).await;
        let Ok(rec) = self.get(&rec.id) else { return Ok(()) };
        // A stopped sandbox's network is down already: `stop` forgets the netns only once
        // its CNI DEL succeeded, so this runs the plugins again only when it did not.
        self.release(&rec).await?;
        self.purge(&rec)?;
        self.records.remove(&rec.id)?;
        if let Some(group) = super::hosts_group::group_of(&rec) {
            self.refresh_hosts_group(group);
        }
        Ok(())
    }

    /// Records pod-level resources (kubelet's `UpdatePodSandboxResources`).
    pub async fn update_resources(&self, id: &str, resources: serde_json::Value) -> Result<(), SandboxError> {
        let rec = self.get(id)?;
        let _lock = self.locks.lock(&rec.id).await;
        let mut rec = self.get(&rec.id)?;
        if let Some(h) = self.hooks.get() {
            h.update(&rec, &resources).await.map_err(setup_err(&rec.id))?;
        }
        rec.resources = Some(resources);
        self.save(&rec)
    }

    pub fn network(&self) -> &Arc<dyn PodNetwork> {
        &self.network
    }

    pub fn files_dir(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    /// The live state: a Ready sandbox whose infra process died is NotReady.
    fn refresh(&self, mut r: SandboxRecord) -> SandboxRecord {
        if !live(self.driver.as_ref(), &r) {
            r.state = SandboxState::NotReady;
        }
        r
    }
}

/// Whether a sandbox recorded Ready still is: its infra process runs.
fn live(driver: &dyn Driver, r: &SandboxRecord) -> bool {
    r.state != SandboxState::Ready || r.infra_pid.is_some_and(|p| driver.alive(p, r.infra_start))
}

fn network_request(rec: &SandboxRecord, netns: &std::path::Path) -> PodNetworkRequest {
    // Validated at run time; a record read back always parses.
    let bandwidth = super::bandwidth::from_annotations(&rec.spec.annotations).ok().flatten();
    PodNetworkRequest {
        sandbox_id: rec.id.clone(),
        netns_path: netns.to_path_buf(),
        pod_name: rec.spec.name.clone(),
        pod_namespace: rec.spec.namespace.clone(),
        pod_uid: rec.spec.uid.clone(),
        port_mappings: rec.spec.port_mappings.clone(),
        bandwidth,
        dns: None,
        cgroup_path: Some(rec.cgroup.clone()),
    }
}

/// A new random 64-hex-digit id.
pub fn new_id() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    hex::encode(bytes)
}

/// Publishes the lifecycle events of a sandbox record's move between states.
fn announcer(events: Arc<EventBus>, hooks: Arc<HookSlot<dyn PodHooks>>) -> Observer<SandboxRecord> {
    Box::new(move |_, old, new| {
        if let Some(h) = hooks.get() {
            h.changed(old, new);
        }
        let Some(rec) = new.or(old) else { return };
        for kind in events::sandbox_transition(old.map(|r| r.state), new.map(|r| r.state)) {
            events.publish(Event {
                kind,
                container_id: rec.id.clone(),
                sandbox_id: rec.id.clone(),
                at: if kind == EventKind::Created {
                    rec.created_at
                } else {
                    crate::clock::now_nanos()
                },
                sandbox: Some(rec.clone()),
                containers: None,
                oom_killed: false,
            });
        }
    })
}
