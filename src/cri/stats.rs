//! Stats and metrics in CRI terms: container and pod samples as `ContainerStats` /
//! `PodSandboxStats`, and as the cAdvisor-named metrics kubelet serves at /metrics/cadvisor.

use berth_proto as pb;

use crate::cri::convert;
use crate::stats::detail::Detail;
use crate::stats::{cgroupfs::Memory, netdev::Interface, ContainerSample, PodSample, Sample};
use crate::sys::fs::FsSpace;

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

/// The interface kubelet reports as the pod's own.
const DEFAULT_INTERFACE: &str = "eth0";

fn cpu(s: &Sample) -> Option<pb::CpuUsage> {
    Some(pb::CpuUsage {
        timestamp: s.timestamp,
        usage_core_nano_seconds: s.cpu_usage_ns.and_then(value),
        usage_nano_cores: s.cpu_nano_cores.and_then(value),
        psi: None,
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
        psi: None,
    })
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
        io: None,
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
            io: None,
        }),
        windows: None,
    }
}

/// Labels of every metric, in order (cAdvisor's set), before its own extra labels.
const LABELS: [&str; 6] = ["container", "id", "image", "name", "namespace", "pod"];

struct Def {
    name: &'static str,
    help: &'static str,
    counter: bool,
    extra: &'static [&'static str],
}

const fn counter(name: &'static str, help: &'static str, extra: &'static [&'static str]) -> Def {
    Def {
        name,
        help,
        counter: true,
        extra,
    }
}

const fn gauge(name: &'static str, help: &'static str, extra: &'static [&'static str]) -> Def {
    Def {
        name,
        help,
        counter: false,
        extra,
    }
}

const DEVICE: &[&str] = &["device"];
const IFACE: &[&str] = &["interface"];

/// The metrics kubelet serves at /metrics/cadvisor in CRI stats mode, by cAdvisor's names.
const DEFS: &[Def] = &[
    counter(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        &[],
    ),
    counter(
        "container_cpu_user_seconds_total",
        "Cumulative user cpu time consumed in seconds.",
        &[],
    ),
    counter(
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        &[],
    ),
    counter(
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        &[],
    ),
    counter(
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        &[],
    ),
    counter(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        &[],
    ),
    gauge(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        &[],
    ),
    gauge(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        &[],
    ),
    gauge("container_memory_rss", "Size of RSS in bytes.", &[]),
    gauge("container_memory_cache", "Number of bytes of page cache memory.", &[]),
    gauge(
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        &[],
    ),
    gauge(
        "container_memory_kernel_usage",
        "Size of kernel memory allocated in bytes.",
        &[],
    ),
    gauge("container_memory_swap", "Container swap usage in bytes.", &[]),
    gauge(
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes.",
        &[],
    ),
    counter("container_memory_failcnt", "Number of memory usage hits limits.", &[]),
    counter(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        &["failure_type", "scope"],
    ),
    counter(
        "container_oom_events_total",
        "Count of out of memory events observed for the container.",
        &[],
    ),
    gauge(
        "container_processes",
        "Number of processes running inside the container.",
        &[],
    ),
    gauge(
        "container_threads",
        "Number of threads running inside the container.",
        &[],
    ),
    gauge(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero.",
        &[],
    ),
    gauge(
        "container_file_descriptors",
        "Number of open file descriptors for the container.",
        &[],
    ),
    gauge("container_sockets", "Number of open sockets for the container.", &[]),
    gauge("container_spec_cpu_period", "CPU period of the container.", &[]),
    gauge("container_spec_cpu_shares", "CPU share of the container.", &[]),
    gauge(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        &[],
    ),
    gauge(
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container.",
        &[],
    ),
    gauge(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        &[],
    ),
    gauge(
        "container_last_seen",
        "Last time a container was seen by the exporter.",
        &[],
    ),
    gauge(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        DEVICE,
    ),
    gauge(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        DEVICE,
    ),
    gauge("container_fs_inodes_total", "Number of Inodes.", DEVICE),
    gauge("container_fs_inodes_free", "Number of available Inodes.", DEVICE),
    counter(
        "container_fs_reads_bytes_total",
        "Cumulative count of bytes read.",
        DEVICE,
    ),
    counter(
        "container_fs_writes_bytes_total",
        "Cumulative count of bytes written.",
        DEVICE,
    ),
    counter(
        "container_fs_reads_total",
        "Cumulative count of reads completed.",
        DEVICE,
    ),
    counter(
        "container_fs_writes_total",
        "Cumulative count of writes completed.",
        DEVICE,
    ),
    counter(
        "container_blkio_device_usage_total",
        "Blkio device bytes usage.",
        &["device", "major", "minor", "operation"],
    ),
    counter(
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received.",
        IFACE,
    ),
    counter(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving.",
        IFACE,
    ),
    counter(
        "container_network_receive_packets_total",
        "Cumulative count of packets received.",
        IFACE,
    ),
    counter(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving.",
        IFACE,
    ),
    counter(
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted.",
        IFACE,
    ),
    counter(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting.",
        IFACE,
    ),
    counter(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted.",
        IFACE,
    ),
    counter(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting.",
        IFACE,
    ),
];

