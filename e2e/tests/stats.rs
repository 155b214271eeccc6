//! Stats, metrics and events end to end: real containers burning CPU, holding memory and
//! sending traffic between two pods; the CRI figures must follow. Events of a lifecycle
//! arrive in order; the Prometheus endpoint parses and counts the calls made.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::workload::{env, env_with, Env};

const MIB: u64 = 1 << 20;

async fn pod_stats(e: &mut Env, id: &str) -> cri::PodSandboxStats {
    e.cri
        .runtime
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .expect("PodSandboxStats")
        .into_inner()
        .stats
        .expect("stats")
}

fn v(x: &Option<cri::UInt64Value>) -> u64 {
    x.as_ref().map(|v| v.value).expect("value present")
}

async fn list_container_stats(e: &mut Env, filter: cri::ContainerStatsFilter) -> Vec<cri::ContainerStats> {
    e.cri
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest { filter: Some(filter) })
        .await
        .expect("ListContainerStats")
        .into_inner()
        .stats
}

/// Polls `f` until it returns Some, for up to `secs`.
async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn cpu_memory_layer_and_process_figures_follow_the_workload() {
    let mut e = env(None).await;
    let pod = e.pod("stats").await;
    let mut burn = e.container("burn", &["sh", "-c", "while :; do :; done"]);
    burn.labels = HashMap::from([("role".to_string(), "burn".to_string())]);
    let burn = e.create(&pod, burn).await.expect("create burn");
    // 48 MiB in the pod's /dev/shm (tmpfs: charged to this container, never reclaimable
    // as inactive file) and 4 MiB in the writable layer.
    let hold = e
        .create(
            &pod,
            e.container(
                "hold",
                &[
                    "sh",
                    "-c",
                    "head -c 4194304 /dev/zero > /tmp/f; head -c 50331648 /dev/zero > /dev/shm/buf; touch /tmp/done; sleep 3600",
                ],
            ),
        )
        .await
        .expect("create hold");
    let idle = e
        .create(&pod, e.container("idle", &["sleep", "3600"]))
        .await
        .expect("create idle");
    for id in [&burn, &hold, &idle] {
        e.start(id).await;
    }

    // CPU: the busy loop uses up to one core; on a loaded 2-core machine (CI beside other
    // builds) it may get much less, so the floor is a clearly busy 15% of a core.
    let first = e.container_stats(&burn).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = e.container_stats(&burn).await;
    let (c1, c2) = (first.cpu.expect("cpu"), second.cpu.expect("cpu"));
    let used = v(&c2.usage_core_nano_seconds) - v(&c1.usage_core_nano_seconds);
    let elapsed = (c2.timestamp - c1.timestamp) as u64;
    assert!(
        used * 100 >= elapsed * 15,
        "busy loop used {used} ns of CPU in {elapsed} ns"
    );
    let nano_cores = v(&c2.usage_nano_cores);
    assert!(
        (150_000_000..=1_300_000_000).contains(&nano_cores),
        "busy loop at {nano_cores} nano cores"
    );
    assert_eq!(second.attributes.as_ref().expect("attrs").id, burn);

    // Memory: the 48 MiB buffer shows in the working set, within tolerance.
    let hold_stats = eventually(20, "the 48 MiB buffer", async || {
        let s = e.container_stats(&hold).await;
        let ws = v(&s.memory.as_ref().expect("memory").working_set_bytes);
        (ws >= 48 * MIB).then_some(s)
    })
    .await;
    let mem = hold_stats.memory.expect("memory");
    assert!(
        v(&mem.working_set_bytes) < 48 * MIB + 24 * MIB,
        "working set {} far above the buffer",
        v(&mem.working_set_bytes)
    );
    assert!(v(&mem.usage_bytes) >= v(&mem.working_set_bytes));
    let idle_stats = e.container_stats(&idle).await;
    let idle_mem = idle_stats.memory.expect("memory");
    assert!(v(&idle_mem.working_set_bytes) < 8 * MIB, "idle container: {idle_mem:?}");
    assert!(idle_stats.cpu.expect("cpu").usage_core_nano_seconds.is_some());

    // Writable layer: the 4 MiB file (layer sizes are cached for up to 10 s).
    let layer = eventually(20, "the 4 MiB file in the writable layer", async || {
        let s = e.container_stats(&hold).await;
        let w = s.writable_layer.expect("writable layer");
        (v(&w.used_bytes) >= 4 * MIB).then_some(w)
    })
    .await;
    assert!(v(&layer.used_bytes) < 4 * MIB + MIB, "{layer:?}");
    assert!(v(&layer.inodes_used) >= 3, "{layer:?}");
    assert!(!layer.fs_id.expect("fs id").mountpoint.is_empty());

    // Listing filters: by sandbox, by label, by id.
    let all = list_container_stats(
        &mut e,
        cri::ContainerStatsFilter {
            pod_sandbox_id: pod.0.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 3);
    let labelled = list_container_stats(
        &mut e,
        cri::ContainerStatsFilter {
            label_selector: HashMap::from([("role".to_string(), "burn".to_string())]),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(labelled.len(), 1);
    assert_eq!(labelled[0].attributes.as_ref().expect("attrs").id, burn);
    let by_id = list_container_stats(
        &mut e,
        cri::ContainerStatsFilter {
            id: idle.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_id.len(), 1);

    // The pod: the sum of its members.
    let p = pod_stats(&mut e, &pod.0).await;
    let linux = p.linux.expect("linux");
    assert!(v(&linux.memory.as_ref().expect("memory").working_set_bytes) >= 48 * MIB);
    assert!(v(&linux.process.as_ref().expect("process").process_count) >= 3);
    assert_eq!(linux.containers.len(), 3);
    let net = linux.network.expect("network");
    assert_eq!(net.default_interface.expect("eth0").name, "eth0");

    // Metrics: every value lines up with its descriptor's keys; the busy loop counts.
    let descriptors: HashMap<String, usize> = e
        .cri
        .runtime
        .list_metric_descriptors(cri::ListMetricDescriptorsRequest {})
        .await
        .expect("ListMetricDescriptors")
        .into_inner()
        .descriptors
        .into_iter()
        .map(|d| (d.name, d.label_keys.len()))
        .collect();
    assert!(descriptors.contains_key("container_memory_working_set_bytes"));
    let metrics = e
        .cri
        .runtime
        .list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {})
        .await
        .expect("ListPodSandboxMetrics")
        .into_inner()
        .pod_metrics;
    let pm = metrics.iter().find(|m| m.pod_sandbox_id == pod.0).expect("pod metrics");
    for m in pm
        .metrics
        .iter()
        .chain(pm.container_metrics.iter().flat_map(|c| &c.metrics))
    {
        assert_eq!(descriptors.get(&m.name), Some(&m.label_values.len()), "{m:?}");
    }
    let burn_metrics = pm
        .container_metrics
        .iter()
        .find(|c| c.container_id == burn)
        .expect("burn metrics");
    let cpu_seconds = burn_metrics
        .metrics
        .iter()
        .find(|m| m.name == "container_cpu_usage_seconds_total")
        .expect("cpu metric");
    assert!(v(&cpu_seconds.value) >= 1, "{cpu_seconds:?}");
    assert_eq!(cpu_seconds.label_values[0], "burn");

    // Unknown ids.
    let err = e
        .cri
        .runtime
        .container_stats(cri::ContainerStatsRequest {
            container_id: "0123456789abcdef".into(),
        })
        .await
        .expect_err("unknown container");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = e
        .cri
        .runtime
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: String::new(),
        })
        .await
        .expect_err("no id");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

fn iface(stats: &cri::PodSandboxStats) -> cri::NetworkInterfaceUsage {
    stats
        .linux
        .as_ref()
        .and_then(|l| l.network.as_ref())
        .and_then(|n| n.default_interface.clone())
        .expect("default interface")
}

#[tokio::test]
async fn network_counters_move_after_traffic_between_two_pods() {
    let mut e = env(None).await;
    let server = e.pod("netserver").await;
    let client = e.pod("netclient").await;
    let (status, _) = berth_e2e::pod::status(&mut e.cri, &server.0).await.expect("status");
    let ip = status.network.expect("network").ip;
    assert!(!ip.is_empty());
    let before_rx = v(&iface(&pod_stats(&mut e, &server.0).await).rx_bytes);
    let before_tx = v(&iface(&pod_stats(&mut e, &client.0).await).tx_bytes);

    let listener = e
        .create(
            &server,
            e.container("listen", &["sh", "-c", "sleep 3600 | nc -l -p 8080 > /dev/null"]),
        )
        .await
        .expect("create listener");
    e.start(&listener).await;
    let send = format!("sleep 1; head -c 5000000 /dev/zero | nc {ip} 8080");
    let sender = e
        .create(&client, e.container("send", &["sh", "-c", &send]))
        .await
        .expect("create sender");
    e.start(&sender).await;

    const SENT: u64 = 5_000_000;
    eventually(
        30,
        "5 MB received by the server pod and sent by the client pod",
        async || {
            let rx = v(&iface(&pod_stats(&mut e, &server.0).await).rx_bytes) - before_rx;
            let tx = v(&iface(&pod_stats(&mut e, &client.0).await).tx_bytes) - before_tx;
            (rx >= SENT && tx >= SENT).then_some(())
        },
    )
    .await;
    // And no more than the payload plus protocol overhead (well under 10%).
    let rx = v(&iface(&pod_stats(&mut e, &server.0).await).rx_bytes) - before_rx;
    assert!(rx < SENT + SENT / 10, "server received {rx} bytes for {SENT}");
    let listed = e
        .cri
        .runtime
        .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None })
        .await
        .expect("ListPodSandboxStats")
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 2);
}

