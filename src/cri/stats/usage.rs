//! Container and pod samples as the CRI's `ContainerStats` and `PodSandboxStats`.

use berth_proto as pb;

use super::value;
use crate::cri::convert;
use crate::stats::psi::{Pressure, PsiData};
use crate::stats::{netdev::Interface, ContainerSample, PodSample, Sample};

/// The interface kubelet reports as the pod's own.
const DEFAULT_INTERFACE: &str = "eth0";

fn cpu(s: &Sample) -> Option<pb::CpuUsage> {
    Some(pb::CpuUsage {
        timestamp: s.timestamp,
        usage_core_nano_seconds: s.cpu_usage_ns.and_then(value),
        usage_nano_cores: s.cpu_nano_cores.and_then(value),
        psi: s.psi.and_then(|p| p.cpu).map(psi),
    })
}

fn memory(s: &Sample) -> Option<pb::MemoryUsage> {
    let m = s.memory.as_ref();
    Some(pb::MemoryUsage {
        timestamp: s.timestamp,
        working_set_bytes: m.and_then(|m| value(m.working_set_bytes)),
        available_bytes: m.and_then(|m| m.available_bytes).and_then(value),
        usage_bytes: m.and_then(|m| value(m.usage_bytes)),
        rss_bytes: m.and_then(|m| value(m.rss_bytes)),
        page_faults: m.and_then(|m| value(m.page_faults)),
        major_page_faults: m.and_then(|m| value(m.major_page_faults)),
        psi: s.psi.and_then(|p| p.memory).map(psi),
    })
}

/// Only where the cgroup has io pressure figures: an empty `IoUsage` would read as zero pressure.
fn io(s: &Sample) -> Option<pb::IoUsage> {
    let p = s.psi.and_then(|p| p.io)?;
    Some(pb::IoUsage {
        timestamp: s.timestamp,
        psi: Some(psi(p)),
    })
}

fn psi(p: Pressure) -> pb::PsiStats {
    let data = |d: PsiData| pb::PsiData {
        total: d.total_ns,
        avg10: d.avg10,
        avg60: d.avg60,
        avg300: d.avg300,
    };
    pb::PsiStats {
        full: p.full.map(data),
        some: Some(data(p.some)),
    }
}

pub fn container_stats(c: &ContainerSample, layers_mountpoint: &str) -> pb::ContainerStats {
    let r = &c.record;
    pb::ContainerStats {
        attributes: Some(pb::ContainerAttributes {
            id: r.id.clone(),
            metadata: Some(convert::container_metadata(r)),
            labels: r.spec.labels.clone().into_iter().collect(),
            annotations: r.spec.annotations.clone().into_iter().collect(),
        }),
        cpu: cpu(&c.usage),
        memory: memory(&c.usage),
        writable_layer: Some(pb::FilesystemUsage {
            timestamp: c.usage.timestamp,
            fs_id: Some(pb::FilesystemIdentifier {
                mountpoint: layers_mountpoint.to_string(),
            }),
            used_bytes: c.writable.map(|w| w.bytes).and_then(value),
            inodes_used: c.writable.map(|w| w.inodes).and_then(value),
        }),
        swap: None,
        io: io(&c.usage),
    }
}

fn interface(i: &Interface) -> pb::NetworkInterfaceUsage {
    pb::NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: value(i.rx_bytes),
        rx_errors: value(i.rx_errors),
        tx_bytes: value(i.tx_bytes),
        tx_errors: value(i.tx_errors),
    }
}

pub fn pod_stats(p: &PodSample, layers_mountpoint: &str) -> pb::PodSandboxStats {
    let r = &p.record;
    let network = p.network.as_ref().map(|ifaces| pb::NetworkUsage {
        timestamp: p.usage.timestamp,
        default_interface: ifaces
            .iter()
            .find(|i| i.name == DEFAULT_INTERFACE)
            .or(ifaces.first())
            .map(interface),
        interfaces: ifaces.iter().map(interface).collect(),
    });
    pb::PodSandboxStats {
        attributes: Some(pb::PodSandboxAttributes {
            id: r.id.clone(),
            metadata: Some(convert::sandbox_metadata(&r.spec)),
            labels: r.spec.labels.clone().into_iter().collect(),
            annotations: r.spec.annotations.clone().into_iter().collect(),
        }),
        linux: Some(pb::LinuxPodSandboxStats {
            cpu: cpu(&p.usage),
            memory: memory(&p.usage),
            network,
            process: Some(pb::ProcessUsage {
                timestamp: p.usage.timestamp,
                process_count: p.usage.processes.and_then(value),
            }),
            containers: p
                .containers
                .iter()
                .map(|c| container_stats(c, layers_mountpoint))
                .collect(),
            io: io(&p.usage),
        }),
        windows: None,
    }
}
