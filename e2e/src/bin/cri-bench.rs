//! `cri-bench`: times CRI calls against any runtime's socket through the same client, so
//! Berth and containerd are measured alike. Prints one JSON object on stdout.
//!
//! ```text
//! cri-bench sandboxes ENDPOINT [COUNT]   RunPodSandbox one after another, then stop+remove
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
        anyhow::bail!("usage: cri-bench sandboxes ENDPOINT [COUNT]");
    };
    let count: usize = args.get(3).map(|c| c.parse()).transpose()?.unwrap_or(30);
    let socket = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    let mut c = Cri::connect(std::path::Path::new(socket)).await?;
    match mode.as_str() {
        "sandboxes" => {
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
        other => anyhow::bail!("unknown mode {other:?}"),
    }
    Ok(())
}
