//! The metrics kubelet serves at /metrics/cadvisor, by cAdvisor's names, kinds and labels.

use berth_proto as pb;

/// Labels of every metric, in order (cAdvisor's set), before its own extra labels.
pub(super) const LABELS: [&str; 6] = ["container", "id", "image", "name", "namespace", "pod"];

/// One metric: its name, help text, kind (a counter, else a gauge) and extra label keys.
pub(super) struct Def {
    pub(super) name: &'static str,
    help: &'static str,
    pub(super) counter: bool,
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
pub(super) const DEFS: &[Def] = &[
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
