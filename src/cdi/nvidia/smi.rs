//! What `nvidia-smi -L` reports (GPU and MIG indexes and UUIDs), run with a time limit.

use std::io::{self, Read};
use std::process::Command;
use std::time::{Duration, Instant};

use super::types::*;

/// Parses `nvidia-smi -L` output.
pub(super) fn parse_smi_list(text: &str) -> Vec<SmiGpu> {
    let mut gpus: Vec<SmiGpu> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let uuid = line
            .rfind("(UUID:")
            .and_then(|i| line[i + 6..].split(')').next())
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        if let Some(rest) = line.strip_prefix("GPU ") {
            let Some(index) = rest.split(':').next().and_then(|n| n.trim().parse::<u32>().ok()) else {
                continue;
            };
            gpus.push(SmiGpu {
                index,
                uuid: uuid.filter(|u| u.starts_with("GPU-")),
                migs: Vec::new(),
            });
        } else if line.starts_with("MIG ") {
            let Some(gpu) = gpus.last_mut() else {
                continue;
            };
            let Some(index) = line
                .split_once("Device")
                .and_then(|(_, rest)| rest.split(':').next())
                .and_then(|n| n.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let ids = uuid.as_deref().and_then(|u| {
                let mut parts = u.strip_prefix("MIG-GPU-")?.rsplitn(3, '/');
                let ci = parts.next()?.parse().ok()?;
                let gi = parts.next()?.parse().ok()?;
                Some((gi, ci))
            });
            gpu.migs.push(SmiMig { index, uuid, ids });
        }
    }
    gpus
}

/// Runs a command, returning its stdout when it exits 0 within `timeout`.
pub(super) fn run_with_timeout(mut cmd: Command, timeout: Duration) -> io::Result<String> {
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(io::Error::other(format!("exit {status}")));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
