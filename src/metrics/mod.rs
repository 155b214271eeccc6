//! Berth's own Prometheus metrics (not the containers' figures, which kubelet reads through
//! the CRI): CRI request counts and latencies by method and gRPC code, image pulls, objects
//! by state, shims, OOM kills, container events and garbage collection. One process-wide
//! registry; [`server`] serves it as Prometheus text at `/metrics`.

pub mod server;

use std::sync::LazyLock;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::events::{Event, EventKind};

type Labels = Vec<(&'static str, String)>;

/// Every metric Berth exports.
pub struct Metrics {
    registry: Registry,
    cri_requests: Family<Labels, Counter>,
    cri_latency: Family<Labels, Histogram>,
    pull_bytes: Counter,
    pulls: Family<Labels, Counter>,
    pull_duration: Histogram,
    containers: Family<Labels, Gauge>,
    sandboxes: Family<Labels, Gauge>,
    shims: Gauge,
    oom_kills: Counter,
    events: Family<Labels, Counter>,
    event_subscribers: Gauge,
    gc_runs: Counter,
    gc_removed: Counter,
    nri_calls: Family<Labels, Counter>,
    nri_latency: Family<Labels, Histogram>,
    nri_dropped: Family<Labels, Counter>,
    nri_plugins: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Counts by state, for the gauges refreshed at each scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub containers: Vec<(&'static str, i64)>,
    pub sandboxes: Vec<(&'static str, i64)>,
    pub shims: i64,
    pub event_subscribers: i64,
    /// NRI plugins connected now.
    pub nri_plugins: i64,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("berth");
        let m = Metrics {
            cri_requests: Family::default(),
            cri_latency: Family::new_with_constructor(latency_histogram),
            pull_bytes: Counter::default(),
            pulls: Family::default(),
            pull_duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            containers: Family::default(),
            sandboxes: Family::default(),
            shims: Gauge::default(),
            oom_kills: Counter::default(),
            events: Family::default(),
            event_subscribers: Gauge::default(),
            gc_runs: Counter::default(),
            gc_removed: Counter::default(),
            nri_calls: Family::default(),
            nri_latency: Family::new_with_constructor(latency_histogram),
            nri_dropped: Family::default(),
            nri_plugins: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "cri_requests",
            "CRI requests handled, by method and gRPC code",
            m.cri_requests.clone(),
        );
        registry.register(
            "cri_request_duration_seconds",
            "Time to answer a CRI request, by method",
            m.cri_latency.clone(),
        );
        registry.register(
            "image_pull_bytes",
            "Bytes of image content downloaded from registries",
            m.pull_bytes.clone(),
        );
        registry.register("image_pulls", "Image pulls, by result", m.pulls.clone());
        registry.register(
            "image_pull_duration_seconds",
            "Time a successful image pull took",
            m.pull_duration.clone(),
        );
        registry.register("containers", "Containers, by state", m.containers.clone());
        registry.register("sandboxes", "Pod sandboxes, by state", m.sandboxes.clone());
        registry.register("shims", "Running container shim processes", m.shims.clone());
        registry.register("oom_kills", "Containers ended by the OOM killer", m.oom_kills.clone());
        registry.register(
            "container_events",
            "Container and sandbox lifecycle events, by type",
            m.events.clone(),
        );
        registry.register(
            "container_event_subscribers",
            "Open GetContainerEvents streams",
            m.event_subscribers.clone(),
        );
        registry.register(
            "gc_runs",
            "Garbage collections of the content store and snapshots",
            m.gc_runs.clone(),
        );
        registry.register(
            "gc_removed_objects",
            "Blobs and snapshots removed by garbage collection",
            m.gc_removed.clone(),
        );
        registry.register(
            "nri_plugin_calls",
            "Calls to NRI plugins, by plugin, method and result",
            m.nri_calls.clone(),
        );
        registry.register(
            "nri_plugin_call_duration_seconds",
            "Time an NRI plugin took to answer, by plugin and method",
            m.nri_latency.clone(),
        );
        registry.register(
            "nri_plugins_dropped",
            "NRI plugins dropped (died, timed out or broke the protocol), by plugin",
            m.nri_dropped.clone(),
        );
        registry.register("nri_plugins", "NRI plugins connected", m.nri_plugins.clone());
        Metrics { registry, ..m }
    }

    /// One call to an NRI plugin (`ok`: it answered without an error in time).
    pub fn nri_call(&self, plugin: &str, method: &str, ok: bool, seconds: f64) {
        let result = if ok { "success" } else { "failure" };
        self.nri_calls
            .get_or_create(&vec![
                ("plugin", plugin.to_string()),
                ("method", method.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
        self.nri_latency
            .get_or_create(&vec![("plugin", plugin.to_string()), ("method", method.to_string())])
            .observe(seconds);
    }

    /// An NRI plugin was dropped.
    pub fn nri_dropped(&self, plugin: &str) {
        self.nri_dropped
            .get_or_create(&vec![("plugin", plugin.to_string())])
            .inc();
    }

    /// One finished CRI request.
    pub fn cri_request(&self, method: &'static str, code: tonic::Code, seconds: f64) {
        self.cri_requests
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("code", code_name(code).to_string()),
            ])
            .inc();
        self.cri_latency
            .get_or_create(&vec![("method", method.to_string())])
            .observe(seconds);
    }

    pub fn pulled_bytes(&self, n: u64) {
        self.pull_bytes.inc_by(n);
    }

    /// One finished pull; `seconds` is recorded for successes only.
    pub fn pull_finished(&self, ok: bool, seconds: f64) {
        let result = if ok { "success" } else { "failure" };
        self.pulls.get_or_create(&vec![("result", result.to_string())]).inc();
        if ok {
            self.pull_duration.observe(seconds);
        }
    }

    pub fn gc_run(&self, removed: u64) {
        self.gc_runs.inc();
        self.gc_removed.inc_by(removed);
    }

    pub fn event(&self, e: &Event) {
        let kind = match e.kind {
            EventKind::Created => "created",
            EventKind::Started => "started",
            EventKind::Stopped => "stopped",
            EventKind::Deleted => "deleted",
        };
        self.events.get_or_create(&vec![("type", kind.to_string())]).inc();
        if e.oom_killed {
            self.oom_kills.inc();
        }
    }

    /// Prometheus text (format 0.0.4) of every metric, after taking in `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        set_gauges(&self.containers, &snapshot.containers);
        set_gauges(&self.sandboxes, &snapshot.sandboxes);
        self.shims.set(snapshot.shims);
        self.event_subscribers.set(snapshot.event_subscribers);
        self.nri_plugins.set(snapshot.nri_plugins);
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

fn set_gauges(family: &Family<Labels, Gauge>, values: &[(&'static str, i64)]) {
    for (state, n) in values {
        family.get_or_create(&vec![("state", state.to_string())]).set(*n);
    }
}

/// gRPC code names as they appear in the label (`OK`, `NotFound`, ...).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_counts() {
        let m = Metrics::new();
        m.cri_request("Version", tonic::Code::Ok, 0.001);
        m.cri_request("Version", tonic::Code::Ok, 0.002);
        m.cri_request("ContainerStatus", tonic::Code::NotFound, 0.0001);
        m.pulled_bytes(1234);
        m.pull_finished(true, 1.5);
        m.nri_call("10-injector", "CreateContainer", true, 0.0003);
        m.nri_dropped("20-hang");
        let text = m.render(&Snapshot {
            containers: vec![("running", 3), ("exited", 1)],
            sandboxes: vec![("ready", 2)],
            shims: 4,
            event_subscribers: 1,
            nri_plugins: 2,
        });
        assert!(
            text.contains("berth_cri_requests_total{method=\"Version\",code=\"OK\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("berth_cri_requests_total{method=\"ContainerStatus\",code=\"NotFound\"} 1\n"));
        assert!(text.contains("berth_cri_request_duration_seconds_count{method=\"Version\"} 2\n"));
        assert!(text.contains("berth_image_pull_bytes_total 1234\n"));
        assert!(text.contains("berth_containers{state=\"running\"} 3\n"));
        assert!(text.contains("berth_shims 4\n"));
        assert!(text.contains("berth_nri_plugins 2\n"), "{text}");
        assert!(text.contains(
            "berth_nri_plugin_calls_total{plugin=\"10-injector\",method=\"CreateContainer\",result=\"success\"} 1\n"
        ));
        assert!(text.contains("berth_nri_plugins_dropped_total{plugin=\"20-hang\"} 1\n"));
        assert!(text.contains("# TYPE berth_cri_request_duration_seconds histogram\n"));
    }
}
