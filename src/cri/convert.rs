//! CRI wire types <-> Berth's domain types. Nothing outside `src/cri/` sees protobuf types.

use std::path::{Component, Path};

use berth_proto as pb;

use crate::container::lifecycle::{ContainerFilter, ContainerRecord, ContainerState};
use crate::container::model::{
    ContainerSpec, DeviceSpec, MountSpec, Profile, ProfileKind, Propagation, Resources, SecuritySpec,
};
use crate::container::validate::shown as truncate;
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

/// The image name of a request's `ImageSpec`, required non-empty: a reference (tag or
/// digest) or an image id (`sha256:<hex>`, or a hex prefix of one).
pub fn image_name(spec: Option<&pb::ImageSpec>) -> Result<&str, crate::error::Error> {
    match spec.map(|s| s.image.trim()) {
        Some(name) if !name.is_empty() => {
            let bare = name.strip_prefix("sha256:").unwrap_or(name);
            let id = bare.len() <= 64 && bare.bytes().all(|b| b.is_ascii_hexdigit());
            if !id && (name.len() > 4096 || crate::image::reference::Reference::parse(name).is_err()) {
                return Err(crate::error::Error::InvalidArgument(format!(
                    "image {:?} is neither a valid reference nor an image id",
                    truncate(name)
                )));
            }
            Ok(name)
        }
        _ => Err(crate::error::Error::InvalidArgument(
            "image spec with a non-empty image name is required".into(),
        )),
    }
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

fn profile(p: Option<&pb::SecurityProfile>) -> Option<Profile> {
    p.map(|p| Profile {
        kind: match pb::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(pb::security_profile::ProfileType::Unconfined) => ProfileKind::Unconfined,
            Ok(pb::security_profile::ProfileType::Localhost) => ProfileKind::Localhost,
            _ => ProfileKind::RuntimeDefault,
        },
        localhost_ref: p.localhost_ref.clone(),
    })
}

