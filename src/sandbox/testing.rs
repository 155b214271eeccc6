//! Sandboxes for unit tests elsewhere in the domain: a store in a temporary directory, a
//! host that only keeps books, and a network that attaches nothing.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::driver::Driver;
use super::infra::InfraArgs;
use super::lifecycle::{Sandboxes, SandboxesOptions};
use crate::config::CgroupDriver;
use crate::events::{EventBus, EventKind};
use crate::network::{NetworkError, PodNetwork, PodNetworkRequest, PodNetworkStatus};
use crate::store::MetaStore;

/// A network with nothing behind it: every pod gets 10.0.0.2.
pub(crate) struct NoNetwork;

impl PodNetwork for NoNetwork {
    fn setup(&self, _req: &PodNetworkRequest) -> BoxFuture<'_, Result<PodNetworkStatus, NetworkError>> {
        Box::pin(async {
            Ok(PodNetworkStatus {
                interface: "eth0".into(),
                ips: vec!["10.0.0.2".parse().expect("ip")],
                gateway: None,
                raw_result: serde_json::Value::Null,
            })
        })
    }

    fn teardown(&self, _req: &PodNetworkRequest) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(async { Ok(()) })
    }

    fn check(&self, _req: &PodNetworkRequest) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(async { Ok(()) })
    }

    fn status(&self) -> Result<(), NetworkError> {
        Ok(())
    }

    fn update_pod_cidr(&self, _cidr: &str) {}
}

/// A host that only keeps books: what is mounted, pinned, made and running.
#[derive(Default)]
pub(crate) struct FakeHost {
    pub shm: Mutex<HashSet<PathBuf>>,
    pub netns: Mutex<HashSet<PathBuf>>,
    pub cgroups: Mutex<HashSet<String>>,
    /// Infra processes by pid: (start time, running).
    pub infra: Mutex<HashMap<u32, (u64, bool)>>,
    /// The next infra start fails with this message.
    pub fail_infra: Mutex<Option<String>>,
    /// The sysctls each infra start was given.
    pub infra_sysctls: Mutex<Vec<Vec<(String, String)>>>,
}

impl FakeHost {
    /// Infra processes still running.
    pub fn running(&self) -> usize {
        self.infra.lock().unwrap().values().filter(|(_, up)| *up).count()
    }

    /// Ends infra process `pid` as if it died.
    pub fn kill(&self, pid: u32) {
        if let Some(p) = self.infra.lock().unwrap().get_mut(&pid) {
            p.1 = false;
        }
    }

    /// Whether nothing is left: no mount, namespace, cgroup or running infra process.
    pub fn is_clean(&self) -> bool {
        self.shm.lock().unwrap().is_empty()
            && self.netns.lock().unwrap().is_empty()
            && self.cgroups.lock().unwrap().is_empty()
            && self.running() == 0
    }
}

