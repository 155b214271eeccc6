//! The side-by-side table: Berth's numbers, containerd's from the same run, their ratio and
//! the goal each is held to. Reads the JSON files `e2e/bench/run.sh` leaves in one dir and
//! writes `summary.json` next to them.

use std::path::Path;

use serde_json::{json, Value};

/// What a row is held to.
#[derive(Debug, Clone, Copy)]
enum Goal {
    None,
    /// berth / containerd at most this.
    RatioAtMost(f64),
    /// berth / containerd at least this.
    RatioAtLeast(f64),
    /// Berth's own value at most this.
    AtMost(f64),
}

#[derive(Debug)]
struct Row {
    name: String,
    unit: &'static str,
    berth: Option<f64>,
    containerd: Option<f64>,
    goal: Goal,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.berth, self.containerd) {
            (Some(b), Some(c)) if c > 0.0 => Some(b / c),
            _ => None,
        }
    }

    fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::None => None,
            Goal::RatioAtMost(x) => self.ratio().map(|r| r <= x),
            Goal::RatioAtLeast(x) => self.ratio().map(|r| r >= x),
            Goal::AtMost(x) => self.berth.map(|b| b <= x),
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::None => String::new(),
            Goal::RatioAtMost(x) => format!("<= {x}x"),
            Goal::RatioAtLeast(x) => format!(">= {x}x"),
            Goal::AtMost(x) => format!("<= {x} {}", self.unit),
        }
    }

    fn json(&self) -> Value {
        json!({
            "metric": self.name, "unit": self.unit, "berth": self.berth, "containerd": self.containerd,
            "ratio": self.ratio(), "goal": self.goal_text(), "met": self.met(),
        })
    }
}

fn load(dir: &Path, name: &str) -> anyhow::Result<Option<Value>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim() == "null" || text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// A number at a JSON pointer, if there.
fn at(v: &Option<Value>, pointer: &str) -> Option<f64> {
    v.as_ref()?.pointer(pointer)?.as_f64()
}

/// MiB from KiB.
fn mib(v: Option<f64>) -> Option<f64> {
    v.map(|k| k / 1024.0)
}

struct Sources {
    b: Option<Value>,
    c: Option<Value>,
}

impl Sources {
    fn row(&self, name: impl Into<String>, unit: &'static str, pointer: &str, goal: Goal) -> Row {
        let scale = |v: Option<f64>| if unit == "MiB" { mib(v) } else { v };
        Row {
            name: name.into(),
            unit,
            berth: scale(at(&self.b, pointer)),
            containerd: scale(at(&self.c, pointer)),
            goal,
        }
    }
}