/// `ContainerConfig` → the domain spec; the image is resolved by the caller.
pub fn container_spec(c: &pb::ContainerConfig) -> Result<ContainerSpec, crate::error::Error> {
    use crate::error::Error;
    let meta = c
        .metadata
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument("container config metadata is required".into()))?;
    let image = c.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
    if !image.trim().is_empty() {
        image_name(c.image.as_ref())?;
    }
    let linux = c.linux.clone().unwrap_or_default();
    let r = linux.resources.unwrap_or_default();
    check_resources(&r)?;
    let sc = linux.security_context.unwrap_or_default();
    let ns = sc.namespace_options.clone().unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    let mut envs = Vec::new();
    for kv in &c.envs {
        let value = String::from_utf8(kv.value.clone())
            .ok()
            .filter(|v| !v.contains('\0'))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("environment variable {} is not UTF-8 without NUL", kv.key))
            })?;
        envs.push((kv.key.clone(), value));
    }
    let mounts = c
        .mounts
        .iter()
        .map(|m| {
            if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
                return Err(Error::InvalidArgument(format!(
                    "image volume at {} is not supported yet",
                    m.container_path
                )));
            }
            Ok(MountSpec {
                container_path: m.container_path.clone(),
                host_path: m.host_path.clone(),
                readonly: m.readonly,
                selinux_relabel: m.selinux_relabel,
                propagation: match pb::MountPropagation::try_from(m.propagation) {
                    Ok(pb::MountPropagation::PropagationHostToContainer) => Propagation::HostToContainer,
                    Ok(pb::MountPropagation::PropagationBidirectional) => Propagation::Bidirectional,
                    _ => Propagation::Private,
                },
                recursive_read_only: m.recursive_read_only,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stop_signal = match pb::Signal::try_from(c.stop_signal) {
        Ok(pb::Signal::RuntimeDefault) | Err(_) => String::new(),
        Ok(s) => s.as_str_name().to_string(),
    };
    Ok(ContainerSpec {
        name: meta.name.clone(),
        attempt: meta.attempt,
        image,
        image_id: String::new(),
        user_image: c
            .image
            .as_ref()
            .map(|i| i.user_specified_image.trim().to_string())
            .unwrap_or_default(),
        command: c.command.clone(),
        args: c.args.clone(),
        working_dir: c.working_dir.clone(),
        envs,
        mounts,
        devices: c
            .devices
            .iter()
            .map(|d| DeviceSpec {
                container_path: d.container_path.clone(),
                host_path: d.host_path.clone(),
                permissions: d.permissions.clone(),
            })
            .collect(),
        labels: c.labels.clone().into_iter().collect(),
        annotations: c.annotations.clone().into_iter().collect(),
        log_path: c.log_path.clone(),
        stdin: c.stdin,
        stdin_once: c.stdin_once,
        tty: c.tty,
        resources: resources(&r),
        security: SecuritySpec {
            add_capabilities: caps.add_capabilities.clone(),
            drop_capabilities: caps.drop_capabilities.clone(),
            add_ambient_capabilities: caps.add_ambient_capabilities.clone(),
            privileged: sc.privileged,
            pid_mode: ns_mode(ns.pid)?,
            target_id: ns.target_id.clone(),
            run_as_user: sc.run_as_user.as_ref().map(|v| v.value),
            run_as_group: sc.run_as_group.as_ref().map(|v| v.value),
            run_as_username: sc.run_as_username.clone(),
            readonly_rootfs: sc.readonly_rootfs,
            supplemental_groups: sc.supplemental_groups.clone(),
            supplemental_groups_strict: sc.supplemental_groups_policy == pb::SupplementalGroupsPolicy::Strict as i32,
            no_new_privs: sc.no_new_privs,
            masked_paths: Some(sc.masked_paths.clone()).filter(|v| !v.is_empty()),
            readonly_paths: Some(sc.readonly_paths.clone()).filter(|v| !v.is_empty()),
            seccomp: profile(sc.seccomp.as_ref()),
            apparmor: profile(sc.apparmor.as_ref()),
        },
        cdi_devices: c.cdi_devices.iter().map(|d| d.name.clone()).collect(),
        stop_signal,
    })
}

/// Refuses numbers no cgroup takes: negative periods, shares and limits (-1 is "no limit"
/// for quota and swap), an OOM score outside -1000..=1000.
pub fn check_resources(r: &pb::LinuxContainerResources) -> Result<(), crate::error::Error> {
    let bad = [
        ("cpu_period", r.cpu_period, 0),
        ("cpu_quota", r.cpu_quota, -1),
        ("cpu_shares", r.cpu_shares, 0),
        ("memory_limit_in_bytes", r.memory_limit_in_bytes, 0),
        ("memory_swap_limit_in_bytes", r.memory_swap_limit_in_bytes, -1),
        ("oom_score_adj", r.oom_score_adj, -1000),
    ]
    .into_iter()
    .find(|(_, v, min)| v < min)
    .or((r.oom_score_adj > 1000).then_some(("oom_score_adj", r.oom_score_adj, 0)));
    match bad {
        Some((field, value, _)) => Err(crate::error::Error::InvalidArgument(format!(
            "resources: {field} {value} is out of range"
        ))),
        None => Ok(()),
    }
}

pub fn resources(r: &pb::LinuxContainerResources) -> Resources {
    Resources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
        unified: r.unified.clone().into_iter().collect(),
        memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
    }
}

/// The resources a container runs with (as created, then as last updated), for
/// ContainerStatus: kubelet reads them back to follow in-place resizes.
pub fn linux_resources(r: &Resources) -> pb::LinuxContainerResources {
    pb::LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|(page_size, limit)| pb::HugepageLimit {
                page_size: page_size.clone(),
                limit: *limit,
            })
            .collect(),
        unified: r.unified.clone().into_iter().collect(),
        memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
    }
}

fn container_state(s: ContainerState) -> i32 {
    match s {
        ContainerState::Created => pb::ContainerState::ContainerCreated as i32,
        ContainerState::Running => pb::ContainerState::ContainerRunning as i32,
        ContainerState::Exited => pb::ContainerState::ContainerExited as i32,
        ContainerState::Unknown => pb::ContainerState::ContainerUnknown as i32,
    }
}

