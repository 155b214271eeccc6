//! Pod networking: the runtime-facing API ([`PodNetwork`]) and its CNI implementation.
//!
//! The types here are plain domain types; the CRI layer converts from and to protobuf.

pub mod cni;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use cni::{CniNetwork, CniOptions};

/// A boxed, sendable future, as returned by [`PodNetwork`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything a network plugin needs to know about one pod sandbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodNetworkRequest {
    /// Sandbox id, passed as `CNI_CONTAINERID`.
    pub sandbox_id: String,
    /// Pinned network namespace file, passed as `CNI_NETNS`.
    pub netns_path: PathBuf,
    /// Pod name (`K8S_POD_NAME`).
    pub pod_name: String,
    /// Pod namespace (`K8S_POD_NAMESPACE`).
    pub pod_namespace: String,
    /// Pod UID (`K8S_POD_UID`).
    pub pod_uid: String,
    /// Host port mappings (`portMappings` capability); entries with `host_port == 0` are ignored.
    pub port_mappings: Vec<PortMapping>,
    /// Traffic shaping (`bandwidth` capability).
    pub bandwidth: Option<Bandwidth>,
    /// Pod DNS settings (`dns` capability).
    pub dns: Option<DnsCapability>,
    /// Pod cgroup parent (`cgroupPath` capability).
    pub cgroup_path: Option<String>,
}

/// One host port forwarded into the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port inside the pod.
    pub container_port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Host address to bind to; `None` (or empty) means all addresses.
    pub host_ip: Option<String>,
}

/// Transport protocol of a [`PortMapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// Traffic shaping limits in bits per second (rates) and bits (bursts); 0 means unlimited.
///
/// When a rate is set but its burst is 0, the burst sent to the plugin is `i32::MAX`, as
/// containerd does (Kubernetes has no burst annotation and the bandwidth plugin requires one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bandwidth {
    /// Ingress rate, bits/s.
    pub ingress_rate: u64,
    /// Ingress burst, bits.
    pub ingress_burst: u64,
    /// Egress rate, bits/s.
    pub egress_rate: u64,
    /// Egress burst, bits.
    pub egress_burst: u64,
}

/// Pod DNS settings for plugins that declare the `dns` capability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DnsCapability {
    /// Name server addresses.
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// resolv.conf options.
    pub options: Vec<String>,
}

/// What a successful network setup produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PodNetworkStatus {
    /// Interface name inside the pod (`eth0`).
    pub interface: String,
    /// Pod addresses, IPv4 first, then IPv6.
    pub ips: Vec<IpAddr>,
    /// Gateway of the first address, when the plugin reported one.
    pub gateway: Option<IpAddr>,
    /// The final CNI result, as returned by the last plugin.
    pub raw_result: serde_json::Value,
}

/// Errors of pod network operations.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No usable network configuration (yet); the reason is meant for humans.
    #[error("network not ready: {0}")]
    NotReady(String),
    /// A network configuration file is invalid.
    #[error("invalid network config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A plugin binary is in none of the plugin directories.
    #[error("CNI plugin {plugin:?} not found in {searched}")]
    PluginNotFound {
        /// Plugin type.
        plugin: String,
        /// The directories searched, joined by ':'.
        searched: String,
    },
    /// A plugin failed; `message` and `details` are the plugin's own (`msg`, `details`).
    #[error("CNI plugin {plugin} {command} failed{}: {message}{}", fmt_code(*.code), fmt_details(.details))]
    Plugin {
        /// Plugin type.
        plugin: String,
        /// `ADD`, `DEL` or `CHECK`.
        command: &'static str,
        /// The spec error code, when the plugin printed one.
        code: Option<u32>,
        /// The plugin's message (or its stderr / exit status when it printed no error JSON).
        message: String,
        /// The plugin's details, if any.
        details: String,
    },
    /// A plugin ran longer than the configured timeout and was killed.
    #[error("CNI plugin {plugin} {command} timed out after {secs}s")]
    Timeout {
        /// Plugin type.
        plugin: String,
        /// `ADD`, `DEL` or `CHECK`.
        command: &'static str,
        /// The timeout, in seconds.
        secs: u64,
    },
    /// A plugin succeeded but printed something that is not a CNI result.
    #[error("CNI plugin {plugin} returned an invalid result: {message}")]
    InvalidResult {
        /// Plugin type.
        plugin: String,
        /// What is wrong with it.
        message: String,
    },
    /// CHECK needs the cached ADD result, and there is none.
    #[error("no cached CNI result for sandbox {sandbox_id} on network {network}")]
    MissingCache {
        /// Network name.
        network: String,
        /// Sandbox id.
        sandbox_id: String,
    },
    /// The request itself is unusable (e.g. an empty sandbox id).
    #[error("invalid network request: {0}")]
    InvalidRequest(String),
    /// An I/O error outside of plugins (cache files, spawning).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn fmt_code(code: Option<u32>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

fn fmt_details(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!("; {details}")
    }
}

/// A pod network implementation (CNI in production, fakes in tests).
///
/// The returned futures borrow only `self`: implementations copy what they need from `req`.
pub trait PodNetwork: Send + Sync {
    /// Attaches the sandbox to the network and reports its addresses.
    fn setup(&self, req: &PodNetworkRequest) -> BoxFuture<'_, Result<PodNetworkStatus, NetworkError>>;

    /// Detaches the sandbox. Idempotent: a gone netns or an already removed network is not an error.
    fn teardown(&self, req: &PodNetworkRequest) -> BoxFuture<'_, Result<(), NetworkError>>;

    /// Verifies the sandbox network (CNI CHECK); `Ok` where the config version has no CHECK.
    fn check(&self, req: &PodNetworkRequest) -> BoxFuture<'_, Result<(), NetworkError>>;

    /// `Err(NotReady)` with a human-readable reason while no valid config is usable.
    fn status(&self) -> Result<(), NetworkError>;

    /// Sets the node's pod CIDR (from `UpdateRuntimeConfig`), substituted for `{{pod_cidr}}`.
    fn update_pod_cidr(&self, cidr: &str);
}
