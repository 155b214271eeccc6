//! Starting, watching and stopping a sandbox's infra process (`berth-pause`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;

/// How to start the infra process.
pub struct InfraArgs<'a> {
    pub binary: &'a Path,
    /// The pod's own user namespace, entered first.
    pub userns: Option<&'a Path>,
    pub netns: Option<&'a Path>,
    pub uts: bool,
    pub hostname: &'a str,
    pub ipc: bool,
    pub pid: bool,
    pub sysctls: Vec<(String, String)>,
    /// Told the process's pid as soon as it exists, before it reports ready, so that a
    /// crash in between leaves a pid to stop.
    pub spawned: Box<dyn FnOnce(u32) + Send + 'a>,
}

/// Starts the infra process in its own process group (so a terminal's Ctrl-C to berthd
/// does not reach it, and it outlives berthd) and returns the pid containers join once it
/// reported its namespaces ready. The child is reaped by a background task.
pub async fn start(args: InfraArgs<'_>) -> Result<u32, String> {
    let mut cmd = tokio::process::Command::new(args.binary);
    if let Some(ns) = args.userns {
        cmd.arg("--userns").arg(ns);
    }
    if let Some(ns) = args.netns {
        cmd.arg("--netns").arg(ns);
    }
    if args.uts {
        cmd.arg("--uts");
        if !args.hostname.is_empty() {
            cmd.arg("--hostname").arg(args.hostname);
        }
    }
    if args.ipc {
        cmd.arg("--ipc");
    }
    if args.pid {
        cmd.arg("--pid");
    }
    for (k, v) in &args.sysctls {
        cmd.arg("--sysctl").arg(format!("{k}={v}"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", args.binary.display()))?;
    if let Some(pid) = child.id() {
        (args.spawned)(pid);
    }
    let stdout = child.stdout.take().ok_or("infra process has no stdout")?;
    let stderr = child.stderr.take().ok_or("infra process has no stderr")?;
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let pid = match read {
        Ok(Ok(_)) => line.trim().strip_prefix("ready ").and_then(|p| p.parse::<u32>().ok()),
        _ => None,
    };
    let Some(pid) = pid else {
        let _ = child.start_kill();
        let status = child.wait().await.ok();
        let mut err = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(stderr), &mut err).await;
        return Err(format!("infra process failed ({status:?}): {}", err.trim()));
    };
    tokio::spawn(async move {
        let status = child.wait().await;
        tracing::debug!(pid, ?status, "infra process exited");
    });
    Ok(pid)
}

/// The start time of `pid` (field 22 of /proc/PID/stat), to tell it from a reused pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the infra process recorded as (`pid`, `started`) still runs.
pub fn alive(pid: u32, started: u64) -> bool {
    start_time(pid) == Some(started) && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

/// SIGTERM, then SIGKILL after `grace`; returns once the process is gone.
pub async fn stop(pid: u32, started: u64, grace: Duration) {
    use rustix::process::{kill_process, Pid, Signal};
    let Some(p) = Pid::from_raw(pid as i32) else { return };
    if !alive(pid, started) {
        return;
    }
    let _ = kill_process(p, Signal::TERM);
    let deadline = tokio::time::Instant::now() + grace;
    while alive(pid, started) {
        if tokio::time::Instant::now() >= deadline {
            let _ = kill_process(p, Signal::KILL);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
