//! What a CRI client that connects anew pays before its first answer: kubelet's plugins,
//! crictl and every `berthctl` call open a connection per command.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::cri::{v1 as cri, Cri};
use serde_json::Value;

use crate::suite::summary;

/// `rounds` times: a new connection to `socket` and one `Version` over it, timed together.
pub async fn new_connections(socket: &Path, rounds: usize) -> anyhow::Result<Value> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut c = Cri::connect(socket).await?;
        c.runtime.version(cri::VersionRequest::default()).await?;
        samples.push(t.elapsed());
    }
    Ok(summary(samples))
}

/// `rounds` runs of `crictl version` against `endpoint`, each timed from spawn to exit
/// (the client's own start-up included, the same for every runtime).
pub async fn crictl_version(crictl: &Path, endpoint: &str, rounds: usize) -> anyhow::Result<Value> {
    let mut samples: Vec<Duration> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let out = tokio::process::Command::new(crictl)
            .args(["--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "version"])
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        samples.push(t.elapsed());
        anyhow::ensure!(
            out.status.success(),
            "crictl version: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(summary(samples))
}