type Seen = Vec<(i32, cri::ContainerEventResponse)>;

/// One GetContainerEvents stream and everything it delivered so far.
struct Subscriber {
    rx: tokio::sync::mpsc::UnboundedReceiver<cri::ContainerEventResponse>,
    all: Vec<cri::ContainerEventResponse>,
}

async fn subscribe(e: &mut Env) -> Subscriber {
    let mut stream = e
        .cri
        .runtime
        .get_container_events(cri::GetEventsRequest {})
        .await
        .expect("GetContainerEvents")
        .into_inner();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(ev)) = stream.message().await {
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    Subscriber { rx, all: Vec::new() }
}

impl Subscriber {
    /// The events of `id` in arrival order, once there are `want` of them.
    async fn events_of(&mut self, id: &str, want: usize) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen: Seen = self
                .all
                .iter()
                .filter(|ev| ev.container_id == id)
                .map(|ev| (ev.container_event_type, ev.clone()))
                .collect();
            if seen.len() >= want {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = tokio::time::timeout(left, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("events of {id}: only {seen:?}"))
                .expect("event stream open");
            self.all.push(ev);
        }
    }
}

fn kinds(seen: &Seen) -> Vec<i32> {
    seen.iter().map(|s| s.0).collect()
}

#[tokio::test]
async fn events_arrive_in_order_for_every_subscriber() {
    use cri::ContainerEventType::*;
    let mut e = env(None).await;
    let mut first = subscribe(&mut e).await;
    let mut second = subscribe(&mut e).await;
    let pod = e.pod("events").await;
    let c = e
        .create(&pod, e.container("c", &["sleep", "3600"]))
        .await
        .expect("create");
    e.start(&c).await;
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: c.clone(),
            timeout: 5,
        })
        .await
        .expect("stop");
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: c.clone(),
        })
        .await
        .expect("remove");
    let lifecycle = vec![
        ContainerCreatedEvent as i32,
        ContainerStartedEvent as i32,
        ContainerStoppedEvent as i32,
        ContainerDeletedEvent as i32,
    ];
    for sub in [&mut first, &mut second] {
        let seen = sub.events_of(&c, 4).await;
        assert_eq!(kinds(&seen), lifecycle);
        for (kind, ev) in &seen {
            let sandbox = ev.pod_sandbox_status.as_ref().expect("pod sandbox status");
            assert_eq!(sandbox.id, pod.0);
            assert!(ev.created_at > 0);
            if *kind == ContainerStartedEvent as i32 {
                let st = ev.containers_statuses.iter().find(|s| s.id == c).expect("own status");
                assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32);
            }
        }
        assert!(seen.windows(2).all(|w| w[0].1.created_at <= w[1].1.created_at));
    }

    // A container that exits on its own is reported without anyone asking about it.
    let quick = e
        .create(&pod, e.container("quick", &["sh", "-c", "exit 0"]))
        .await
        .expect("create");
    e.start(&quick).await;
    let seen = first.events_of(&quick, 3).await;
    assert_eq!(kinds(&seen)[2], ContainerStoppedEvent as i32);
    let stopped = seen[2]
        .1
        .containers_statuses
        .iter()
        .find(|s| s.id == quick)
        .expect("status");
    assert_eq!(stopped.state, cri::ContainerState::ContainerExited as i32);

    // The sandbox has its own lifecycle events, ending with DELETED.
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
    let seen = second.events_of(&pod.0, 4).await;
    assert_eq!(kinds(&seen), lifecycle);
    assert!(
        seen[3].1.pod_sandbox_status.is_some(),
        "DELETED carries the last status"
    );
}

