//! Linux container resources, both ways: checked and taken from requests, and given back
//! in ContainerStatus.

use berth_proto as pb;

use crate::container::model::Resources;

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
