//! Pod sandboxes: the namespaces a pod's containers share (a pinned network namespace and
//! Berth's own infra process holding UTS, IPC and optionally PID namespaces), the pod's
//! network from CNI, its resolv.conf, hosts, hostname and /dev/shm, and its cgroup.

mod bandwidth;
pub mod driver;
mod files;
pub mod hooks;
pub mod hosts_group;
mod hosts_refresh;
mod infra;
mod intent;
mod lifecycle;
#[cfg(test)]
mod lifecycle_tests;
mod orphans;
#[cfg(test)]
pub(crate) mod testing;
mod validate;

pub use lifecycle::{new_id, SandboxError, Sandboxes, SandboxesOptions};
pub use validate::{valid_name, SHM_SIZE_ANNOTATION};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::network::PortMapping;

/// Which namespace a pod or container uses, as the CRI `NamespaceMode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NsMode {
    #[default]
    Pod,
    Container,
    Node,
    Target,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NamespaceModes {
    pub network: NsMode,
    pub pid: NsMode,
    pub ipc: NsMode,
    pub target_id: String,
}

/// One range of IDs: `container_id..container_id+length` inside is
/// `host_id..host_id+length` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub length: u32,
}

impl IdMapping {
    /// The host ID of `id` inside, when it is mapped.
    pub fn host(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.container_id)?;
        (offset < self.length).then(|| self.host_id + offset)
    }

    /// The line `/proc/PID/uid_map` takes.
    pub fn map_line(&self) -> String {
        format!("{} {} {}\n", self.container_id, self.host_id, self.length)
    }
}

/// A pod's own user namespace (CRI `NamespaceMode_POD`, Kubernetes `hostUsers: false`):
/// one uid range and one gid range, container ID 0 mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNsMap {
    pub uids: IdMapping,
    pub gids: IdMapping,
}

impl UserNsMap {
    /// The host uid and gid of the pod's root.
    pub fn host_root(&self) -> (u32, u32) {
        (self.uids.host_id, self.gids.host_id)
    }
}

/// The user namespace a container asks for (it must be its pod's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum UserNsChoice {
    /// Not said: the pod's.
    #[default]
    Unset,
    Node,
    Pod(UserNsMap),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// What a `RunPodSandbox` asks for, in Berth's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SandboxSpec {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
    pub hostname: String,
    pub log_directory: String,
    pub dns: Option<Dns>,
    pub port_mappings: Vec<PortMapping>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub cgroup_parent: String,
    pub sysctls: BTreeMap<String, String>,
    pub namespaces: NamespaceModes,
    pub privileged: bool,
    pub runtime_handler: String,
    /// The pod's own user namespace; None: the node's.
    #[serde(default)]
    pub userns: Option<UserNsMap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    Ready,
    NotReady,
}

/// A sandbox as the metadata store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub spec: SandboxSpec,
    pub state: SandboxState,
    /// Unix nanoseconds.
    pub created_at: i64,
    /// The pinned network namespace (none with host networking, or once stopped).
    pub netns: Option<PathBuf>,
    /// The pinned user namespace of a pod with its own (it owns the network namespace).
    #[serde(default)]
    pub userns: Option<PathBuf>,
    pub ips: Vec<String>,
    /// The infra process, and its start time (from /proc) so a reused pid is not mistaken for it.
    pub infra_pid: Option<u32>,
    pub infra_start: u64,
    /// The sandbox's cgroup path (relative to the hierarchy roots) and the directories
    /// Berth created for it, removed with the sandbox.
    pub cgroup: String,
    pub cgroup_dirs: Vec<PathBuf>,
    /// Pod-level resources last given by `UpdatePodSandboxResources`, as JSON.
    pub resources: Option<serde_json::Value>,
}

impl SandboxRecord {
    /// `name_namespace_uid_attempt`: unique among live sandboxes (kubelet relies on it).
    pub fn reserved_name(spec: &SandboxSpec) -> String {
        format!("{}_{}_{}_{}", spec.name, spec.namespace, spec.uid, spec.attempt)
    }

    /// The pid whose namespaces containers join.
    pub fn infra(&self) -> Option<u32> {
        self.infra_pid
    }
}

/// A listing filter, in domain terms.
#[derive(Debug, Clone, Default)]
pub struct SandboxFilter {
    pub id_prefix: Option<String>,
    pub state: Option<SandboxState>,
    pub labels: BTreeMap<String, String>,
}

impl SandboxFilter {
    pub fn matches(&self, r: &SandboxRecord) -> bool {
        self.id_prefix.as_ref().is_none_or(|p| r.id.starts_with(p.as_str()))
            && self.state.is_none_or(|s| s == r.state)
            && self.labels.iter().all(|(k, v)| r.spec.labels.get(k) == Some(v))
    }
}

impl crate::store::Record for SandboxRecord {
    const TABLE: crate::store::Table = crate::store::Table::Sandboxes;

    fn id(&self) -> &str {
        &self.id
    }

    fn reservation(&self) -> String {
        SandboxRecord::reserved_name(&self.spec)
    }

    fn created_at(&self) -> i64 {
        self.created_at
    }
}