pub(crate) fn container_metadata(r: &ContainerRecord) -> pb::ContainerMetadata {
    pb::ContainerMetadata {
        name: r.spec.name.clone(),
        attempt: r.spec.attempt,
    }
}

pub fn container(r: &ContainerRecord) -> pb::Container {
    pb::Container {
        id: r.id.clone(),
        pod_sandbox_id: r.sandbox_id.clone(),
        metadata: Some(container_metadata(r)),
        image: Some(super::container_image::image_spec(r)),
        image_ref: r.image.name.clone(),
        state: container_state(r.state),
        created_at: r.created_at,
        labels: r.spec.labels.clone().into_iter().collect(),
        annotations: r.spec.annotations.clone().into_iter().collect(),
        image_id: r.image.id.clone(),
    }
}

pub fn container_status(r: &ContainerRecord) -> pb::ContainerStatus {
    pb::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(container_metadata(r)),
        state: container_state(r.state),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: Some(super::container_image::image_spec(r)),
        image_ref: r.image.name.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: r.spec.labels.clone().into_iter().collect(),
        annotations: r.spec.annotations.clone().into_iter().collect(),
        mounts: r
            .spec
            .mounts
            .iter()
            .map(|m| pb::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.clone(),
                readonly: m.readonly,
                selinux_relabel: m.selinux_relabel,
                propagation: match m.propagation {
                    Propagation::Private => pb::MountPropagation::PropagationPrivate as i32,
                    Propagation::HostToContainer => pb::MountPropagation::PropagationHostToContainer as i32,
                    Propagation::Bidirectional => pb::MountPropagation::PropagationBidirectional as i32,
                },
                recursive_read_only: m.recursive_read_only,
                ..Default::default()
            })
            .collect(),
        log_path: r.log_path.clone(),
        resources: Some(pb::ContainerResources {
            linux: Some(linux_resources(&r.spec.resources)),
            windows: None,
        }),
        image_id: r.image.id.clone(),
        user: Some(pb::ContainerUser {
            linux: Some(pb::LinuxContainerUser {
                uid: r.uid as i64,
                gid: r.gid as i64,
                supplemental_groups: r.additional_gids.iter().map(|g| *g as i64).collect(),
            }),
        }),
        stop_signal: pb::Signal::from_str_name(&signal_name(r.stop_signal))
            .map(|s| s as i32)
            .unwrap_or(0),
    }
}

fn signal_name(sig: i32) -> String {
    let names = [
        (1, "SIGHUP"),
        (2, "SIGINT"),
        (3, "SIGQUIT"),
        (6, "SIGABRT"),
        (9, "SIGKILL"),
        (10, "SIGUSR1"),
        (12, "SIGUSR2"),
        (14, "SIGALRM"),
        (15, "SIGTERM"),
        (17, "SIGCHLD"),
        (28, "SIGWINCH"),
    ];
    names
        .iter()
        .find(|(n, _)| *n == sig)
        .map(|(_, s)| s.to_string())
        .unwrap_or_default()
}

pub fn container_filter(f: Option<&pb::ContainerFilter>) -> ContainerFilter {
    let Some(f) = f else { return ContainerFilter::default() };
    ContainerFilter {
        id_prefix: Some(f.id.clone()).filter(|s| !s.is_empty()),
        state: f.state.as_ref().map(|s| match pb::ContainerState::try_from(s.state) {
            Ok(pb::ContainerState::ContainerCreated) => ContainerState::Created,
            Ok(pb::ContainerState::ContainerRunning) => ContainerState::Running,
            Ok(pb::ContainerState::ContainerExited) => ContainerState::Exited,
            _ => ContainerState::Unknown,
        }),
        sandbox_id: Some(f.pod_sandbox_id.clone()).filter(|s| !s.is_empty()),
        labels: f.label_selector.clone().into_iter().collect(),
    }
}
