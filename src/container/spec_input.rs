//! What spec generation works from and fails with, shared by `spec` and the modules that
//! build its parts (`mounts`, `resources`, `security`, `user`): the request as one input, the
//! error type, and the host facts detected once per container.

use std::path::{Path, PathBuf};

use super::model::{ContainerSpec, SandboxContext};

/// Soft and hard `RLIMIT_NOFILE` of container processes (containerd's default), unless the
/// runtime's own hard limit is lower.
pub const DEFAULT_NOFILE: u64 = 1_048_576;

/// Highest capability number Berth knows by name (`security::CAPS`).
pub(crate) const LAST_KNOWN_CAP: u32 = 40;

/// The image's run defaults, as stored by Berth (fields of the OCI image config `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub user: Option<String>,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
}

/// Everything [`generate`](super::spec::generate) needs to produce one container's OCI spec.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub container: &'a ContainerSpec,
    pub image: &'a ImageDefaults,
    pub sandbox: &'a SandboxContext,
    /// Absolute path of the container's root filesystem (an overlay mount point already prepared).
    pub rootfs: &'a Path,
    /// cgroupsPath for the OCI spec (cgroupfs style `/kubepods/pod1/<id>` or systemd "slice:prefix:name").
    pub cgroups_path: &'a str,
    /// Where image VOLUMEs get their (empty) host directories: one subdir per volume.
    pub volumes_dir: &'a Path,
    /// Highest oom_score_adj this process may set: the container's `oomScoreAdj` is raised to at
    /// least this (the caller passes its own `/proc/self/oom_score_adj`, as lowering it needs
    /// `CAP_SYS_RESOURCE`).
    pub min_oom_score_adj: i64,
    /// The handler's runtime knows capabilities only up to this number (`None`: all the
    /// kernel knows); "all capabilities" stops there.
    pub runtime_last_cap: Option<u32>,
}

/// Why a spec could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The request is inconsistent or names something unknown (CRI `InvalidArgument`); the
    /// message names the offending field.
    #[error("invalid container config: {0}")]
    Invalid(String),
    /// Something the request refers to does not exist (CRI `NotFound`).
    #[error("not found: {0}")]
    NotFound(String),
    /// Reading or preparing a host path failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SpecError {
    /// An [`SpecError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps an `oci-spec` builder failure (should not happen: our builders set valid fields).
    pub(crate) fn build(what: &str, err: oci_spec::OciSpecError) -> Self {
        Self::Invalid(format!("{what}: {err}"))
    }
}

/// Facts about the host that change the spec; detected once per [`generate`](super::spec::generate) call and passed
/// explicitly so tests can pin them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Host {
    /// The unified cgroup v2 hierarchy is mounted at /sys/fs/cgroup.
    pub cgroup_v2: bool,
    /// Optional controllers the cgroup hierarchies in use offer.
    pub controllers: Controllers,
    /// Highest capability number the kernel knows (`/proc/sys/kernel/cap_last_cap`).
    pub cap_last_cap: u32,
    /// This process's hard `RLIMIT_NOFILE` (`None`: unlimited or unknown). Raising a limit above
    /// it needs `CAP_SYS_RESOURCE`, which Berth may lack, and runc then fails to start.
    pub nofile_hard: Option<u64>,
    /// This process's effective capabilities (`CapEff`, a bit mask; `None`: unknown). A
    /// container cannot be given capabilities its runtime lacks (runc's capset fails).
    pub current_caps: Option<u64>,
}

impl Host {
    pub(crate) fn detect() -> Self {
        let cap_last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(LAST_KNOWN_CAP);
        let nofile_hard = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| {
            let line = l.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(4)?.parse().ok()
        });
        let current_caps = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        });
        Self {
            cgroup_v2: crate::cgroup::unified(),
            controllers: Controllers::detect(),
            cap_last_cap,
            nofile_hard,
            current_caps,
        }
    }

    /// `RLIMIT_NOFILE` of container processes: [`DEFAULT_NOFILE`], lowered to what this process
    /// may grant.
    pub(crate) fn nofile(&self) -> u64 {
        self.nofile_hard.map_or(DEFAULT_NOFILE, |h| h.min(DEFAULT_NOFILE))
    }
}

/// Optional cgroup controllers (and controller features) the host's hierarchies offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Controllers {
    /// The hugetlb controller.
    pub hugetlb: bool,
    /// Swap accounting in the memory controller (`memory.memsw.*` on v1, `memory.swap.max`
    /// on v2).
    pub swap: bool,
}

impl Controllers {
    /// Everything present (tests; a host that cannot be told).
    #[cfg(test)]
    pub const ALL: Controllers = Controllers {
        hugetlb: true,
        swap: true,
    };

    pub(crate) fn detect() -> Controllers {
        Controllers {
            hugetlb: crate::cgroup::has_controller("hugetlb"),
            swap: crate::cgroup::has_swap_accounting(),
        }
    }
}
