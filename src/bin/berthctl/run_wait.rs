//! Waiting for a `run` container in the foreground: its exit code, and its log followed
//! (CRI log records turned back into the bytes the process wrote) until it exits.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;
use std::time::Duration;

use berth_proto as pb;
use berth_proto::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use anyhow::Context as _;

use crate::explain;

/// The exit code once the container exited, `None` while it runs.
pub async fn exited(runtime: &mut RuntimeServiceClient<Channel>, id: &str) -> anyhow::Result<Option<i32>> {
    let status = runtime
        .container_status(pb::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .map_err(explain)?
        .into_inner()
        .status
        .context("container status missing")?;
    Ok((status.state == pb::ContainerState::ContainerExited as i32).then_some(status.exit_code))
}

/// Waits for the exit (after an attach ended); Ctrl-C stops the container.
pub async fn wait_exit(runtime: &mut RuntimeServiceClient<Channel>, id: &str) -> anyhow::Result<i32> {
    let mut interrupted = false;
    loop {
        if let Some(code) = exited(runtime, id).await? {
            return Ok(code);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = runtime.stop_container(pb::StopContainerRequest { container_id: id.into(), timeout: 10 }).await;
            }
        }
    }
}

/// Copies the container's output from its CRI log to stdout/stderr until it exits; Ctrl-C
/// stops the container (10 s grace). Returns its exit code.
pub async fn follow(runtime: &mut RuntimeServiceClient<Channel>, id: &str, log: &Path) -> anyhow::Result<i32> {
    let mut reader = LogReader::default();
    let mut interrupted = false;
    loop {
        reader.copy_new(log)?;
        if let Some(code) = exited(runtime, id).await? {
            reader.copy_new(log)?;
            return Ok(code);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = runtime.stop_container(pb::StopContainerRequest { container_id: id.into(), timeout: 10 }).await;
            }
        }
    }
}

/// Reads a CRI log file incrementally and writes each entry's payload to stdout or stderr.
#[derive(Debug, Default)]
pub struct LogReader {
    offset: u64,
    partial: Vec<u8>,
}

impl LogReader {
    pub fn copy_new(&mut self, path: &Path) -> anyhow::Result<()> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Ok(());
        };
        f.seek(std::io::SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let Some(e) = crate::logs::parse_entry(&line[..line.len() - 1]) else {
                continue;
            };
            let w: &mut dyn std::io::Write = if e.stderr { &mut err } else { &mut out };
            w.write_all(e.text)?;
            if !e.partial {
                w.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(())
    }
}
