//! CRI messages as JSON the way protojson writes them: lowerCamelCase field names, 64-bit
//! integers as strings, enums by name, maps as objects.

use std::collections::{BTreeMap, HashMap};

use berth_proto as pb;
use serde_json::{json, Value};

pub fn map(m: &HashMap<String, String>) -> Value {
    json!(m.iter().collect::<BTreeMap<_, _>>())
}

fn u64v(v: &Option<pb::UInt64Value>) -> Value {
    match v {
        Some(v) => json!({"value": v.value.to_string()}),
        None => Value::Null,
    }
}

pub fn container_state(s: i32) -> &'static str {
    match pb::ContainerState::try_from(s) {
        Ok(pb::ContainerState::ContainerCreated) => "CONTAINER_CREATED",
        Ok(pb::ContainerState::ContainerRunning) => "CONTAINER_RUNNING",
        Ok(pb::ContainerState::ContainerExited) => "CONTAINER_EXITED",
        _ => "CONTAINER_UNKNOWN",
    }
}

pub fn pod_state(s: i32) -> &'static str {
    if s == pb::PodSandboxState::SandboxReady as i32 {
        "SANDBOX_READY"
    } else {
        "SANDBOX_NOTREADY"
    }
}

pub fn image(img: &pb::Image) -> Value {
    json!({
        "id": img.id,
        "repoTags": img.repo_tags,
        "repoDigests": img.repo_digests,
        "size": img.size.to_string(),
        "uid": img.uid.as_ref().map(|u| json!({"value": u.value.to_string()})),
        "username": img.username,
        "pinned": img.pinned,
    })
}

fn image_spec(s: &Option<pb::ImageSpec>) -> Value {
    match s {
        Some(s) => json!({
            "image": s.image,
            "annotations": map(&s.annotations),
            "userSpecifiedImage": s.user_specified_image,
            "runtimeHandler": s.runtime_handler,
        }),
        None => Value::Null,
    }
}

fn container_metadata(m: &Option<pb::ContainerMetadata>) -> Value {
    m.as_ref()
        .map(|m| json!({"name": m.name, "attempt": m.attempt}))
        .unwrap_or(Value::Null)
}

fn pod_metadata(m: &Option<pb::PodSandboxMetadata>) -> Value {
    m.as_ref()
        .map(|m| json!({"name": m.name, "uid": m.uid, "namespace": m.namespace, "attempt": m.attempt}))
        .unwrap_or(Value::Null)
}

pub fn container(c: &pb::Container) -> Value {
    json!({
        "id": c.id,
        "podSandboxId": c.pod_sandbox_id,
        "metadata": container_metadata(&c.metadata),
        "image": image_spec(&c.image),
        "imageRef": c.image_ref,
        "state": container_state(c.state),
        "createdAt": c.created_at.to_string(),
        "labels": map(&c.labels),
        "annotations": map(&c.annotations),
    })
}

fn mount(m: &pb::Mount) -> Value {
    let propagation = match m.propagation {
        1 => "PROPAGATION_HOST_TO_CONTAINER",
        2 => "PROPAGATION_BIDIRECTIONAL",
        _ => "PROPAGATION_PRIVATE",
    };
    json!({
        "containerPath": m.container_path,
        "hostPath": m.host_path,
        "readonly": m.readonly,
        "selinuxRelabel": m.selinux_relabel,
        "propagation": propagation,
        "recursiveReadOnly": m.recursive_read_only,
    })
}

pub fn resources(r: &pb::LinuxContainerResources) -> Value {
    json!({
        "cpuPeriod": r.cpu_period.to_string(),
        "cpuQuota": r.cpu_quota.to_string(),
        "cpuShares": r.cpu_shares.to_string(),
        "memoryLimitInBytes": r.memory_limit_in_bytes.to_string(),
        "oomScoreAdj": r.oom_score_adj.to_string(),
        "cpusetCpus": r.cpuset_cpus,
        "cpusetMems": r.cpuset_mems,
        "unified": map(&r.unified),
        "memorySwapLimitInBytes": r.memory_swap_limit_in_bytes.to_string(),
    })
}

pub fn container_status(s: &pb::ContainerStatus) -> Value {
    json!({
        "id": s.id,
        "metadata": container_metadata(&s.metadata),
        "state": container_state(s.state),
        "createdAt": s.created_at.to_string(),
        "startedAt": s.started_at.to_string(),
        "finishedAt": s.finished_at.to_string(),
        "exitCode": s.exit_code,
        "image": image_spec(&s.image),
        "imageRef": s.image_ref,
        "imageId": s.image_id,
        "reason": s.reason,
        "message": s.message,
        "labels": map(&s.labels),
        "annotations": map(&s.annotations),
        "mounts": s.mounts.iter().map(mount).collect::<Vec<_>>(),
        "logPath": s.log_path,
        "resources": s.resources.as_ref().and_then(|r| r.linux.as_ref()).map(|l| json!({"linux": resources(l)})),
        "user": s.user.as_ref().and_then(|u| u.linux.as_ref()).map(|l| json!({"linux": {
            "uid": l.uid.to_string(), "gid": l.gid.to_string(),
            "supplementalGroups": l.supplemental_groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
        }})),
    })
}

