//! `cri-bench`: times CRI calls against any runtime's socket through the same client, so
//! Berth and containerd are measured alike. Prints one JSON object on stdout.
//!
//! ```text
//! cri-bench sandboxes ENDPOINT [COUNT]      RunPodSandbox one after another, then stop+remove
//! cri-bench pods ENDPOINT IMAGE [COUNT]      RunPodSandbox + CreateContainer + StartContainer
//!                                            one pod after another; pods are left running
//!                                            (the caller measures memory, then `cleanup`)
//! cri-bench stats ENDPOINT [ROUNDS]          ListContainerStats ROUNDS times (after one
//!                                            warm-up call) over whatever runs there
//! cri-bench cleanup ENDPOINT                 stop and remove every pod
//! ```

use std::time::{Duration, Instant};

use berth_e2e::cri::{v1 as cri, Cri};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

fn summary(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    serde_json::json!({
        "n": samples.len(),
        "median_ms": percentile(&samples, 0.5),
        "p90_ms": percentile(&samples, 0.9),
        "max_ms": percentile(&samples, 1.0),
    })
}

fn pod(i: usize) -> cri::PodSandboxConfig {
    berth_e2e::pod::pod_config(&format!("bench-{}-{i}", std::process::id()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(endpoint)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: cri-bench sandboxes|pods|stats|cleanup ENDPOINT [IMAGE] [COUNT]");
    };
    let socket = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    let mut c = Cri::connect(std::path::Path::new(socket)).await?;
    match mode.as_str() {
        "sandboxes" => {
            let count: usize = args.get(3).map(|c| c.parse()).transpose()?.unwrap_or(30);
            let mut run = Vec::new();
            let mut ids = Vec::new();
            for i in 0..count {
                let t = Instant::now();
                let req = cri::RunPodSandboxRequest {
                    config: Some(pod(i)),
                    runtime_handler: String::new(),
                };
                let id = c.runtime.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id;
                run.push(t.elapsed());
                ids.push(id);
            }
            let t = Instant::now();
            for id in &ids {
                c.runtime
                    .stop_pod_sandbox(cri::StopPodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    })
                    .await?;
                c.runtime
                    .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    })
                    .await?;
            }
            let teardown = t.elapsed();
            let out = serde_json::json!({
                "run_pod_sandbox": summary(run),
                "stop_remove_total_ms": teardown.as_secs_f64() * 1000.0,
            });
            println!("{out}");
        }
        "pods" => {
            let image = args
                .get(3)
                .ok_or_else(|| anyhow::anyhow!("pods needs an IMAGE"))?
                .clone();
            let count: usize = args.get(4).map(|c| c.parse()).transpose()?.unwrap_or(30);
            c.pull(&image, None).await?;
            let (mut runp, mut create, mut start, mut total) = (vec![], vec![], vec![], vec![]);
            for i in 0..count {
                let config = pod(i);
                let t0 = Instant::now();
                let req = cri::RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                };
                let pod_id = c.runtime.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id;
                let t1 = Instant::now();
                let ctr = cri::ContainerConfig {
                    metadata: Some(cri::ContainerMetadata {
                        name: "app".into(),
                        attempt: 0,
                    }),
                    image: Some(cri::ImageSpec {
                        image: image.clone(),
                        ..Default::default()
                    }),
                    command: vec!["sleep".into(), "3600".into()],
                    linux: Some(cri::LinuxContainerConfig::default()),
                    ..Default::default()
                };
                let req = cri::CreateContainerRequest {
                    pod_sandbox_id: pod_id,
                    config: Some(ctr),
                    sandbox_config: Some(config),
                };
                let id = c.runtime.create_container(req).await?.into_inner().container_id;
                let t2 = Instant::now();
                c.runtime
                    .start_container(cri::StartContainerRequest { container_id: id })
                    .await?;
                let t3 = Instant::now();
                runp.push(t1 - t0);
                create.push(t2 - t1);
                start.push(t3 - t2);
                total.push(t3 - t0);
            }
            let out = serde_json::json!({
                "run_pod_sandbox": summary(runp),
                "create_container": summary(create),
                "start_container": summary(start),
                "pod_start_total": summary(total),
            });
            println!("{out}");
        }
        "stats" => {
            let rounds: usize = args.get(3).map(|c| c.parse()).transpose()?.unwrap_or(50);
            let list = || cri::ListContainerStatsRequest { filter: None };
            let warm = c.runtime.list_container_stats(list()).await?.into_inner().stats;
            let with_cpu = warm.iter().filter(|s| s.cpu.is_some()).count();
            let mut samples = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                c.runtime.list_container_stats(list()).await?;
                samples.push(t.elapsed());
            }
            let out = serde_json::json!({
                "containers": warm.len(),
                "with_cpu": with_cpu,
                "list_container_stats": summary(samples),
            });
            println!("{out}");
        }
        "cleanup" => {
            let pods = c
                .runtime
                .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
                .await?
                .into_inner()
                .items;
            let t = Instant::now();
            for p in &pods {
                c.runtime
                    .stop_pod_sandbox(cri::StopPodSandboxRequest {
                        pod_sandbox_id: p.id.clone(),
                    })
                    .await?;
                c.runtime
                    .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                        pod_sandbox_id: p.id.clone(),
                    })
                    .await?;
            }
            println!(
                "{}",
                serde_json::json!({"pods": pods.len(), "stop_remove_total_ms": t.elapsed().as_secs_f64() * 1000.0})
            );
        }
        other => anyhow::bail!("unknown mode {other:?}"),
    }
    Ok(())
}