/// Parses Prometheus text format (0.0.4): `# HELP`/`# TYPE` comments and samples
/// `name{label="value",...} number`. Panics on anything else.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let kind = words.next().unwrap_or("");
            assert!(kind == "HELP" || kind == "TYPE", "comment {line:?}");
            if kind == "TYPE" {
                let t = rest.rsplit(' ').next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "type {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "labels in {line:?}");
            for pair in series[name_end + 1..series.len() - 1]
                .split(',')
                .filter(|p| !p.is_empty())
            {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("label in {line:?}"));
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label {k:?}");
                assert!(v.starts_with('"') && v.ends_with('"'), "label value {v:?}");
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

async fn scrape(port: u16) -> HashMap<String, f64> {
    let resp = berth_e2e::http_client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert!(resp.status().is_success());
    let content_type = resp.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse_prometheus(&resp.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_endpoint_parses_and_counts_calls() {
    let port = berth_e2e::free_port();
    let mut e = env_with(None, Some(format!("[metrics]\naddress = \"127.0.0.1:{port}\"\n"))).await;
    let version = "berth_cri_requests_total{method=\"Version\",code=\"OK\"}";
    let not_found = "berth_cri_requests_total{method=\"ContainerStatus\",code=\"NotFound\"}";
    let before = scrape(port).await;
    for _ in 0..3 {
        e.cri
            .runtime
            .version(cri::VersionRequest::default())
            .await
            .expect("version");
    }
    let err = e
        .cri
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: "0123456789abcdef".into(),
            verbose: false,
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let pod = e.pod("metrics").await;
    let c = e
        .create(&pod, e.container("c", &["sleep", "3600"]))
        .await
        .expect("create");
    e.start(&c).await;

    let after = scrape(port).await;
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(get(&after, version) - get(&before, version), 3.0);
    assert_eq!(get(&after, not_found) - get(&before, not_found), 1.0);
    assert!(get(&after, "berth_cri_request_duration_seconds_count{method=\"Version\"}") >= 3.0);
    assert_eq!(get(&after, "berth_image_pulls_total{result=\"success\"}"), 1.0);
    assert!(get(&after, "berth_image_pull_bytes_total") > 100_000.0);
    assert_eq!(get(&after, "berth_sandboxes{state=\"ready\"}"), 1.0);
    assert_eq!(get(&after, "berth_containers{state=\"running\"}"), 1.0);
    assert_eq!(get(&after, "berth_shims"), 1.0);
    assert!(get(&after, "berth_container_events_total{type=\"started\"}") >= 2.0);
    assert!(get(&after, "berth_gc_runs_total") >= 1.0);
    let health = berth_e2e::http_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
}