pub fn pod(p: &pb::PodSandbox) -> Value {
    json!({
        "id": p.id,
        "metadata": pod_metadata(&p.metadata),
        "state": pod_state(p.state),
        "createdAt": p.created_at.to_string(),
        "labels": map(&p.labels),
        "annotations": map(&p.annotations),
        "runtimeHandler": p.runtime_handler,
    })
}

fn ns_mode(m: i32) -> &'static str {
    match m {
        0 => "POD",
        1 => "CONTAINER",
        2 => "NODE",
        3 => "TARGET",
        _ => "UNKNOWN",
    }
}

pub fn pod_status(s: &pb::PodSandboxStatus) -> Value {
    let network = s.network.as_ref().map(|n| {
        json!({
            "ip": n.ip,
            "additionalIps": n.additional_ips.iter().map(|i| json!({"ip": i.ip})).collect::<Vec<_>>(),
        })
    });
    let namespaces = s
        .linux
        .as_ref()
        .and_then(|l| l.namespaces.as_ref())
        .and_then(|n| n.options.as_ref())
        .map(|o| {
            json!({"options": {
                "network": ns_mode(o.network), "pid": ns_mode(o.pid), "ipc": ns_mode(o.ipc), "targetId": o.target_id,
            }})
        });
    json!({
        "id": s.id,
        "metadata": pod_metadata(&s.metadata),
        "state": pod_state(s.state),
        "createdAt": s.created_at.to_string(),
        "network": network,
        "linux": namespaces.map(|n| json!({"namespaces": n})),
        "labels": map(&s.labels),
        "annotations": map(&s.annotations),
        "runtimeHandler": s.runtime_handler,
    })
}

fn cpu(c: &Option<pb::CpuUsage>) -> Value {
    c.as_ref()
        .map(|c| {
            json!({
                "timestamp": c.timestamp.to_string(),
                "usageCoreNanoSeconds": u64v(&c.usage_core_nano_seconds),
                "usageNanoCores": u64v(&c.usage_nano_cores),
            })
        })
        .unwrap_or(Value::Null)
}

fn memory(m: &Option<pb::MemoryUsage>) -> Value {
    m.as_ref()
        .map(|m| {
            json!({
                "timestamp": m.timestamp.to_string(),
                "workingSetBytes": u64v(&m.working_set_bytes),
                "availableBytes": u64v(&m.available_bytes),
                "usageBytes": u64v(&m.usage_bytes),
                "rssBytes": u64v(&m.rss_bytes),
                "pageFaults": u64v(&m.page_faults),
                "majorPageFaults": u64v(&m.major_page_faults),
            })
        })
        .unwrap_or(Value::Null)
}

pub fn filesystem(f: &pb::FilesystemUsage) -> Value {
    json!({
        "timestamp": f.timestamp.to_string(),
        "fsId": f.fs_id.as_ref().map(|i| json!({"mountpoint": i.mountpoint})),
        "usedBytes": u64v(&f.used_bytes),
        "inodesUsed": u64v(&f.inodes_used),
    })
}

pub fn container_stats(s: &pb::ContainerStats) -> Value {
    json!({
        "attributes": s.attributes.as_ref().map(|a| json!({
            "id": a.id,
            "metadata": container_metadata(&a.metadata),
            "labels": map(&a.labels),
            "annotations": map(&a.annotations),
        })),
        "cpu": cpu(&s.cpu),
        "memory": memory(&s.memory),
        "writableLayer": s.writable_layer.as_ref().map(filesystem),
    })
}

pub fn pod_stats(s: &pb::PodSandboxStats) -> Value {
    json!({
        "attributes": s.attributes.as_ref().map(|a| json!({
            "id": a.id,
            "metadata": pod_metadata(&a.metadata),
            "labels": map(&a.labels),
            "annotations": map(&a.annotations),
        })),
        "linux": s.linux.as_ref().map(|l| json!({
            "cpu": cpu(&l.cpu),
            "memory": memory(&l.memory),
            "process": l.process.as_ref().map(|p| json!({"timestamp": p.timestamp.to_string(), "processCount": u64v(&p.process_count)})),
            "containers": l.containers.iter().map(container_stats).collect::<Vec<_>>(),
        })),
    })
}

/// A verbose `info` map with each value parsed as JSON where it is JSON. A map holding
/// only `info` is that value itself, as crictl shows it.
pub fn info(info: &HashMap<String, String>) -> Value {
    let parse = |v: &String| serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.clone()));
    if info.len() == 1 {
        if let Some(v) = info.get("info") {
            return parse(v);
        }
    }
    let m: BTreeMap<&String, Value> = info.iter().map(|(k, v)| (k, parse(v))).collect();
    json!(m)
}