fn rows(dir: &Path) -> anyhow::Result<Vec<Row>> {
    let s = Sources {
        b: load(dir, "berth.json")?,
        c: load(dir, "containerd.json")?,
    };
    let n = at(&s.b, "/sequential/n").unwrap_or(0.0);
    let mut rows = Vec::new();
    for (key, label, goal) in [
        ("run_pod_sandbox", "RunPodSandbox", Goal::None),
        ("create_container", "CreateContainer", Goal::None),
        ("start_container", "StartContainer", Goal::None),
        ("pod_start_total", "pod start (sum)", Goal::RatioAtMost(0.5)),
    ] {
        rows.push(s.row(
            format!("{n} pods in turn: {label} median"),
            "ms",
            &format!("/sequential/{key}/median_ms"),
            goal,
        ));
        rows.push(s.row(
            format!("{n} pods in turn: {label} p90"),
            "ms",
            &format!("/sequential/{key}/p90_ms"),
            Goal::None,
        ));
    }
    let concurrent =
        s.b.as_ref()
            .and_then(|b| b.pointer("/concurrent")?.as_array().cloned())
            .unwrap_or_default();
    for (i, c) in concurrent.iter().enumerate() {
        let n = c["n"].as_u64().unwrap_or(0);
        rows.push(s.row(
            format!("{n} pods at once: wall"),
            "ms",
            &format!("/concurrent/{i}/wall_ms"),
            Goal::RatioAtMost(0.5),
        ));
        rows.push(s.row(
            format!("{n} pods at once: pods/s"),
            "pods/s",
            &format!("/concurrent/{i}/pods_per_s"),
            Goal::None,
        ));
    }
    let pods = at(&s.b, "/memory_pods").unwrap_or(0.0);
    let (rss_with, pss_with) = (
        format!("daemon RSS with {pods} pods"),
        format!("daemon PSS with {pods} pods"),
    );
    // One container per pod: containerd's per-pod shim is its per-container shim here.
    for (name, unit, pointer, goal) in [
        (
            "stop+remove per pod",
            "ms",
            "/stop_remove/per_pod_ms",
            Goal::RatioAtMost(0.4),
        ),
        (
            "new connection + Version median",
            "ms",
            "/new_connection/median_ms",
            Goal::RatioAtMost(1.0),
        ),
        (
            "`crictl version` (process) median",
            "ms",
            "/crictl_version/median_ms",
            Goal::RatioAtMost(1.0),
        ),
        ("daemon RSS idle", "MiB", "/idle/daemon/rss_kb", Goal::RatioAtMost(0.5)),
        ("daemon PSS idle", "MiB", "/idle/daemon/pss_kb", Goal::None),
        (&rss_with, "MiB", "/with_pods/daemon/rss_kb", Goal::RatioAtMost(0.5)),
        (&pss_with, "MiB", "/with_pods/daemon/pss_kb", Goal::None),
        (
            "shim RSS per container",
            "MiB",
            "/with_pods/shims/rss_kb_each",
            Goal::None,
        ),
        (
            "shim PSS per container",
            "MiB",
            "/with_pods/shims/pss_kb_each",
            Goal::AtMost(1.0),
        ),
        (
            "pod infra (pause) PSS per pod",
            "MiB",
            "/with_pods/infra/pss_kb_each",
            Goal::None,
        ),
        (
            "ExecSync round trip median",
            "ms",
            "/exec_sync/median_ms",
            Goal::RatioAtMost(0.4),
        ),
    ] {
        rows.push(s.row(name, unit, pointer, goal));
    }
    let sc = at(&s.b, "/list_container_stats/containers").unwrap_or(0.0);
    rows.push(s.row(
        format!("ListContainerStats, {sc} containers, median"),
        "ms",
        "/list_container_stats/median_ms",
        Goal::None,
    ));

    let crun = Sources {
        b: load(dir, "berth-crun.json")?,
        c: load(dir, "containerd-crun.json")?,
    };
    if crun.b.is_some() {
        rows.push(crun.row(
            "crun handler: pod start (sum) median",
            "ms",
            "/pod_start_total/median_ms",
            Goal::RatioAtMost(0.5),
        ));
    }
    for (who, v) in [("berth", &crun.b), ("containerd", &crun.c)] {
        if let Some(e) = v.as_ref().and_then(|v| v["error"].as_str()) {
            println!("crun handler on {who}: not measured: {e}");
        }
    }

    rows.extend(handler_rows(dir, &s)?);
    rows.extend(density_rows(dir)?);

    if let Some(p) = load(dir, "pull.json")? {
        let mb = p["mb"].as_f64().unwrap_or(0.0);
        let (bs, cs) = (p["berth_s"].as_f64(), p["containerd_s"].as_f64());
        let rate = |s: Option<f64>| s.filter(|s| *s > 0.0).map(|s| mb / s);
        rows.push(Row {
            name: format!("pull {mb:.0} MB cold"),
            unit: "s",
            berth: bs,
            containerd: cs,
            goal: Goal::None,
        });
        rows.push(Row {
            name: "pull throughput".into(),
            unit: "MB/s",
            berth: rate(bs),
            containerd: rate(cs),
            goal: Goal::RatioAtLeast(1.5),
        });
        if let (Some(b), Some(g)) = (bs, p["gzip_s"].as_f64()) {
            rows.push(Row {
                name: "pull time / `gzip -dc` of its layers".into(),
                unit: "x",
                berth: Some(b / g),
                containerd: cs.map(|c| c / g),
                goal: Goal::AtMost(2.0),
            });
        }
    }
    Ok(rows)
}

/// PSS per pod (KiB) of everything a runtime keeps for its pods (shims, sandbox processes,
/// infra processes), from a `with_pods` measure of `memory_pods` pods.
fn pss_per_pod(v: &Option<Value>) -> Option<f64> {
    let pods = at(v, "/memory_pods").filter(|n| *n > 0.0)?;
    let part = |k: &str| at(v, &format!("/with_pods/{k}/pss_kb"));
    let shims = part("shims")?;
    Some((shims + part("sandboxes").unwrap_or(0.0) + part("infra").unwrap_or(0.0)) / pods)
}

