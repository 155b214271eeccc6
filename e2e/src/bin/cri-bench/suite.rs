//! The measurements, through one CRI client whatever the runtime: pods one after another,
//! pods started concurrently, stop+remove, ExecSync round trips, ListContainerStats, and the
//! memory of the daemon, its shims and the pods' infra processes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_e2e::cri::{v1 as cri, Cri};
use serde_json::{json, Value};

use crate::procs;

/// What the suite needs to know about the runtime under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub image: String,
    pub handler: String,
    /// The daemon's pid, for its memory and for finding its pods' infra processes.
    pub daemon: u32,
    /// A string in the command line of this runtime's shims (its state dir or socket).
    pub marker: String,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    ms(sorted[idx])
}

pub fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    json!({
        "n": samples.len(),
        "median_ms": percentile(&samples, 0.5),
        "p90_ms": percentile(&samples, 0.9),
        "max_ms": percentile(&samples, 1.0),
    })
}

/// A container named `name` that sleeps for an hour in `image`.
pub fn sleeper(name: &str, image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// One pod with one `sleep` container: the times of RunPodSandbox, CreateContainer and
/// StartContainer, and the container's id.
pub async fn start_pod(c: &mut Cri, t: &Target) -> anyhow::Result<([Duration; 3], String)> {
    let name = format!("bench-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let config = berth_e2e::pod::pod_config(&name);
    let t0 = Instant::now();
    let req = cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: t.handler.clone(),
    };
    let pod_id = c.runtime.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id;
    let t1 = Instant::now();
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod_id,
        config: Some(sleeper("app", &t.image)),
        sandbox_config: Some(config),
    };
    let id = c.runtime.create_container(req).await?.into_inner().container_id;
    let t2 = Instant::now();
    c.runtime
        .start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
    let t3 = Instant::now();
    Ok(([t1 - t0, t2 - t1, t3 - t2], id))
}

/// `n` pods one after another; they are left running.
pub async fn sequential(c: &mut Cri, t: &Target, n: usize) -> anyhow::Result<Value> {
    let (mut runp, mut create, mut start, mut total) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let ([a, b, s], _) = start_pod(c, t).await?;
        runp.push(a);
        create.push(b);
        start.push(s);
        total.push(a + b + s);
    }
    Ok(json!({
        "n": n,
        "run_pod_sandbox": summary(runp),
        "create_container": summary(create),
        "start_container": summary(start),
        "pod_start_total": summary(total),
    }))
}

/// `n` pods started at once, each on its own task over the shared connection; they are left
/// running. Wall time from the first request to the last StartContainer answer.
pub async fn concurrent(c: &Cri, t: &Target, n: usize) -> anyhow::Result<(Value, Vec<String>)> {
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (mut c, t) = (c.clone(), t.clone());
            tokio::spawn(async move { start_pod(&mut c, &t).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    for task in tasks {
        let ([a, b, s], id) = task.await??;
        totals.push(a + b + s);
        ids.push(id);
    }
    let wall = t0.elapsed();
    Ok((
        json!({
            "n": n,
            "wall_ms": ms(wall),
            "pods_per_s": n as f64 / wall.as_secs_f64(),
            "pod_start_each": summary(totals),
        }),
        ids,
    ))
}

/// Stops and removes every pod, one after another, as kubelet's pod workers would.
pub async fn cleanup(c: &mut Cri) -> anyhow::Result<Value> {
    let pods = c
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    let t = Instant::now();
    for p in &pods {
        let id = p.id.clone();
        c.runtime
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await?;
        c.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
            .await?;
    }
    let total = t.elapsed();
    Ok(json!({
        "n": pods.len(),
        "total_ms": ms(total),
        "per_pod_ms": ms(total) / pods.len().max(1) as f64,
    }))
}

/// ExecSync of `true` in a running container, `rounds` times after one warm-up.
pub async fn exec_sync(c: &mut Cri, container: &str, rounds: usize) -> anyhow::Result<Value> {
    let req = || cri::ExecSyncRequest {
        container_id: container.to_string(),
        cmd: vec!["true".into()],
        timeout: 10,
    };
    let warm = c.runtime.exec_sync(req()).await?.into_inner();
    anyhow::ensure!(warm.exit_code == 0, "ExecSync true exited {}", warm.exit_code);
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        c.runtime.exec_sync(req()).await?;
        samples.push(t.elapsed());
    }
    Ok(summary(samples))
}

/// ListContainerStats over whatever runs, `rounds` times after one warm-up call.
pub async fn list_stats(c: &mut Cri, rounds: usize) -> anyhow::Result<Value> {
    let list = || cri::ListContainerStatsRequest { filter: None };
    let warm = c.runtime.list_container_stats(list()).await?.into_inner().stats;
    let with_cpu = warm.iter().filter(|s| s.cpu.is_some()).count();
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        c.runtime.list_container_stats(list()).await?;
        samples.push(t.elapsed());
    }
    let mut out = summary(samples);
    out["containers"] = json!(warm.len());
    out["with_cpu"] = json!(with_cpu);
    Ok(out)
}

/// The daemon's memory, and that of its shims, sandbox processes and infra processes as
/// they are now.
pub fn memory(t: &Target) -> Value {
    let all = procs::all();
    let shims = procs::shims(&all, &t.marker);
    let infra = procs::infra(&all, t.daemon, &shims);
    json!({
        "daemon": procs::summary(&[t.daemon]),
        "shims": procs::summary(&shims),
        "sandboxes": procs::summary(&procs::sandboxes(&all, &t.marker)),
        "infra": procs::summary(&infra),
    })
}

/// Sizes of the whole suite.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub sequential: usize,
    pub concurrent: Vec<usize>,
    pub memory_pods: usize,
    pub stats_containers: usize,
    pub rounds: usize,
}

/// Everything in order: a warm-up pod, idle memory, `sequential` pods one after another
/// and their stop+remove, each concurrent size, memory with `memory_pods` pods, then
/// ExecSync and ListContainerStats with `stats_containers` containers running.
pub async fn run(c: &mut Cri, t: &Target, s: &Sizes) -> anyhow::Result<Value> {
    c.pull(&t.image, None).await?;
    start_pod(c, t).await?;
    cleanup(c).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = memory(t);

    let sequential = sequential(c, t, s.sequential).await?;
    let stop_remove = cleanup(c).await?;

    let mut concurrent = Vec::new();
    for &n in &s.concurrent {
        let (r, _) = self::concurrent(c, t, n).await?;
        concurrent.push(r);
        cleanup(c).await?;
    }

    let (_, _) = self::concurrent(c, t, s.memory_pods).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_pods = memory(t);
    cleanup(c).await?;

    let (_, ids) = self::concurrent(c, t, s.stats_containers).await?;
    let stats = list_stats(c, s.rounds).await?;
    let exec = match ids.first() {
        Some(id) => exec_sync(c, id, s.rounds).await?,
        None => Value::Null,
    };
    cleanup(c).await?;

    Ok(json!({
        "image": t.image,
        "handler": t.handler,
        "idle": idle,
        "sequential": sequential,
        "stop_remove": stop_remove,
        "concurrent": concurrent,
        "memory_pods": s.memory_pods,
        "with_pods": with_pods,
        "exec_sync": exec,
        "list_container_stats": stats,
    }))
}
