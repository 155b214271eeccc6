//! Berth's records and OCI specs as NRI describes pods and containers to plugins.

use std::collections::HashMap;

use berth_proto::nri;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::container::model::{ContainerRecord, ContainerSpec, ContainerState};
use crate::sandbox::SandboxRecord;

pub fn pod(rec: &SandboxRecord) -> nri::PodSandbox {
    let s = &rec.spec;
    let resources = rec
        .resources
        .as_ref()
        .and_then(|v| serde_json::from_value::<LinuxResources>(v.clone()).ok())
        .map(|r| resources(&r));
    nri::PodSandbox {
        id: rec.id.clone(),
        name: s.name.clone(),
        uid: s.uid.clone(),
        namespace: s.namespace.clone(),
        labels: map(s.labels.iter()),
        annotations: map(s.annotations.iter()),
        runtime_handler: s.runtime_handler.clone(),
        linux: Some(nri::LinuxPodSandbox {
            cgroup_parent: s.cgroup_parent.clone(),
            cgroups_path: rec.cgroup.clone(),
            namespaces: rec
                .netns
                .iter()
                .map(|p| nri::LinuxNamespace {
                    r#type: "network".into(),
                    path: p.display().to_string(),
                })
                .collect(),
            pod_resources: resources.clone(),
            resources,
            ..Default::default()
        }),
        pid: rec.infra_pid.unwrap_or(0),
        ips: rec.ips.clone(),
    }
}

/// A container being created: what its request and generated OCI spec say.
pub fn new_container(pod_id: &str, id: &str, spec: &ContainerSpec, oci: &Spec) -> nri::Container {
    let mut c = from_oci(oci);
    c.id = id.to_string();
    c.pod_sandbox_id = pod_id.to_string();
    c.name = spec.name.clone();
    c.state = nri::ContainerState::ContainerCreated as i32;
    c.labels = map(spec.labels.iter());
    c.annotations = map(spec.annotations.iter());
    c.cdi_devices = spec
        .cdi_devices
        .iter()
        .map(|name| nri::CdiDevice { name: name.clone() })
        .collect();
    c
}

/// A recorded container (for the events after its creation).
pub fn container(rec: &ContainerRecord) -> nri::Container {
    let s = &rec.spec;
    let state = match rec.state {
        ContainerState::Created => nri::ContainerState::ContainerCreated,
        ContainerState::Running => nri::ContainerState::ContainerRunning,
        ContainerState::Exited => nri::ContainerState::ContainerStopped,
        ContainerState::Unknown => nri::ContainerState::ContainerUnknown,
    };
    nri::Container {
        id: rec.id.clone(),
        pod_sandbox_id: rec.sandbox_id.clone(),
        name: s.name.clone(),
        state: state as i32,
        labels: map(s.labels.iter()),
        annotations: map(s.annotations.iter()),
        args: s.command.iter().chain(&s.args).cloned().collect(),
        env: rec.env.clone(),
        linux: Some(nri::LinuxContainer {
            cgroups_path: rec.cgroup.clone(),
            ..Default::default()
        }),
        pid: rec.pid,
        created_at: rec.created_at,
        started_at: rec.started_at,
        finished_at: rec.finished_at,
        exit_code: rec.exit_code,
        status_reason: rec.reason.clone(),
        status_message: rec.message.clone(),
        user: Some(nri::User {
            uid: rec.uid,
            gid: rec.gid,
            additional_gids: rec.additional_gids.clone(),
        }),
        ..Default::default()
    }
}

fn from_oci(oci: &Spec) -> nri::Container {
    let process = oci.process().clone().unwrap_or_default();
    let linux = oci.linux().clone().unwrap_or_default();
    nri::Container {
        args: process.args().clone().unwrap_or_default(),
        env: process.env().clone().unwrap_or_default(),
        mounts: oci
            .mounts()
            .iter()
            .flatten()
            .map(|m| nri::Mount {
                destination: m.destination().display().to_string(),
                r#type: m.typ().clone().unwrap_or_default(),
                source: m.source().as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                options: m.options().clone().unwrap_or_default(),
            })
            .collect(),
        rlimits: process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| nri::PosixRlimit {
                r#type: r.typ().to_string(),
                hard: r.hard(),
                soft: r.soft(),
            })
            .collect(),
        user: Some(nri::User {
            uid: process.user().uid(),
            gid: process.user().gid(),
            additional_gids: process.user().additional_gids().clone().unwrap_or_default(),
        }),
        linux: Some(nri::LinuxContainer {
            namespaces: linux
                .namespaces()
                .iter()
                .flatten()
                .map(|n| nri::LinuxNamespace {
                    // OCI's names ("network", "mount"), as in config.json.
                    r#type: serde_json::to_value(n.typ())
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    path: n.path().as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                })
                .collect(),
            devices: linux
                .devices()
                .iter()
                .flatten()
                .map(|d| nri::LinuxDevice {
                    path: d.path().display().to_string(),
                    r#type: d.typ().as_str().to_string(),
                    major: d.major(),
                    minor: d.minor(),
                    file_mode: d.file_mode().map(|value| nri::OptionalFileMode { value }),
                    uid: d.uid().map(|value| nri::OptionalUInt32 { value }),
                    gid: d.gid().map(|value| nri::OptionalUInt32 { value }),
                })
                .collect(),
            resources: linux.resources().as_ref().map(resources),
            oom_score_adj: process
                .oom_score_adj()
                .map(|value| nri::OptionalInt { value: value.into() }),
            cgroups_path: linux
                .cgroups_path()
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            sysctl: linux.sysctl().clone().unwrap_or_default().into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// OCI resources as NRI states them.
pub fn resources(r: &LinuxResources) -> nri::LinuxResources {
    let i64v = |v: Option<i64>| v.map(|value| nri::OptionalInt64 { value });
    let u64v = |v: Option<u64>| v.map(|value| nri::OptionalUInt64 { value });
    nri::LinuxResources {
        memory: r.memory().as_ref().map(|m| nri::LinuxMemory {
            limit: i64v(m.limit()),
            reservation: i64v(m.reservation()),
            swap: i64v(m.swap()),
            kernel: i64v(m.kernel()),
            kernel_tcp: i64v(m.kernel_tcp()),
            swappiness: u64v(m.swappiness()),
            disable_oom_killer: m.disable_oom_killer().map(|value| nri::OptionalBool { value }),
            use_hierarchy: m.use_hierarchy().map(|value| nri::OptionalBool { value }),
        }),
        cpu: r.cpu().as_ref().map(|c| nri::LinuxCpu {
            shares: u64v(c.shares()),
            quota: i64v(c.quota()),
            period: u64v(c.period()),
            realtime_runtime: i64v(c.realtime_runtime()),
            realtime_period: u64v(c.realtime_period()),
            cpus: c.cpus().clone().unwrap_or_default(),
            mems: c.mems().clone().unwrap_or_default(),
        }),
        hugepage_limits: r
            .hugepage_limits()
            .iter()
            .flatten()
            .map(|h| nri::HugepageLimit {
                page_size: h.page_size().clone(),
                limit: u64::try_from(h.limit()).unwrap_or(0),
            })
            .collect(),
        unified: r.unified().clone().unwrap_or_default(),
        pids: r.pids().as_ref().map(|p| nri::LinuxPids { limit: p.limit() }),
        ..Default::default()
    }
}

fn map<'a>(kv: impl Iterator<Item = (&'a String, &'a String)>) -> HashMap<String, String> {
    kv.map(|(k, v)| (k.clone(), v.clone())).collect()
}