/// Pod start, stop+remove and memory per pod on each runtime handler: runc under berth-shim
/// (berth.json), containerd-shim-runc-v2 driven by Berth (berth-runc-shim-v2.json) and gVisor
/// (berth-runsc.json). containerd's column is its default handler, which is
/// containerd-shim-runc-v2 with runc: the same shim, so the shim v2 rows compare.
fn handler_rows(dir: &Path, s: &Sources) -> anyhow::Result<Vec<Row>> {
    let default = (
        at(&s.c, "/sequential/pod_start_total/median_ms"),
        at(&s.c, "/stop_remove/per_pod_ms"),
        mib(pss_per_pod(&s.c)),
    );
    let mut rows = vec![Row {
        name: "runc handler: PSS per pod, all procs".into(),
        unit: "MiB",
        berth: mib(pss_per_pod(&s.b)),
        containerd: default.2,
        goal: Goal::None,
    }];
    for (handler, label, compares) in [
        ("runc-shim-v2", "runc-shim-v2 handler", true),
        ("runsc", "gVisor handler", false),
    ] {
        let b = load(dir, &format!("berth-{handler}.json"))?;
        if let Some(e) = b.as_ref().and_then(|v| v["error"].as_str()) {
            println!("{label} on berth: not measured: {e}");
            continue;
        }
        if b.is_none() {
            continue;
        }
        let c = |v: Option<f64>| v.filter(|_| compares);
        for (metric, unit, berth, containerd) in [
            (
                "pod start (sum) median",
                "ms",
                at(&b, "/pod_start_total/median_ms"),
                default.0,
            ),
            (
                "stop+remove per pod",
                "ms",
                at(&b, "/stop_remove/per_pod_ms"),
                default.1,
            ),
            ("PSS per pod, all procs", "MiB", mib(pss_per_pod(&b)), default.2),
        ] {
            rows.push(Row {
                name: format!("{label}: {metric}"),
                unit,
                berth,
                containerd: c(containerd),
                goal: Goal::None,
            });
        }
    }
    Ok(rows)
}

/// Pod startup as kubelet sees it: the node suite's Density benchmarks (density.sh), from
/// the API create call to the pod seen Running through a watch. Berth as kubelet runs by
/// default, and with kubelet's EventedPLEG on (containerd 1.6 has no event stream, so its
/// column is the same default run).
fn density_rows(dir: &Path) -> anyhow::Result<Vec<Row>> {
    let c = load(dir, "density-containerd.json")?;
    let mut rows = Vec::new();
    for (file, who) in [
        ("density-berth.json", "kubelet"),
        ("density-berth-evented.json", "kubelet+events"),
    ] {
        let b = load(dir, file)?;
        if b.is_none() {
            continue;
        }
        for bench in ["35 pods at once", "10 pods in turn over 50"] {
            for (p, goal) in [
                ("p50", Goal::RatioAtMost(0.5)),
                ("p90", Goal::None),
                ("p99", Goal::RatioAtMost(0.5)),
            ] {
                let pointer = format!("/benchmarks/{bench}/{p}_ms");
                rows.push(Row {
                    name: format!("{who}: {bench}, {p}"),
                    unit: "ms",
                    berth: at(&b, &pointer),
                    containerd: at(&c, &pointer),
                    goal,
                });
            }
        }
    }
    Ok(rows)
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Prints the table and writes `summary.json`; returns the summary.
pub fn report(dir: &Path) -> anyhow::Result<Value> {
    let rows = rows(dir)?;
    let meta = load(dir, "meta.json")?.unwrap_or(Value::Null);
    if let Some(m) = meta.as_object() {
        let line: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or(&v.to_string())))
            .collect();
        println!("{}", line.join("; "));
    }
    println!(
        "{:<46} {:>7} {:>10} {:>11} {:>7}  {:<10} met",
        "metric", "unit", "berth", "containerd", "ratio", "goal"
    );
    // Rows of a part not measured in this run (e.g. `run.sh density` alone) are left out.
    for r in rows.iter().filter(|r| r.berth.is_some() || r.containerd.is_some()) {
        let met = match r.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:<46} {:>7} {:>10} {:>11} {:>7}  {:<10} {met}",
            r.name,
            r.unit,
            fmt(r.berth),
            fmt(r.containerd),
            r.ratio().map_or("-".into(), |x| format!("{x:.2}x")),
            r.goal_text()
        );
    }
    println!(
        "handler rows: containerd's column is its default handler (containerd-shim-runc-v2 + runc); \
         \"all procs\" = shims + sandbox (gVisor) + infra per pod; kubelet rows: the node e2e \
         suite's Density benchmarks (pod startup: API create to Running seen by a watch), kubelet \
         v1.36; kubelet+events: Berth with kubelet's EventedPLEG on"
    );
    let summary = json!({ "meta": meta, "rows": rows.iter().map(Row::json).collect::<Vec<_>>() });
    let out = dir.join("summary.json");
    std::fs::write(&out, serde_json::to_string_pretty(&summary)?)?;
    println!("json: {}", out.display());
    Ok(summary)
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
