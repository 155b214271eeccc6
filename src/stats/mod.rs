//! Resource figures of containers and pods, as kubelet's CRI stats provider reads them:
//! CPU and memory from the cgroup (v1 or v2, either driver), processes, the writable
//! layer's size (cached walks), and the pod's network counters from its network namespace.

pub mod cgroupfs;
pub mod detail;
pub mod disk;
pub mod gvisor;
pub mod netdev;
pub mod psi;
pub mod query;
pub mod rate;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cgroup::{self, Hierarchy};
use crate::config::CgroupDriver;
use crate::container::lifecycle::{ContainerRecord, ContainerState};
use crate::sandbox::{NsMode, SandboxRecord, SandboxState};

/// CPU, memory and process figures of one cgroup (or a sum of several) at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Unix nanoseconds.
    pub timestamp: i64,
    pub cpu_usage_ns: Option<u64>,
    /// Average since the previous sample of the same object.
    pub cpu_nano_cores: Option<u64>,
    pub memory: Option<cgroupfs::Memory>,
    pub processes: Option<u64>,
    /// Pressure stall figures; cgroup v2 only (None on v1, or for a pod summed from its parts).
    pub psi: Option<psi::Psi>,
}

#[derive(Debug, Clone)]
pub struct ContainerSample {
    pub record: ContainerRecord,
    pub usage: Sample,
    pub writable: Option<disk::Usage>,
    /// Only when asked for (metrics).
    pub detail: Option<detail::Detail>,
}

#[derive(Debug, Clone)]
pub struct PodSample {
    pub record: SandboxRecord,
    pub usage: Sample,
    /// None with host networking or once the pod's network namespace is gone.
    pub network: Option<Vec<netdev::Interface>>,
    pub containers: Vec<ContainerSample>,
    /// Of the pod-level cgroup, only when asked for (metrics) and kubelet made one.
    pub detail: Option<detail::Detail>,
}

/// Reads the figures; remembers earlier CPU samples (for rates) and layer sizes (for speed).
#[derive(Debug)]
pub struct Collector {
    cgroups: Option<Hierarchy>,
    /// Containers of gVisor handlers are read from their sandbox, not their cgroup.
    gvisor: gvisor::Runsc,
    driver: CgroupDriver,
    cpu: rate::CpuRates,
    disk: disk::UsageCache,
}

impl Collector {
    pub fn new(driver: CgroupDriver) -> Collector {
        Collector {
            cgroups: Hierarchy::detect().ok(),
            gvisor: gvisor::Runsc::default(),
            driver,
            cpu: rate::CpuRates::default(),
            disk: disk::UsageCache::default(),
        }
    }

    /// Containers of the gVisor handlers in `runsc` read from their sandbox.
    pub fn with_gvisor(mut self, runsc: gvisor::Runsc) -> Collector {
        self.gvisor = runsc;
        self
    }

    fn read_detail(&self, path: &str) -> Option<detail::Detail> {
        let h = self.cgroups.as_ref()?;
        let dirs = cgroup::leaf_dirs(h, path);
        if !dirs.iter().any(|d| d.exists()) {
            return None;
        }
        Some(if h.is_v2() {
            detail::read_v2(dirs.first()?)
        } else {
            detail::read_v1(&dirs)
        })
    }

    fn read_psi(&self, path: &str) -> Option<psi::Psi> {
        let h = self.cgroups.as_ref().filter(|h| h.is_v2())?;
        psi::read(cgroup::leaf_dirs(h, path).first()?)
    }

    fn read_cgroup(&self, path: &str) -> Option<cgroupfs::CgroupStats> {
        let h = self.cgroups.as_ref()?;
        let dirs = cgroup::leaf_dirs(h, path);
        let read = if h.is_v2() {
            cgroupfs::read_v2(dirs.first()?)
        } else {
            cgroupfs::read_v1(&dirs)
        };
        read.map_err(|e| tracing::debug!(cgroup = path, error = %e, "reading cgroup stats"))
            .ok()
    }

    fn sample(&self, key: &str, stats: Option<cgroupfs::CgroupStats>) -> Sample {
        let timestamp = crate::clock::now_nanos();
        let Some(stats) = stats else {
            return Sample {
                timestamp,
                ..Sample::default()
            };
        };
        Sample {
            timestamp,
            cpu_usage_ns: stats.cpu_usage_ns,
            cpu_nano_cores: stats.cpu_usage_ns.and_then(|u| self.cpu.observe(key, timestamp, u)),
            memory: stats.memory,
            processes: stats.pids,
            psi: None,
        }
    }

    /// The size of one writable layer (cached).
    pub fn writable_usage(&self, upper: &Path) -> std::io::Result<disk::Usage> {
        self.disk.get(upper)
    }

    /// A container's figures; one that is not running has only its writable layer.
    pub fn container(&self, record: ContainerRecord, upper: &Path, with_detail: bool) -> ContainerSample {
        let live = matches!(record.state, ContainerState::Running | ContainerState::Created);
        let path = cgroup::runtime_path(&record.cgroup).ok().filter(|_| live);
        let stats = if live && self.gvisor.handles(&record.runtime_handler) {
            self.gvisor.read(&record.runtime_handler, &record.id)
        } else {
            path.as_deref().and_then(|p| self.read_cgroup(p))
        };
        let detail = path
            .as_deref()
            .filter(|_| with_detail)
            .and_then(|p| self.read_detail(p));
        let mut usage = self.sample(&record.id, stats);
        usage.psi = path.as_deref().and_then(|p| self.read_psi(p));
        let writable = self
            .disk
            .get(upper)
            .map_err(|e| tracing::debug!(container = %record.id, error = %e, "writable layer usage"))
            .ok();
        ContainerSample {
            record,
            usage,
            writable,
            detail,
        }
    }

