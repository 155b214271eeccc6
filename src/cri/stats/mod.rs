//! Stats and metrics in CRI terms: container and pod samples as `ContainerStats` /
//! `PodSandboxStats` (`usage`), and as the cAdvisor-named metrics kubelet serves at
//! /metrics/cadvisor (`descriptors` names them, `metrics` fills them in).

mod descriptors;
mod metrics;
mod usage;

use berth_proto as pb;

pub use descriptors::descriptors;
pub use metrics::pod_metrics;
pub use usage::{container_stats, pod_stats};

fn value(v: u64) -> Option<pb::UInt64Value> {
    Some(pb::UInt64Value { value: v })
}

/// The directory holding writable layers: the filesystem they are accounted to.
pub fn layers_mountpoint(d: &crate::daemon::Daemon) -> String {
    d.config.root.join("containers").display().to_string()
}

/// A CRI container stats filter in domain terms.
pub fn container_filter(f: Option<&pb::ContainerStatsFilter>) -> crate::container::lifecycle::ContainerFilter {
    let Some(f) = f else { return Default::default() };
    crate::container::lifecycle::ContainerFilter {
        id_prefix: Some(f.id.clone()).filter(|s| !s.is_empty()),
        sandbox_id: Some(f.pod_sandbox_id.clone()).filter(|s| !s.is_empty()),
        state: None,
        labels: f.label_selector.clone().into_iter().collect(),
    }
}

pub fn sandbox_filter(f: Option<&pb::PodSandboxStatsFilter>) -> crate::sandbox::SandboxFilter {
    let Some(f) = f else { return Default::default() };
    crate::sandbox::SandboxFilter {
        id_prefix: Some(f.id.clone()).filter(|s| !s.is_empty()),
        state: None,
        labels: f.label_selector.clone().into_iter().collect(),
    }
}
