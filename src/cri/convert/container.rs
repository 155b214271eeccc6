//! Containers: `ContainerConfig` as the domain spec, records as `Container` and
//! `ContainerStatus`, and the listing filter.

use berth_proto as pb;

use super::image::image_name;
use super::ns_mode;
use super::resources::{check_resources, linux_resources, resources};
use crate::container::lifecycle::{ContainerFilter, ContainerRecord, ContainerState};
use crate::container::model::{
    ContainerSpec, DeviceSpec, ImageVolume, MountSpec, Profile, ProfileKind, Propagation, SecuritySpec,
};
use crate::cri::container_image::image_spec;

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
    let userns = super::user_namespace(ns.userns_options.as_ref())?;
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
            let image = m.image.as_ref().filter(|i| !i.image.is_empty()).map(|i| ImageVolume {
                image: i.image.trim().to_string(),
                user_specified: i.user_specified_image.clone(),
                sub_path: m.image_sub_path.clone(),
                id: String::new(),
            });
            MountSpec {
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
                image,
            }
        })
        .collect();
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
            userns,
        },
        cdi_devices: c.cdi_devices.iter().map(|d| d.name.clone()).collect(),
        stop_signal,
    })
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
        image: Some(image_spec(r)),
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
        image: Some(image_spec(r)),
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
                image: m.image.as_ref().map(|v| pb::ImageSpec {
                    image: v.image.clone(),
                    user_specified_image: v.user_specified.clone(),
                    image_ref: v.id.clone(),
                    ..Default::default()
                }),
                image_sub_path: m.image.as_ref().map(|v| v.sub_path.clone()).unwrap_or_default(),
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