pub fn descriptors() -> Vec<pb::MetricDescriptor> {
    DEFS.iter()
        .map(|d| pb::MetricDescriptor {
            name: d.name.to_string(),
            help: d.help.to_string(),
            label_keys: LABELS.iter().chain(d.extra).map(|s| s.to_string()).collect(),
        })
        .collect()
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// Builds metrics of one object (a container, or the pod as a whole with `container` "").
struct Emitter {
    timestamp: i64,
    labels: Vec<String>,
    out: Vec<pb::Metric>,
}

impl Emitter {
    fn put(&mut self, name: &'static str, extra: &[&str], v: Option<u64>) {
        let (Some(v), Some(def)) = (v, DEFS.iter().find(|d| d.name == name)) else {
            return;
        };
        let mut label_values = self.labels.clone();
        label_values.extend(extra.iter().map(|s| s.to_string()));
        self.out.push(pb::Metric {
            name: name.to_string(),
            timestamp: self.timestamp,
            metric_type: if def.counter {
                pb::MetricType::Counter
            } else {
                pb::MetricType::Gauge
            } as i32,
            label_values,
            value: value(v),
        });
    }

    fn usage(&mut self, s: &Sample) {
        self.put(
            "container_cpu_usage_seconds_total",
            &[],
            s.cpu_usage_ns.map(|ns| ns / NS_PER_SEC),
        );
        let m: Option<&Memory> = s.memory.as_ref();
        self.put("container_memory_usage_bytes", &[], m.map(|m| m.usage_bytes));
        self.put(
            "container_memory_working_set_bytes",
            &[],
            m.map(|m| m.working_set_bytes),
        );
        self.put("container_memory_rss", &[], m.map(|m| m.rss_bytes));
        self.put("container_memory_cache", &[], m.map(|m| m.cache_bytes));
        self.put(
            "container_memory_failures_total",
            &["pgfault", "container"],
            m.map(|m| m.page_faults),
        );
        self.put(
            "container_memory_failures_total",
            &["pgmajfault", "container"],
            m.map(|m| m.major_page_faults),
        );
        self.put("container_processes", &[], s.processes);
        self.put("container_last_seen", &[], Some(s.timestamp.max(0) as u64 / NS_PER_SEC));
    }

    fn detail(&mut self, d: &Detail) {
        self.put(
            "container_cpu_user_seconds_total",
            &[],
            d.user_ns.map(|ns| ns / NS_PER_SEC),
        );
        self.put(
            "container_cpu_system_seconds_total",
            &[],
            d.system_ns.map(|ns| ns / NS_PER_SEC),
        );
        self.put("container_cpu_cfs_periods_total", &[], d.cfs_periods);
        self.put(
            "container_cpu_cfs_throttled_periods_total",
            &[],
            d.cfs_throttled_periods,
        );
        self.put(
            "container_cpu_cfs_throttled_seconds_total",
            &[],
            d.cfs_throttled_ns.map(|ns| ns / NS_PER_SEC),
        );
        self.put("container_memory_mapped_file", &[], d.memory_mapped_file);
        self.put("container_memory_kernel_usage", &[], d.memory_kernel);
        self.put("container_memory_swap", &[], d.memory_swap);
        self.put("container_memory_max_usage_bytes", &[], d.memory_max_usage);
        self.put("container_memory_failcnt", &[], d.memory_failcnt);
        self.put("container_oom_events_total", &[], d.oom_kills);
        self.put("container_threads", &[], d.threads);
        self.put("container_threads_max", &[], d.threads_max);
        self.put("container_file_descriptors", &[], d.file_descriptors);
        self.put("container_sockets", &[], d.sockets);
        for io in &d.io {
            let dev = format!("{}:{}", io.major, io.minor);
            let (major, minor) = (io.major.to_string(), io.minor.to_string());
            self.put("container_fs_reads_bytes_total", &[&dev], Some(io.read_bytes));
            self.put("container_fs_writes_bytes_total", &[&dev], Some(io.write_bytes));
            self.put("container_fs_reads_total", &[&dev], Some(io.reads));
            self.put("container_fs_writes_total", &[&dev], Some(io.writes));
            for (op, n) in [("Read", io.read_bytes), ("Write", io.write_bytes)] {
                self.put(
                    "container_blkio_device_usage_total",
                    &[&dev, &major, &minor, op],
                    Some(n),
                );
            }
        }
    }

    fn network(&mut self, ifaces: &[Interface]) {
        for i in ifaces {
            let l = [i.name.as_str()];
            self.put("container_network_receive_bytes_total", &l, Some(i.rx_bytes));
            self.put("container_network_receive_errors_total", &l, Some(i.rx_errors));
            self.put("container_network_receive_packets_total", &l, Some(i.rx_packets));
            self.put(
                "container_network_receive_packets_dropped_total",
                &l,
                Some(i.rx_dropped),
            );
            self.put("container_network_transmit_bytes_total", &l, Some(i.tx_bytes));
            self.put("container_network_transmit_errors_total", &l, Some(i.tx_errors));
            self.put("container_network_transmit_packets_total", &l, Some(i.tx_packets));
            self.put(
                "container_network_transmit_packets_dropped_total",
                &l,
                Some(i.tx_dropped),
            );
        }
    }

    /// What the container was configured with, and its writable layer's filesystem.
    fn container(&mut self, c: &ContainerSample, layers: &str, fs: Option<&FsSpace>) {
        let r = &c.record;
        let res = &r.spec.resources;
        let positive = |v: i64, default: u64| if v > 0 { v as u64 } else { default };
        // Kernel defaults where nothing was asked: a 100 ms period, 1024 shares, no limits (0).
        self.put(
            "container_spec_cpu_period",
            &[],
            Some(positive(res.cpu_period, 100_000)),
        );
        self.put("container_spec_cpu_shares", &[], Some(positive(res.cpu_shares, 1024)));
        self.put(
            "container_spec_memory_limit_bytes",
            &[],
            Some(positive(res.memory_limit_in_bytes, 0)),
        );
        self.put(
            "container_spec_memory_swap_limit_bytes",
            &[],
            Some(positive(res.memory_swap_limit_in_bytes, 0)),
        );
        if r.started_at > 0 {
            self.put(
                "container_start_time_seconds",
                &[],
                Some(r.started_at as u64 / NS_PER_SEC),
            );
        }
        self.put("container_fs_usage_bytes", &[layers], c.writable.map(|w| w.bytes));
        self.put("container_fs_limit_bytes", &[layers], fs.map(|f| f.bytes));
        self.put("container_fs_inodes_total", &[layers], fs.map(|f| f.inodes));
        self.put("container_fs_inodes_free", &[layers], fs.map(|f| f.inodes_free));
    }
}

/// One pod's metrics: pod-level CPU, memory and network, and each container's own.
/// `fs` is the filesystem holding writable layers (`layers`).
pub fn pod_metrics(p: &PodSample, layers: &str, fs: Option<&FsSpace>) -> pb::PodSandboxMetrics {
    let spec = &p.record.spec;
    let labels = |container: &str, id: &str, image: &str, name: &str| {
        vec![
            container.to_string(),
            id.to_string(),
            image.to_string(),
            name.to_string(),
            spec.namespace.clone(),
            spec.name.clone(),
        ]
    };
    let mut pod = Emitter {
        timestamp: p.usage.timestamp,
        labels: labels("", &p.record.cgroup, "", &p.record.id),
        out: Vec::new(),
    };
    pod.usage(&p.usage);
    if let Some(d) = &p.detail {
        pod.detail(d);
    }
    pod.network(p.network.as_deref().unwrap_or_default());
    let container_metrics = p
        .containers
        .iter()
        .map(|c| {
            let r = &c.record;
            let mut e = Emitter {
                timestamp: c.usage.timestamp,
                labels: labels(&r.spec.name, &r.cgroup, &r.image.name, &r.id),
                out: Vec::new(),
            };
            e.usage(&c.usage);
            if let Some(d) = &c.detail {
                e.detail(d);
            }
            e.container(c, layers, fs);
            pb::ContainerMetrics {
                container_id: r.id.clone(),
                metrics: e.out,
            }
        })
        .collect();
    pb::PodSandboxMetrics {
        pod_sandbox_id: p.record.id.clone(),
        metrics: pod.out,
        container_metrics,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_as_many_values_as_its_descriptor_has_keys() {
        let descriptors = descriptors();
        let mut e = Emitter {
            timestamp: 1,
            labels: LABELS.iter().map(|s| s.to_string()).collect(),
            out: Vec::new(),
        };
        e.usage(&Sample {
            cpu_usage_ns: Some(2_500_000_000),
            memory: Some(Memory {
                limit_bytes: Some(5),
                ..Default::default()
            }),
            processes: Some(3),
            ..Default::default()
        });
        e.put("container_network_receive_bytes_total", &["eth0"], Some(9));
        e.put(
            "container_blkio_device_usage_total",
            &["8:0", "8", "0", "Read"],
            Some(1),
        );
        assert_eq!(e.out.len(), 11);
        for m in &e.out {
            let d = descriptors.iter().find(|d| d.name == m.name).unwrap();
            assert_eq!(d.label_keys.len(), m.label_values.len(), "{}", m.name);
        }
        let cpu = e
            .out
            .iter()
            .find(|m| m.name == "container_cpu_usage_seconds_total")
            .unwrap();
        assert_eq!(cpu.value.unwrap().value, 2);
        assert_eq!(cpu.metric_type, pb::MetricType::Counter as i32);
    }
}
