//! The daemon side of the shim boundary: `berth-shim start ...` creates a container and
//! leaves a shim serving newline-delimited JSON on `<bundle>/shim.sock` (see
//! `shim/src/api.rs` for the message types). The shim outlives berthd; after a restart
//! berthd reconnects to the socket, and when the shim is gone, `<bundle>/exit.json` says
//! how the container ended.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("starting the shim: {0}")]
    Start(String),
    #[error("shim at {path}: {message}")]
    Call { path: PathBuf, message: String },
    #[error("shim at {path} is gone")]
    Gone { path: PathBuf },
    #[error("shim call timed out after {0:?}")]
    Timeout(Duration),
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
pub struct Exit {
    pub exit_code: i32,
    pub finished_at: i64,
    #[serde(default)]
    pub oom_killed: bool,
}

/// What the shim reports about its container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct ShimState {
    pub status: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub started_at: i64,
    #[serde(default)]
    pub exit: Option<Exit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct ExecResult {
    pub exit_code: i32,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub timed_out: bool,
}

pub struct StartArgs<'a> {
    pub binary: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub runtime: &'a Path,
    pub runtime_root: &'a Path,
    pub log_path: &'a Path,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub systemd_cgroup: bool,
}

/// Runs `berth-shim start` and returns the container's init pid once `runc create` is done.
pub async fn start(a: StartArgs<'_>) -> Result<u32, ShimError> {
    let mut cmd = tokio::process::Command::new(a.binary);
    cmd.arg("start")
        .arg("--id")
        .arg(a.id)
        .arg("--bundle")
        .arg(a.bundle)
        .arg("--runtime")
        .arg(a.runtime)
        .arg("--runtime-root")
        .arg(a.runtime_root)
        .arg("--log-path")
        .arg(a.log_path);
    for (flag, on) in [
        ("--stdin", a.stdin),
        ("--stdin-once", a.stdin_once),
        ("--tty", a.tty),
        ("--systemd-cgroup", a.systemd_cgroup),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| ShimError::Start("berth-shim start did not finish within 60s".into()))?
        .map_err(|e| ShimError::Start(format!("{}: {e}", a.binary.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        if let Some(pid) = stdout.trim().strip_prefix("ok ").and_then(|p| p.trim().parse().ok()) {
            return Ok(pid);
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let msg = stderr.trim().strip_prefix("error ").unwrap_or(stderr.trim());
    Err(ShimError::Start(if msg.is_empty() {
        format!("berth-shim exited with {}", out.status)
    } else {
        msg.to_string()
    }))
}

pub fn socket(bundle: &Path) -> PathBuf {
    bundle.join("shim.sock")
}

/// Connects to a shim's socket. A socket path may hold at most 107 bytes; it is reached
/// through the bundle directory's fd so long state directories work too.
async fn connect(bundle: &Path) -> Result<tokio::net::UnixStream, ShimError> {
    let gone = || ShimError::Gone { path: socket(bundle) };
    let dir = std::fs::File::open(bundle).map_err(|_| gone())?;
    let short = format!("/proc/self/fd/{}/shim.sock", std::os::fd::AsRawFd::as_raw_fd(&dir));
    tokio::net::UnixStream::connect(&short).await.map_err(|_| gone())
}

/// One request, one response line.
pub async fn call(bundle: &Path, request: Value, timeout: Duration) -> Result<Value, ShimError> {
    let path = socket(bundle);
    let fut = async {
        let mut stream = connect(bundle).await?;
        let mut line = serde_json::to_vec(&request).unwrap_or_default();
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|e| io_error(&path, e))?;
        let mut reader = tokio::io::BufReader::new(stream);
        let mut response = String::new();
        let n = reader.read_line(&mut response).await.map_err(|e| io_error(&path, e))?;
        if n == 0 {
            return Err(ShimError::Gone { path: path.clone() });
        }
        let value: Value = serde_json::from_str(&response).map_err(|e| ShimError::Call {
            path: path.clone(),
            message: format!("bad response: {e}"),
        })?;
        if let Some(err) = value.get("error").and_then(|e| e.as_str()) {
            return Err(ShimError::Call {
                path: path.clone(),
                message: err.to_string(),
            });
        }
        Ok(value)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ShimError::Timeout(timeout))?
}

/// A failed read or write on the shim's connection. A reset or broken connection means the
/// shim died during the call (killed, say): that is `Gone`, as a refused connection is, so
/// the container is reported lost instead of the call failing.
fn io_error(path: &Path, e: std::io::Error) -> ShimError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    ) {
        return ShimError::Gone { path: path.into() };
    }
    ShimError::Call {
        path: path.into(),
        message: e.to_string(),
    }
}

const QUICK: Duration = Duration::from_secs(10);

pub async fn state(bundle: &Path) -> Result<ShimState, ShimError> {
    let v = call(bundle, json!({"op": "state"}), QUICK).await?;
    serde_json::from_value(v).map_err(|e| ShimError::Call {
        path: socket(bundle),
        message: e.to_string(),
    })
}

pub async fn start_container(bundle: &Path) -> Result<(), ShimError> {
    call(bundle, json!({"op": "start"}), Duration::from_secs(60))
        .await
        .map(|_| ())
}

pub async fn kill(bundle: &Path, signal: i32, all: bool) -> Result<(), ShimError> {
    call(bundle, json!({"op": "kill", "signal": signal, "all": all}), QUICK)
        .await
        .map(|_| ())
}

/// Waits up to `timeout` for the container to stop; true when it did.
pub async fn wait(bundle: &Path, timeout: Duration) -> Result<bool, ShimError> {
    let v = call(
        bundle,
        json!({"op": "wait", "timeout_ms": timeout.as_millis() as u64}),
        timeout + QUICK,
    )
    .await?;
    Ok(!v.get("timed_out").and_then(|t| t.as_bool()).unwrap_or(false))
}

pub async fn delete(bundle: &Path) -> Result<(), ShimError> {
    call(bundle, json!({"op": "delete"}), Duration::from_secs(30))
        .await
        .map(|_| ())
}

pub async fn reopen_log(bundle: &Path) -> Result<(), ShimError> {
    call(bundle, json!({"op": "reopen_log"}), QUICK).await.map(|_| ())
}

pub struct ExecArgs {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub timeout: Option<Duration>,
    pub max_output: usize,
}

pub async fn exec(bundle: &Path, a: ExecArgs) -> Result<ExecResult, ShimError> {
    let timeout_ms = a.timeout.map(|t| t.as_millis() as u64).unwrap_or(0);
    let request = json!({
        "op": "exec",
        "args": a.args,
        "env": a.env,
        "cwd": a.cwd,
        "user": {"uid": a.uid, "gid": a.gid, "additional_gids": a.additional_gids},
        "tty": false,
        "timeout_ms": timeout_ms,
        "max_output": a.max_output,
    });
    // The shim enforces the exec timeout; berthd only guards against a stuck shim.
    let guard = a.timeout.unwrap_or(Duration::from_secs(24 * 3600)) + Duration::from_secs(30);
    let v = call(bundle, request, guard).await?;
    serde_json::from_value(v).map_err(|e| ShimError::Call {
        path: socket(bundle),
        message: e.to_string(),
    })
}

/// The exit record the shim leaves in the bundle.
pub fn read_exit(bundle: &Path) -> Option<Exit> {
    serde_json::from_slice(&std::fs::read(bundle.join("exit.json")).ok()?).ok()
}

/// An attach session with a container's shim (see `berth_shim::attach` for the frames).
pub struct Attached {
    pub reader: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    pub writer: tokio::net::unix::OwnedWriteHalf,
}

/// Opens an attach session: the shim answers, then streams the container's output.
pub async fn attach(bundle: &Path, stdin: bool, stdout: bool, stderr: bool) -> Result<Attached, ShimError> {
    let path = socket(bundle);
    let gone = || ShimError::Gone { path: path.clone() };
    let stream = connect(bundle).await?;
    let (r, mut writer) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(r);
    let mut line = serde_json::to_vec(&json!({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}))
        .unwrap_or_default();
    line.push(b'\n');
    let call_err = |message: String| ShimError::Call {
        path: path.clone(),
        message,
    };
    let answer = async {
        writer.write_all(&line).await.map_err(|e| call_err(e.to_string()))?;
        let mut response = String::new();
        if reader
            .read_line(&mut response)
            .await
            .map_err(|e| call_err(e.to_string()))?
            == 0
        {
            return Err(gone());
        }
        let value: Value = serde_json::from_str(&response).map_err(|e| call_err(format!("bad response: {e}")))?;
        match value.get("error").and_then(Value::as_str) {
            Some(err) => Err(call_err(err.to_string())),
            None => Ok(()),
        }
    };
    tokio::time::timeout(QUICK, answer)
        .await
        .map_err(|_| ShimError::Timeout(QUICK))??;
    Ok(Attached { reader, writer })
}