impl Driver for FakeHost {
    fn mount_shm(&self, dir: &Path, _size: u64) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        self.shm.lock().unwrap().insert(dir.to_path_buf());
        Ok(())
    }

    fn unmount(&self, dir: &Path) -> io::Result<()> {
        self.shm.lock().unwrap().remove(dir);
        Ok(())
    }

    fn create_netns(&self, pin: &Path) -> io::Result<()> {
        // A pin on disk, as the start-up sweep looks for them.
        std::fs::create_dir_all(pin.parent().expect("pin parent"))?;
        std::fs::write(pin, b"")?;
        self.netns.lock().unwrap().insert(pin.to_path_buf());
        Ok(())
    }

    fn create_userns(&self, user_pin: &Path, net_pin: &Path, _map: &crate::sandbox::UserNsMap) -> io::Result<()> {
        self.create_netns(user_pin)?;
        self.create_netns(net_pin)
    }

    fn remove_netns(&self, pin: &Path) -> io::Result<()> {
        let _ = std::fs::remove_file(pin);
        self.netns.lock().unwrap().remove(pin);
        Ok(())
    }

    fn create_cgroup(&self, path: &str) -> io::Result<Vec<PathBuf>> {
        self.cgroups.lock().unwrap().insert(path.to_string());
        Ok(vec![Path::new("/fake-cgroup").join(path.trim_start_matches('/'))])
    }

    fn add_to_cgroup(&self, path: &str, _pid: u32) -> io::Result<()> {
        if self.cgroups.lock().unwrap().contains(path) {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("no cgroup {path}")))
        }
    }

    fn remove_cgroup(&self, made: &[PathBuf], path: &str) -> io::Result<()> {
        if !made.is_empty() {
            self.cgroups.lock().unwrap().remove(path);
        }
        Ok(())
    }

    fn cgroup_dirs(&self, path: &str) -> Vec<PathBuf> {
        if self.cgroups.lock().unwrap().contains(path) {
            vec![Path::new("/fake-cgroup").join(path.trim_start_matches('/'))]
        } else {
            Vec::new()
        }
    }

    fn start_infra<'a>(&'a self, args: InfraArgs<'a>) -> BoxFuture<'a, Result<u32, String>> {
        self.infra_sysctls.lock().unwrap().push(args.sysctls.clone());
        let result = match self.fail_infra.lock().unwrap().take() {
            Some(message) => Err(message),
            None => {
                static NEXT: AtomicU32 = AtomicU32::new(100_000);
                let pid = NEXT.fetch_add(1, Ordering::Relaxed);
                self.infra.lock().unwrap().insert(pid, (u64::from(pid) * 10, true));
                (args.spawned)(pid);
                Ok(pid)
            }
        };
        Box::pin(async move { result })
    }

    fn started(&self, pid: u32) -> Option<u64> {
        self.infra.lock().unwrap().get(&pid).map(|p| p.0)
    }

    fn alive(&self, pid: u32, started: u64) -> bool {
        self.infra.lock().unwrap().get(&pid) == Some(&(started, true))
    }

    fn stop_infra(&self, pid: u32, _started: u64, _grace: Duration) -> BoxFuture<'static, ()> {
        self.kill(pid);
        Box::pin(async {})
    }
}

impl Sandboxes {
    /// Sandboxes kept under `dir`, on `meta`, carried out by `host` with no network.
    pub(crate) fn for_tests(dir: &Path, meta: Arc<MetaStore>, host: Arc<FakeHost>, events: Arc<EventBus>) -> Sandboxes {
        let opts = SandboxesOptions {
            state_dir: dir.join("state"),
            infra_binary: "/nonexistent/berth-pause".into(),
            cgroup_driver: CgroupDriver::Cgroupfs,
            shm_size: 64 << 20,
            stop_grace: Duration::from_secs(1),
        };
        Sandboxes::with_driver(opts, meta, Arc::new(NoNetwork), host, events).expect("sandboxes")
    }
}

/// The orders objects are removed in by tests: as created, reversed, and shuffled.
pub(crate) const ORDERS: [&str; 3] = ["creation", "reverse", "random"];

/// Puts `ids` (in creation order) into `order`; a random order is new on every call.
pub(crate) fn reorder(ids: &mut [String], order: &str) {
    match order {
        "reverse" => ids.reverse(),
        "random" => {
            let seed = super::lifecycle::new_id();
            let bytes = seed.as_bytes();
            for i in (1..ids.len()).rev() {
                ids.swap(i, usize::from(bytes[i % bytes.len()]) % (i + 1));
            }
        }
        _ => {}
    }
}

/// The kinds of the events published so far, in order; each lifecycle test walks a whole
/// life, so the one it expects is [`WHOLE_LIFE`].
pub(crate) fn kinds(events: &mut tokio::sync::broadcast::Receiver<crate::events::Event>) -> Vec<EventKind> {
    std::iter::from_fn(|| events.try_recv().ok()).map(|e| e.kind).collect()
}

pub(crate) const WHOLE_LIFE: [EventKind; 4] = [
    EventKind::Created,
    EventKind::Started,
    EventKind::Stopped,
    EventKind::Deleted,
];
