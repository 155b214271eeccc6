//! One pod's samples as cAdvisor-named metrics, labelled the way cAdvisor labels them.

use berth_proto as pb;

use super::descriptors::DEFS;
use super::value;
use crate::stats::detail::Detail;
use crate::stats::{cgroupfs::Memory, netdev::Interface, ContainerSample, PodSample, Sample};
use crate::sys::fs::FsSpace;

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
    use crate::cri::stats::descriptors::{descriptors, LABELS};

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
