//! The report's rows from JSON files like those run.sh writes.
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn rows_carry_ratios_and_goals() {
    let dir = tempfile::tempdir().unwrap();
    let suite = |start: f64, rss: f64| {
        json!({"sequential": {"n": 30, "pod_start_total": {"median_ms": start, "p90_ms": start}},
               "concurrent": [{"n": 20, "wall_ms": start * 10.0, "pods_per_s": 1.0}],
               "idle": {"daemon": {"rss_kb": rss}}, "memory_pods": 20,
               "with_pods": {"shims": {"pss_kb_each": 512.0}},
               "new_connection": {"median_ms": rss / 1024.0}})
    };
    std::fs::write(dir.path().join("berth.json"), suite(50.0, 10240.0).to_string()).unwrap();
    std::fs::write(dir.path().join("containerd.json"), suite(150.0, 40960.0).to_string()).unwrap();
    std::fs::write(
        dir.path().join("pull.json"),
        r#"{"mb": 200, "berth_s": 1.0, "containerd_s": 2.0, "gzip_s": 0.8}"#,
    )
    .unwrap();
    let rows = rows(dir.path()).unwrap();
    let find = |name: &str| rows.iter().find(|r| r.name.contains(name)).unwrap();
    let start = find("pod start (sum) median");
    assert!((start.ratio().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(start.met(), Some(true));
    assert_eq!(find("daemon RSS idle").berth, Some(10.0));
    assert_eq!(find("shim PSS per container").met(), Some(true));
    let connect = find("new connection + Version");
    assert_eq!(
        (connect.berth, connect.containerd, connect.met()),
        (Some(10.0), Some(40.0), Some(true))
    );
    assert_eq!(find("`crictl version`").met(), None, "not measured, not judged");
    let tput = find("pull throughput");
    assert_eq!(tput.ratio(), Some(2.0));
    assert_eq!(tput.met(), Some(true));
    assert_eq!(find("gzip").met(), Some(true));
    assert!(rows.iter().all(|r| !r.name.starts_with("crun")));
    assert!(
        rows.iter().all(|r| !r.name.starts_with("gVisor")),
        "no gVisor run, no rows"
    );
    let handler = |start: f64, shims: f64, sandboxes: f64| {
        json!({"pod_start_total": {"median_ms": start}, "stop_remove": {"per_pod_ms": 9.0},
               "memory_pods": 4, "with_pods": {"shims": {"pss_kb": shims},
               "sandboxes": {"pss_kb": sandboxes}, "infra": {"pss_kb": 1024.0}}})
    };
    std::fs::write(
        dir.path().join("berth-runsc.json"),
        handler(500.0, 4096.0, 65536.0).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("berth-runc-shim-v2.json"),
        handler(190.0, 16384.0, 0.0).to_string(),
    )
    .unwrap();
    let density =
        |p50: f64| json!({"benchmarks": {"35 pods at once": {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50 * 2.0}}});
    std::fs::write(dir.path().join("density-berth.json"), density(900.0).to_string()).unwrap();
    std::fs::write(dir.path().join("density-containerd.json"), density(1500.0).to_string()).unwrap();
    let with_handlers = super::rows(dir.path()).unwrap();
    let find = |name: &str| with_handlers.iter().find(|r| r.name == name).unwrap();
    let gvisor = find("gVisor handler: PSS per pod, all procs");
    assert_eq!((gvisor.berth, gvisor.containerd), (Some(17.25), None));
    let v2 = find("runc-shim-v2 handler: pod start (sum) median");
    assert_eq!(
        (v2.berth, v2.containerd),
        (Some(190.0), Some(150.0)),
        "containerd's default handler beside"
    );
    assert_eq!(find("runc-shim-v2 handler: PSS per pod, all procs").berth, Some(4.25));
    let p99 = find("kubelet: 35 pods at once, p99");
    assert_eq!((p99.berth, p99.containerd), (Some(1800.0), Some(3000.0)));
    assert_eq!(p99.met(), Some(false), "0.6x is over the 0.5x goal");
    let missing = find("kubelet: 10 pods in turn over 50, p50");
    assert_eq!((missing.berth, missing.met()), (None, None), "not measured, not judged");
    assert!(
        with_handlers.iter().all(|r| !r.name.starts_with("kubelet+events")),
        "no evented run, no rows"
    );
    let s = report(dir.path()).unwrap();
    assert!(dir.path().join("summary.json").exists());
    assert!(s["rows"].as_array().unwrap().len() > 10);
}
