//! Berth's records and OCI specs as NRI describes pods and containers to plugins.

use std::collections::HashMap;

use berth_proto::nri;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::container::model::{ContainerRecord, ContainerSpec, ContainerState};
use crate::sandbox::SandboxRecord;

pub fn pod(rec: &SandboxRecord) -> nri::PodSandbox {
    let s = &rec.spec;
    let (overhead, resources) = pod_resources(rec.resources.as_ref());
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
            pod_overhead: overhead,
            pod_resources: resources.clone(),
            resources,
        }),
        pid: rec.infra_pid.unwrap_or(0),
        ips: rec.ips.clone(),
    }
}

/// The pod's overhead and resources from what `UpdatePodSandboxResources` recorded (CRI
/// field names: `{"overhead": {...}, "resources": {...}}`).
pub fn pod_resources(
    recorded: Option<&serde_json::Value>,
) -> (Option<nri::LinuxResources>, Option<nri::LinuxResources>) {
    let part = |key: &str| {
        recorded
            .and_then(|v| v.get(key))
            .filter(|v| v.is_object())
            .map(cri_resources)
    };
    (part("overhead"), part("resources"))
}

/// CRI `LinuxContainerResources` (as recorded, snake_case JSON) as NRI states them; zero
/// means unset, as in the CRI.
fn cri_resources(v: &serde_json::Value) -> nri::LinuxResources {
    let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).filter(|n| *n != 0);
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let i64v = |k: &str| int(k).map(|value| nri::OptionalInt64 { value });
    let u64v = |k: &str| {
        int(k)
            .and_then(|n| u64::try_from(n).ok())
            .map(|value| nri::OptionalUInt64 { value })
    };
    nri::LinuxResources {
        memory: Some(nri::LinuxMemory {
            limit: i64v("memory_limit_in_bytes"),
            swap: i64v("memory_swap_limit_in_bytes"),
            ..Default::default()
        }),
        cpu: Some(nri::LinuxCpu {
            shares: u64v("cpu_shares"),
            quota: i64v("cpu_quota"),
            period: u64v("cpu_period"),
            cpus: text("cpuset_cpus"),
            mems: text("cpuset_mems"),
            ..Default::default()
        }),
        unified: v
            .get("unified")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_pod_resources_keep_overhead_and_resources_apart() {
        let recorded = serde_json::json!({
            "overhead": {"cpu_shares": 10, "memory_limit_in_bytes": 0},
            "resources": {"cpu_quota": 50000, "cpu_period": 100000, "memory_limit_in_bytes": 67108864,
                          "cpuset_cpus": "0-1", "unified": {"memory.high": "60000000"}},
        });
        let (overhead, resources) = pod_resources(Some(&recorded));
        let (o, r) = (overhead.expect("overhead"), resources.expect("resources"));
        assert_eq!(o.cpu.and_then(|c| c.shares).map(|v| v.value), Some(10));
        assert_eq!(o.memory.and_then(|m| m.limit), None, "zero is unset");
        let mem = r.memory.expect("memory");
        assert_eq!(mem.limit.map(|v| v.value), Some(64 << 20));
        let cpu = r.cpu.expect("cpu");
        assert_eq!(
            (cpu.quota.map(|v| v.value), cpu.period.map(|v| v.value)),
            (Some(50000), Some(100000))
        );
        assert_eq!(cpu.cpus, "0-1");
        assert_eq!(r.unified.get("memory.high").map(String::as_str), Some("60000000"));
        assert_eq!(pod_resources(None), (None, None));
    }
}
