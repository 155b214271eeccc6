//! CRI wire types <-> Berth's domain types. Nothing outside `src/cri/` sees protobuf types.

use berth_proto as pb;

use crate::image::auth::AuthInput;
use crate::image::ImageRecord;
use crate::network::{PortMapping, Protocol};
use crate::sandbox::{Dns, NamespaceModes, NsMode, SandboxFilter, SandboxRecord, SandboxSpec, SandboxState};

pub fn image(record: &ImageRecord) -> pb::Image {
    let (uid, username) = record.user();
    pb::Image {
        id: record.id.clone(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid: uid.map(|value| pb::Int64Value { value }),
        username,
        spec: Some(pb::ImageSpec {
            image: record.id.clone(),
            ..Default::default()
        }),
        pinned: record.pinned,
    }
}

pub fn auth(auth: &pb::AuthConfig) -> AuthInput {
    AuthInput {
        username: auth.username.clone(),
        password: auth.password.clone(),
        auth: auth.auth.clone(),
        server_address: auth.server_address.clone(),
        identity_token: auth.identity_token.clone(),
        registry_token: auth.registry_token.clone(),
    }
}

/// The image name of a request's `ImageSpec`, required non-empty.
pub fn image_name(spec: Option<&pb::ImageSpec>) -> Result<&str, crate::error::Error> {
    match spec.map(|s| s.image.trim()) {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(crate::error::Error::InvalidArgument(
            "image spec with a non-empty image name is required".into(),
        )),
    }
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// An id a request must carry.
pub fn required_id<'a>(id: &'a str, field: &str) -> Result<&'a str, crate::error::Error> {
    let id = id.trim();
    if id.is_empty() {
        return Err(crate::error::Error::InvalidArgument(format!("{field} is required")));
    }
    if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(crate::error::Error::InvalidArgument(format!(
            "{field} {:?} is not a valid id",
            truncate(id)
        )));
    }
    Ok(id)
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn ns_mode(mode: i32) -> Result<NsMode, crate::error::Error> {
    match pb::NamespaceMode::try_from(mode) {
        Ok(pb::NamespaceMode::Pod) => Ok(NsMode::Pod),
        Ok(pb::NamespaceMode::Container) => Ok(NsMode::Container),
        Ok(pb::NamespaceMode::Node) => Ok(NsMode::Node),
        Ok(pb::NamespaceMode::Target) => Ok(NsMode::Target),
        Err(_) => Err(crate::error::Error::InvalidArgument(format!(
            "unknown namespace mode {mode}"
        ))),
    }
}

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
    let linux = c.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let ns = sc.namespace_options.clone().unwrap_or_default();
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
    })
}

fn sandbox_metadata(s: &SandboxSpec) -> pb::PodSandboxMetadata {
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
                    userns_options: None,
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

/// Linux resources as JSON, for records that only keep them.
pub fn resources_json(r: &pb::LinuxContainerResources) -> serde_json::Value {
    serde_json::json!({
        "cpu_period": r.cpu_period,
        "cpu_quota": r.cpu_quota,
        "cpu_shares": r.cpu_shares,
        "memory_limit_in_bytes": r.memory_limit_in_bytes,
        "oom_score_adj": r.oom_score_adj,
        "cpuset_cpus": r.cpuset_cpus,
        "cpuset_mems": r.cpuset_mems,
        "memory_swap_limit_in_bytes": r.memory_swap_limit_in_bytes,
        "unified": r.unified,
    })
}
