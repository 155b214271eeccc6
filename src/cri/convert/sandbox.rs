//! Pod sandboxes: `PodSandboxConfig` as the domain spec, records as `PodSandbox` and
//! `PodSandboxStatus`, and the listing filter.

use std::path::{Component, Path};

use berth_proto as pb;

use super::ns_mode;
use crate::container::validate::shown as truncate;
use crate::network::{PortMapping, Protocol};
use crate::sandbox::{
    Dns, NamespaceModes, NsMode, SandboxFilter, SandboxRecord, SandboxSpec, SandboxState, UserNsChoice,
};

fn pb_ns_mode(mode: NsMode) -> i32 {
    match mode {
        NsMode::Pod => pb::NamespaceMode::Pod as i32,
        NsMode::Container => pb::NamespaceMode::Container as i32,
        NsMode::Node => pb::NamespaceMode::Node as i32,
        NsMode::Target => pb::NamespaceMode::Target as i32,
    }
}

/// `PodSandboxConfig` → the domain spec, checking what the wire format cannot.
pub fn sandbox_spec(c: &pb::PodSandboxConfig, runtime_handler: &str) -> Result<SandboxSpec, crate::error::Error> {
    use crate::error::Error;
    let meta = c
        .metadata
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("sandbox config metadata is required".into()))?;
    let dir = Path::new(&c.log_directory);
    if !c.log_directory.is_empty()
        && (!dir.is_absolute()
            || c.log_directory.len() > 4096
            || c.log_directory.contains('\0')
            || dir.components().any(|p| p == Component::ParentDir))
    {
        return Err(Error::InvalidArgument(format!(
            "log_directory {:?} must be an absolute path without '..'",
            truncate(&c.log_directory)
        )));
    }
    if let Some(key) = c.labels.keys().chain(c.annotations.keys()).find(|k| k.len() > 1024) {
        return Err(Error::InvalidArgument(format!(
            "label or annotation key {:?}... is longer than 1024 bytes",
            truncate(key)
        )));
    }
    let linux = c.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let ns = sc.namespace_options.clone().unwrap_or_default();
    let userns = match super::user_namespace(ns.userns_options.as_ref())? {
        UserNsChoice::Pod(map) => Some(map),
        UserNsChoice::Node | UserNsChoice::Unset => None,
    };
    if userns.is_some() {
        for (mode, what) in [(ns.network, "network"), (ns.pid, "PID"), (ns.ipc, "IPC")] {
            if ns_mode(mode)? == NsMode::Node {
                return Err(Error::InvalidArgument(format!(
                    "a pod in its own user namespace cannot use the node's {what} namespace"
                )));
            }
        }
    }
    let mut port_mappings = Vec::new();
    for pm in &c.port_mappings {
        let port = |p: i32, what: &str| {
            u16::try_from(p).map_err(|_| Error::InvalidArgument(format!("port mapping {what} {p} is out of range")))
        };
        let protocol = match pb::Protocol::try_from(pm.protocol) {
            Ok(pb::Protocol::Tcp) => Protocol::Tcp,
            Ok(pb::Protocol::Udp) => Protocol::Udp,
            Ok(pb::Protocol::Sctp) => Protocol::Sctp,
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "unknown port mapping protocol {}",
                    pm.protocol
                )))
            }
        };
        port_mappings.push(PortMapping {
            host_port: port(pm.host_port, "host port")?,
            container_port: port(pm.container_port, "container port")?,
            protocol,
            host_ip: Some(pm.host_ip.clone()).filter(|s| !s.is_empty()),
        });
    }
    Ok(SandboxSpec {
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        namespace: meta.namespace.clone(),
        attempt: meta.attempt,
        hostname: c.hostname.clone(),
        log_directory: c.log_directory.clone(),
        dns: c.dns_config.as_ref().map(|d| Dns {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        }),
        port_mappings,
        labels: c.labels.clone().into_iter().collect(),
        annotations: c.annotations.clone().into_iter().collect(),
        cgroup_parent: linux.cgroup_parent.clone(),
        sysctls: linux.sysctls.clone().into_iter().collect(),
        namespaces: NamespaceModes {
            network: ns_mode(ns.network)?,
            pid: ns_mode(ns.pid)?,
            ipc: ns_mode(ns.ipc)?,
            target_id: ns.target_id.clone(),
        },
        privileged: sc.privileged,
        runtime_handler: runtime_handler.to_string(),
        userns,
    })
}

pub(crate) fn sandbox_metadata(s: &SandboxSpec) -> pb::PodSandboxMetadata {
    pb::PodSandboxMetadata {
        name: s.name.clone(),
        uid: s.uid.clone(),
        namespace: s.namespace.clone(),
        attempt: s.attempt,
    }
}

fn sandbox_state(s: SandboxState) -> i32 {
    match s {
        SandboxState::Ready => pb::PodSandboxState::SandboxReady as i32,
        SandboxState::NotReady => pb::PodSandboxState::SandboxNotready as i32,
    }
}

pub fn sandbox(r: &SandboxRecord) -> pb::PodSandbox {
    pb::PodSandbox {
        id: r.id.clone(),
        metadata: Some(sandbox_metadata(&r.spec)),
        state: sandbox_state(r.state),
        created_at: r.created_at,
        labels: r.spec.labels.clone().into_iter().collect(),
        annotations: r.spec.annotations.clone().into_iter().collect(),
        runtime_handler: r.spec.runtime_handler.clone(),
    }
}

pub fn sandbox_status(r: &SandboxRecord) -> pb::PodSandboxStatus {
    let ns = &r.spec.namespaces;
    pb::PodSandboxStatus {
        id: r.id.clone(),
        metadata: Some(sandbox_metadata(&r.spec)),
        state: sandbox_state(r.state),
        created_at: r.created_at,
        network: Some(pb::PodSandboxNetworkStatus {
            ip: r.ips.first().cloned().unwrap_or_default(),
            additional_ips: r.ips.iter().skip(1).map(|ip| pb::PodIp { ip: ip.clone() }).collect(),
        }),
        linux: Some(pb::LinuxPodSandboxStatus {
            namespaces: Some(pb::Namespace {
                options: Some(pb::NamespaceOption {
                    network: pb_ns_mode(ns.network),
                    pid: pb_ns_mode(ns.pid),
                    ipc: pb_ns_mode(ns.ipc),
                    target_id: ns.target_id.clone(),
                    userns_options: Some(super::pb_user_namespace(r.spec.userns.as_ref())),
                }),
            }),
        }),
        labels: r.spec.labels.clone().into_iter().collect(),
        annotations: r.spec.annotations.clone().into_iter().collect(),
        runtime_handler: r.spec.runtime_handler.clone(),
    }
}

pub fn sandbox_filter(f: Option<&pb::PodSandboxFilter>) -> SandboxFilter {
    let Some(f) = f else { return SandboxFilter::default() };
    SandboxFilter {
        id_prefix: Some(f.id.clone()).filter(|s| !s.is_empty()),
        state: f.state.as_ref().map(|s| {
            if s.state == pb::PodSandboxState::SandboxReady as i32 {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            }
        }),
        labels: f.label_selector.clone().into_iter().collect(),
    }
}
