//! Containers in Berth's own terms: what `CreateContainer` asks for (translated from the
//! CRI `ContainerConfig` at the edge) and what the pod sandbox provides to it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sandbox::{NsMode, UserNsChoice, UserNsMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Propagation {
    #[default]
    Private,
    HostToContainer,
    Bidirectional,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MountSpec {
    pub container_path: String,
    pub host_path: String,
    pub readonly: bool,
    pub selinux_relabel: bool,
    pub propagation: Propagation,
    pub recursive_read_only: bool,
    /// An image volume: this image's filesystem is mounted (read-only) instead of `host_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageVolume>,
}

/// The image an image volume mounts (KEP-4639).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImageVolume {
    /// The image as the request named it (kubelet sends the id it pulled).
    pub image: String,
    /// The image as the pod's author wrote it.
    #[serde(default)]
    pub user_specified: String,
    /// A directory or file of the image mounted instead of its root (relative, no `..`).
    #[serde(default)]
    pub sub_path: String,
    /// The image's id, once resolved at create.
    #[serde(default)]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeviceSpec {
    pub container_path: String,
    pub host_path: String,
    /// Cgroup permissions, some of `r`, `w`, `m`.
    pub permissions: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ProfileKind {
    #[default]
    RuntimeDefault,
    Unconfined,
    Localhost,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Profile {
    pub kind: ProfileKind,
    /// For `Localhost`: the profile file (seccomp) or name (AppArmor).
    pub localhost_ref: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Resources {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_in_bytes: i64,
    pub oom_score_adj: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// Page size (e.g. `2MB`) to limit in bytes.
    pub hugepage_limits: Vec<(String, u64)>,
    /// cgroup v2 files to write (`memory.high` = `...`).
    pub unified: BTreeMap<String, String>,
    pub memory_swap_limit_in_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SecuritySpec {
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
    pub add_ambient_capabilities: Vec<String>,
    pub privileged: bool,
    /// PID namespace of the container: POD (shared with the sandbox), CONTAINER (own), NODE, or TARGET.
    pub pid_mode: NsMode,
    pub target_id: String,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_username: String,
    pub readonly_rootfs: bool,
    pub supplemental_groups: Vec<i64>,
    /// true: Strict policy (image groups are not merged in).
    pub supplemental_groups_strict: bool,
    pub no_new_privs: bool,
    /// `None`: Berth's defaults; `Some(vec![])`: none (privileged / unmasked).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub seccomp: Option<Profile>,
    pub apparmor: Option<Profile>,
    /// The user namespace the request names (it must be the pod's).
    #[serde(default)]
    pub userns: UserNsChoice,
}

/// What `CreateContainer` asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub attempt: u32,
    /// The image as the request named it (kubelet sends the image id), and the resolved
    /// image id.
    pub image: String,
    pub image_id: String,
    /// `ImageSpec.user_specified_image`: the reference the user wrote in the pod (kubelet
    /// sends it beside the id); empty when the client did not say.
    #[serde(default)]
    pub user_image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<MountSpec>,
    pub devices: Vec<DeviceSpec>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Relative to the sandbox's log directory.
    pub log_path: String,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub resources: Resources,
    pub security: SecuritySpec,
    pub cdi_devices: Vec<String>,
    /// Signal name from the request (e.g. `SIGTERM`); empty: the image's, else SIGTERM.
    pub stop_signal: String,
}

/// A pod's own user namespace, as its containers join it: pinned at `pin`, mapped by `map`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodUserNs {
    pub pin: PathBuf,
    pub map: UserNsMap,
}

/// What the pod sandbox gives a container to join and mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SandboxContext {
    pub sandbox_id: String,
    /// The infra process whose IPC/UTS/PID namespaces the container joins.
    pub infra_pid: u32,
    /// The pod's pinned network namespace; `None` for host networking.
    pub netns: Option<PathBuf>,
    pub host_network: bool,
    pub host_ipc: bool,
    /// The pod's PID mode (POD: containers share the infra's PID namespace).
    pub pid_mode: NsMode,
    pub hostname: String,
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
    pub hostname_file: PathBuf,
    /// The pod's /dev/shm tmpfs (none with host IPC: the host's /dev/shm is used).
    pub shm: Option<PathBuf>,
    pub sysctls: BTreeMap<String, String>,
    pub privileged: bool,
    /// The pod's own user namespace; None: the node's.
    #[serde(default)]
    pub userns: Option<PodUserNs>,
}

/// Where a container is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ContainerState {
    #[default]
    Created,
    Running,
    Exited,
    Unknown,
}

/// A container as the metadata store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub spec: ContainerSpec,
    pub image: ImageRef,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub pid: u32,
    /// Absolute log path ("" when the pod has no log directory).
    pub log_path: String,
    pub cgroup: String,
    pub stop_signal: i32,
    /// The user the container's process runs as, for exec.
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub env: Vec<String>,
    pub cwd: String,
    /// The sandbox's runtime handler ("" = default).
    #[serde(default)]
    pub runtime_handler: String,
    /// Stopped by a request (StopContainer, RemoveContainer, a pod stop), not by its own
    /// exit: a restart policy other than `always` leaves it stopped.
    #[serde(default)]
    pub stop_requested: bool,
}

/// The image a container was made from, as recorded at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImageRef {
    /// The image id (sha256 of its config).
    pub id: String,
    /// A name of it: the first repo digest, else the first tag.
    pub name: String,
    /// Its first repo tag when the container was made ("" if none).
    #[serde(default)]
    pub tag: String,
}

/// A listing filter.
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    pub id_prefix: Option<String>,
    pub state: Option<ContainerState>,
    pub sandbox_id: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl ContainerFilter {
    pub fn matches(&self, rec: &ContainerRecord) -> bool {
        self.id_prefix.as_ref().is_none_or(|p| rec.id.starts_with(p.as_str()))
            && self
                .sandbox_id
                .as_ref()
                .is_none_or(|s| rec.sandbox_id.starts_with(s.as_str()))
            && self.state.is_none_or(|s| s == rec.state)
            && self.labels.iter().all(|(k, v)| rec.spec.labels.get(k) == Some(v))
    }
}

impl crate::store::Record for ContainerRecord {
    const TABLE: crate::store::Table = crate::store::Table::Containers;

    fn id(&self) -> &str {
        &self.id
    }

    /// `name_sandbox_attempt`: unique among live containers (kubelet relies on it).
    fn reservation(&self) -> String {
        reserved_name(&self.sandbox_id, &self.spec)
    }

    fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// The name a container of `spec` holds in sandbox `sandbox_id`.
pub fn reserved_name(sandbox_id: &str, spec: &ContainerSpec) -> String {
    format!("{}_{}_{}", spec.name, sandbox_id, spec.attempt)
}
