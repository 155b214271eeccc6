//! Soak modes (`e2e/bench/soak.sh`): nothing is asserted but that the calls succeed; the
//! numbers are printed.
//!
//! - [`load`]: many pods with several containers each, created at once, then kubelet's
//!   steady load for a while: an ExecSync probe (`true`) per container every second and
//!   ListContainerStats + ListPodSandboxStats every 10 s; errors and latencies counted.
//! - [`cycles`]: pod + container created, started, stopped and removed over and over, the
//!   daemon's RSS and open fds sampled every `every` cycles, and their growth reported.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_e2e::cri::{v1 as cri, Cri};
use serde_json::{json, Value};

use crate::suite::{self, summary, Target};

/// Latencies and errors of one kind of call, shared by the tasks making it.
#[derive(Default)]
struct Tally {
    ok: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

impl Tally {
    fn record<T>(&mut self, took: Duration, r: &Result<T, tonic::Status>) {
        match r {
            Ok(_) => self.ok.push(took),
            Err(e) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("{:?}: {}", e.code(), e.message()));
            }
        }
    }

    fn report(&self) -> Value {
        let mut v = summary(self.ok.clone());
        v["errors"] = json!(self.errors);
        v["first_error"] = json!(self.first_error);
        v
    }
}

fn lock(t: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// One pod with `containers` `sleep` containers, all started; returns their ids.
async fn start_pod(c: &mut Cri, t: &Target, name: &str, containers: usize) -> anyhow::Result<Vec<String>> {
    let config = berth_e2e::pod::pod_config(name);
    let req = cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: t.handler.clone(),
    };
    let pod_id = c.runtime.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id;
    let mut ids = Vec::new();
    for i in 0..containers {
        let ctr = crate::suite::sleeper(&format!("c{i}"), &t.image);
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(ctr),
            sandbox_config: Some(config.clone()),
        };
        let id = c.runtime.create_container(req).await?.into_inner().container_id;
        c.runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// `pods` pods of `containers` containers created at once, then probed for `duration`.
pub async fn load(
    c: &mut Cri,
    t: &Target,
    pods: usize,
    containers: usize,
    duration: Duration,
) -> anyhow::Result<Value> {
    c.pull(&t.image, None).await?;
    suite::cleanup(c).await?;
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..pods)
        .map(|i| {
            let (mut c, t) = (c.clone(), t.clone());
            let name = format!("soak-{}-{i}", std::process::id());
            tokio::spawn(async move { start_pod(&mut c, &t, &name, containers).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    let create_wall = t0.elapsed();
    println!(
        "created {pods} pods x {containers} containers in {:.1} s; probing for {} s",
        create_wall.as_secs_f64(),
        duration.as_secs()
    );

    let exec = Arc::new(Mutex::new(Tally::default()));
    let stats = Arc::new(Mutex::new(Tally::default()));
    let pod_stats = Arc::new(Mutex::new(Tally::default()));
    let end = Instant::now() + duration;
    let mut probes = Vec::new();
    for id in ids.clone() {
        let (mut c, exec) = (c.clone(), exec.clone());
        probes.push(tokio::spawn(async move {
            // Like kubelet's prober: one tick a second, a tick missed while a probe runs is skipped.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while Instant::now() < end {
                tick.tick().await;
                let req = cri::ExecSyncRequest {
                    container_id: id.clone(),
                    cmd: vec!["true".into()],
                    timeout: 10,
                };
                let s = Instant::now();
                let r = c.runtime.exec_sync(req).await.and_then(|r| {
                    let r = r.into_inner();
                    if r.exit_code == 0 {
                        Ok(r)
                    } else {
                        Err(tonic::Status::unknown(format!("probe exited {}", r.exit_code)))
                    }
                });
                lock(&exec).record(s.elapsed(), &r);
            }
        }));
    }
    let (mut sc, st, ps) = (c.clone(), stats.clone(), pod_stats.clone());
    let poller = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        while Instant::now() < end {
            tick.tick().await;
            let s = Instant::now();
            let r = sc
                .runtime
                .list_container_stats(cri::ListContainerStatsRequest { filter: None })
                .await;
            lock(&st).record(s.elapsed(), &r);
            let s = Instant::now();
            let r = sc
                .runtime
                .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None })
                .await;
            lock(&ps).record(s.elapsed(), &r);
        }
    });
    let mut last = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if last.elapsed() >= Duration::from_secs(30) {
            last = Instant::now();
            let e = lock(&exec);
            let d = procs_line(t.daemon);
            println!(
                "  {:>4.0} s: {} probes ok, {} errors; berthd {d}",
                (duration - end.saturating_duration_since(Instant::now())).as_secs_f64(),
                e.ok.len(),
                e.errors
            );
        }
    }
    for p in probes {
        p.await?;
    }
    poller.await?;
    let removed = suite::cleanup(c).await?;
    let out = json!({
        "pods": pods,
        "containers": ids.len(),
        "create_wall_s": create_wall.as_secs_f64(),
        "seconds": duration.as_secs(),
        "exec_sync": lock(&exec).report(),
        "list_container_stats": lock(&stats).report(),
        "list_pod_sandbox_stats": lock(&pod_stats).report(),
        "stop_remove": removed,
    });
    for (what, key) in [
        ("ExecSync probes", "exec_sync"),
        ("ListContainerStats", "list_container_stats"),
        ("ListPodSandboxStats", "list_pod_sandbox_stats"),
    ] {
        let v = &out[key];
        println!(
            "{what:<20} {:>6} ok {:>4} errors  median {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms{}",
            v["n"].as_u64().unwrap_or(0),
            v["errors"].as_u64().unwrap_or(0),
            v["median_ms"].as_f64().unwrap_or(0.0),
            v["p90_ms"].as_f64().unwrap_or(0.0),
            v["max_ms"].as_f64().unwrap_or(0.0),
            v["first_error"]
                .as_str()
                .map(|e| format!("  first error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(out)
}

/// VmRSS in KiB and the number of open fds of `pid`.
fn rss_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

fn procs_line(pid: u32) -> String {
    let (rss, fds) = rss_fds(pid);
    format!("RSS {:.1} MiB, {fds} fds", rss as f64 / 1024.0)
}

/// `n` create/start/stop/remove cycles of a pod with one container, the daemon sampled
/// every `every` cycles. Growth is measured from the first sample to the last.
pub async fn cycles(c: &mut Cri, t: &Target, n: usize, every: usize) -> anyhow::Result<Value> {
    anyhow::ensure!(t.daemon > 0, "--daemon-pid is required");
    c.pull(&t.image, None).await?;
    suite::cleanup(c).await?;
    let every = every.max(1);
    let mut samples: Vec<(usize, u64, usize)> = Vec::new();
    let t0 = Instant::now();
    for i in 1..=n {
        let name = format!("cycle-{}-{i}", std::process::id());
        let ids = start_pod(c, t, &name, 1).await?;
        c.runtime
            .stop_container(cri::StopContainerRequest {
                container_id: ids[0].clone(),
                timeout: 0,
            })
            .await?;
        suite::cleanup(c).await?;
        if i % every == 0 {
            let (rss, fds) = rss_fds(t.daemon);
            println!(
                "cycle {i:>5}: berthd RSS {:>7.1} MiB, {fds:>4} fds ({:.1} cycles/s)",
                rss as f64 / 1024.0,
                i as f64 / t0.elapsed().as_secs_f64()
            );
            samples.push((i, rss, fds));
        }
    }
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => anyhow::bail!("fewer than {every} cycles: no sample"),
    };
    let rss_growth = last.1 as i64 - first.1 as i64;
    let fd_growth = last.2 as i64 - first.2 as i64;
    // Within 5% (and at most 8 MiB) of RSS and 3 fds: allocator noise, not a leak.
    let rss_ok = rss_growth <= (first.1 as i64 / 20).min(8 << 10);
    let fds_ok = fd_growth <= 3;
    let verdict = if rss_ok && fds_ok {
        "no growth".to_string()
    } else {
        format!(
            "GROWTH:{}{}",
            if rss_ok { "" } else { " RSS" },
            if fds_ok { "" } else { " fds" }
        )
    };
    println!(
        "growth from cycle {} to {}: RSS {:+.1} MiB ({:+.1}%), fds {fd_growth:+}",
        first.0,
        last.0,
        rss_growth as f64 / 1024.0,
        100.0 * rss_growth as f64 / first.1.max(1) as f64
    );
    println!("verdict: {verdict}");
    Ok(json!({
        "cycles": n,
        "seconds": t0.elapsed().as_secs_f64(),
        "samples": samples.iter().map(|(i, r, f)| json!({"cycle": i, "rss_kb": r, "fds": f})).collect::<Vec<_>>(),
        "rss_growth_kb": rss_growth,
        "fd_growth": fd_growth,
        "verdict": verdict,
    }))
}