    /// A pod's figures: its pod-level cgroup when kubelet gave it one, else the sum of the
    /// infra process's and the containers' cgroups.
    pub fn pod(&self, record: SandboxRecord, containers: Vec<ContainerSample>, with_detail: bool) -> PodSample {
        let pod_path = cgroup::pod_path(self.driver, &record.spec.cgroup_parent);
        let detail = pod_path
            .as_deref()
            .filter(|_| with_detail)
            .and_then(|p| self.read_detail(p));
        let psi = pod_path.as_deref().and_then(|p| self.read_psi(p));
        let stats = match pod_path {
            Some(path) => self.read_cgroup(&path),
            None => {
                let infra = (record.state == SandboxState::Ready)
                    .then(|| self.read_cgroup(&record.cgroup))
                    .flatten();
                sum(infra, containers.iter().map(|c| &c.usage))
            }
        };
        let mut usage = self.sample(&format!("pod/{}", record.id), stats);
        usage.psi = psi;
        let network = match (record.state, record.spec.namespaces.network, record.infra_pid) {
            (SandboxState::Ready, NsMode::Pod, Some(pid)) => netdev::read(pid)
                .map_err(|e| tracing::debug!(sandbox = %record.id, error = %e, "network counters"))
                .ok(),
            _ => None,
        };
        PodSample {
            record,
            usage,
            network,
            containers,
            detail,
        }
    }

    /// Forgets what it remembers of objects that no longer exist: `containers` are the ids
    /// and writable layers of every container, `sandboxes` every sandbox id.
    pub fn retain(&self, containers: &[(String, PathBuf)], sandboxes: &[String]) {
        let live: HashSet<String> = containers
            .iter()
            .map(|(id, _)| id.clone())
            .chain(sandboxes.iter().map(|s| format!("pod/{s}")))
            .collect();
        self.cpu.retain(&live);
        let layers: HashSet<PathBuf> = containers.iter().map(|(_, p)| p.clone()).collect();
        self.disk.retain(&layers);
    }
}

/// The sum of the infra cgroup's figures and the containers' samples (None: nothing read).
fn sum<'a>(
    infra: Option<cgroupfs::CgroupStats>,
    samples: impl Iterator<Item = &'a Sample>,
) -> Option<cgroupfs::CgroupStats> {
    let mut total = infra;
    for s in samples {
        if s.cpu_usage_ns.is_none() && s.memory.is_none() && s.processes.is_none() {
            continue;
        }
        let t = total.get_or_insert_with(Default::default);
        t.cpu_usage_ns = add(t.cpu_usage_ns, s.cpu_usage_ns);
        t.pids = add(t.pids, s.processes);
        if let Some(m) = &s.memory {
            let acc = t.memory.get_or_insert_with(Default::default);
            acc.usage_bytes += m.usage_bytes;
            acc.working_set_bytes += m.working_set_bytes;
            acc.rss_bytes += m.rss_bytes;
            acc.cache_bytes += m.cache_bytes;
            acc.page_faults += m.page_faults;
            acc.major_page_faults += m.major_page_faults;
        }
    }
    if let Some(m) = total.as_mut().and_then(|t| t.memory.as_mut()) {
        // Limits of separate cgroups do not add up to a pod limit.
        m.limit_bytes = None;
        m.available_bytes = None;
    }
    total
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// A temporary directory for the readers' tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testdir {
    use std::path::{Path, PathBuf};

    /// Removed on drop.
    pub struct TestDir(tempfile::TempDir);

    impl TestDir {
        pub fn new() -> TestDir {
            TestDir(tempfile::tempdir().unwrap())
        }

        pub fn path(&self) -> &Path {
            self.0.path()
        }

        /// Creates `name` (and its parents) inside.
        pub fn sub(&self, name: &str) -> PathBuf {
            let path = self.0.path().join(name);
            std::fs::create_dir_all(&path).unwrap();
            path
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sums_what_was_read() {
        let infra = cgroupfs::CgroupStats {
            cpu_usage_ns: Some(10),
            memory: Some(cgroupfs::Memory {
                usage_bytes: 100,
                working_set_bytes: 50,
                limit_bytes: Some(1000),
                available_bytes: Some(950),
                ..Default::default()
            }),
            pids: Some(1),
        };
        let c = Sample {
            cpu_usage_ns: Some(5),
            memory: Some(cgroupfs::Memory {
                usage_bytes: 10,
                working_set_bytes: 7,
                ..Default::default()
            }),
            processes: Some(2),
            ..Default::default()
        };
        let empty = Sample::default();
        let total = sum(Some(infra), [&c, &empty].into_iter()).unwrap();
        assert_eq!(total.cpu_usage_ns, Some(15));
        assert_eq!(total.pids, Some(3));
        let m = total.memory.unwrap();
        assert_eq!((m.usage_bytes, m.working_set_bytes, m.limit_bytes), (110, 57, None));
        assert!(sum(None, [&empty].into_iter()).is_none());
    }
}
