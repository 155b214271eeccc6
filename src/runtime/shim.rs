//! The daemon side of the shim boundary: `berth-shim start ...` creates a container and
//! leaves a shim serving newline-delimited JSON on `<bundle>/shim.sock` (see
//! `shim/src/api.rs` for the message types). The shim outlives berthd; after a restart
//! berthd reconnects to the socket, and when the shim is gone, `<bundle>/exit.json` says
//! how the container ended.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_shim::api::{self, ExecRequest, ExecStreamRequest, Request, Response, User};
pub use berth_shim::api::{Exit, StateResponse as ShimState, Status};
use berth_shim::client::{ClientError, ShimClient};

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

/// What an ExecSync returned, its output decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
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
    /// The runtime handler's global flags.
    pub runtime_args: &'a [String],
    /// The runtime is gVisor's runsc (see the shim's `serve::gvisor`).
    pub gvisor: bool,
    /// The runtime is a containerd shim v2 (see the shim's `serve::task`).
    pub shim_v2: bool,
    /// berthd's Events service, for a shim v2 to publish to.
    pub events_address: Option<&'a Path>,
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
    for arg in a.runtime_args {
        cmd.arg("--runtime-arg").arg(arg);
    }
    if let Some(events) = a.events_address.filter(|_| a.shim_v2) {
        cmd.arg("--events-address").arg(events);
    }
    for (flag, on) in [
        ("--stdin", a.stdin),
        ("--stdin-once", a.stdin_once),
        ("--tty", a.tty),
        ("--systemd-cgroup", a.systemd_cgroup),
        ("--gvisor", a.gvisor),
        ("--shim-v2", a.shim_v2),
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
    bundle.join(api::SOCKET)
}

/// Connects to a shim's socket. A socket path may hold at most 107 bytes; it is reached
/// through the bundle directory's fd so long state directories work too.
async fn connect(bundle: &Path) -> Result<ShimClient, ShimError> {
    let gone = || ShimError::Gone { path: socket(bundle) };
    let dir = std::fs::File::open(bundle).map_err(|_| gone())?;
    let short = format!(
        "/proc/self/fd/{}/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir),
        api::SOCKET
    );
    ShimClient::connect(&short).await.map_err(|_| gone())
}

/// One request, one response, on a connection of its own.
async fn call(bundle: &Path, request: &Request, timeout: Duration) -> Result<Response, ShimError> {
    let fut = async {
        connect(bundle)
            .await?
            .call(request, timeout)
            .await
            .map_err(|e| shim_error(bundle, e))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ShimError::Timeout(timeout))?
}

/// A client error as the daemon reports it. A reset or broken connection, or one closed
/// without an answer, means the shim died during the call (killed, say): that is `Gone`, as
/// a refused connection is, so the container is reported lost instead of the call failing.
fn shim_error(bundle: &Path, e: ClientError) -> ShimError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let path = socket(bundle);
    match e {
        ClientError::Gone { .. } | ClientError::Closed => ShimError::Gone { path },
        ClientError::Io(io)
            if matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
            ) =>
        {
            ShimError::Gone { path }
        }
        ClientError::Timeout(t) => ShimError::Timeout(t),
        ClientError::Shim(message) => ShimError::Call { path, message },
        e @ (ClientError::Io(_) | ClientError::Protocol(_)) => ShimError::Call {
            path,
            message: e.to_string(),
        },
    }
}

/// A response of the wrong shape for its request.
fn unexpected(bundle: &Path, what: &str, r: Response) -> ShimError {
    ShimError::Call {
        path: socket(bundle),
        message: format!("bad response to {what}: {r:?}"),
    }
}

const QUICK: Duration = Duration::from_secs(10);

pub async fn state(bundle: &Path) -> Result<ShimState, ShimError> {
    match call(bundle, &Request::State, QUICK).await? {
        Response::State(s) => Ok(s),
        r => Err(unexpected(bundle, "state", r)),
    }
}

/// A request answered with `{"ok":true}`.
async fn simple(bundle: &Path, request: Request, timeout: Duration) -> Result<(), ShimError> {
    match call(bundle, &request, timeout).await? {
        Response::Ok { .. } => Ok(()),
        r => Err(unexpected(bundle, &format!("{request:?}"), r)),
    }
}

pub async fn start_container(bundle: &Path) -> Result<(), ShimError> {
    simple(bundle, Request::Start, Duration::from_secs(60)).await
}

pub async fn kill(bundle: &Path, signal: i32, all: bool) -> Result<(), ShimError> {
    simple(bundle, Request::Kill { signal, all }, QUICK).await
}

/// Waits up to `timeout` for the container to stop; true when it did.
pub async fn wait(bundle: &Path, timeout: Duration) -> Result<bool, ShimError> {
    let request = Request::Wait {
        timeout_ms: timeout.as_millis() as u64,
    };
    match call(bundle, &request, timeout + QUICK).await? {
        Response::Wait(w) => Ok(!w.timed_out),
        r => Err(unexpected(bundle, "wait", r)),
    }
}

/// The pid of the shim serving `bundle` while it runs: its pid file, checked against the
/// process's command line (which names the bundle), so a reused pid is never taken for it.
pub fn running_pid(bundle: &Path) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt as _;
    let pid: u32 = std::fs::read_to_string(bundle.join(api::PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let bundle = bundle.as_os_str().as_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == bundle).then_some(pid)
}

/// Ends a shim that does not answer (one still inside `runc create` when berthd died) and,
/// as it leads its own session, everything started under it; returns once it is gone.
pub async fn end_unanswering(pid: u32) {
    use rustix::process::{kill_process, kill_process_group, Pid, Signal};
    let Some(p) = Pid::from_raw(pid as i32) else { return };
    // Its own process group only once `serve` ran setsid (never berthd's group).
    let leads_group = rustix::process::getpgid(Some(p)).is_ok_and(|g| g == p);
    let _ = if leads_group {
        kill_process_group(p, Signal::KILL)
    } else {
        kill_process(p, Signal::KILL)
    };
    for _ in 0..200 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = stat
            .rfind(')')
            .is_none_or(|i| stat[i + 1..].trim_start().starts_with(['Z', 'X']));
        if gone {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends the container a shim serves, and the shim: SIGKILL to all its processes, a wait of
/// up to 5 s, delete; a shim that does not answer (after a crash, one can still be inside
/// `runc create`) is ended by pid with what runs under it. Runtime state that a dead shim
/// left is the caller's to take back. True when the shim answered (it took its container
/// down itself).
pub async fn take_down(bundle: &Path, id: &str) -> bool {
    let mut answered = false;
    if socket(bundle).exists() {
        match kill(bundle, 9, true).await {
            Err(ShimError::Timeout(_)) => {}  // not answering: ended below
            Err(ShimError::Gone { .. }) => {} // gone: its socket file stayed
            _ => {
                let _ = wait(bundle, Duration::from_secs(5)).await;
                answered = delete(bundle).await.is_ok();
            }
        }
    }
    if let Some(pid) = running_pid(bundle) {
        tracing::warn!(container = id, pid, "ending a shim that does not answer");
        end_unanswering(pid).await;
    }
    answered
}

pub async fn delete(bundle: &Path) -> Result<(), ShimError> {
    simple(bundle, Request::Delete, Duration::from_secs(30)).await
}

pub async fn reopen_log(bundle: &Path) -> Result<(), ShimError> {
    simple(bundle, Request::ReopenLog, QUICK).await
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
    let request = Request::Exec(ExecRequest {
        args: a.args,
        env: a.env,
        cwd: a.cwd,
        user: Some(User {
            uid: a.uid,
            gid: a.gid,
            additional_gids: a.additional_gids,
        }),
        tty: false,
        timeout_ms: a.timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
        max_output: a.max_output,
    });
    // The shim enforces the exec timeout; berthd only guards against a stuck shim.
    let guard = a.timeout.unwrap_or(Duration::from_secs(24 * 3600)) + Duration::from_secs(30);
    let r = match call(bundle, &request, guard).await? {
        Response::Exec(r) => r,
        r => return Err(unexpected(bundle, "exec", r)),
    };
    let decode = |what: &str, text: &str| {
        berth_shim::b64::decode(text).map_err(|e| ShimError::Call {
            path: socket(bundle),
            message: format!("exec {what}: {e}"),
        })
    };
    Ok(ExecResult {
        exit_code: r.exit_code,
        stdout: decode("stdout", &r.stdout)?,
        stderr: decode("stderr", &r.stderr)?,
        timed_out: r.timed_out,
    })
}

/// The exit record the shim leaves in the bundle.
pub fn read_exit(bundle: &Path) -> Option<Exit> {
    let record: api::ExitRecord = serde_json::from_slice(&std::fs::read(bundle.join(api::EXIT_FILE)).ok()?).ok()?;
    Some(record.exit())
}

/// An attach session with a container's shim (see `berth_shim::attach` for the frames).
pub struct Attached {
    pub reader: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    pub writer: tokio::net::unix::OwnedWriteHalf,
}

/// Opens an attach session: the shim answers, then streams the container's output.
pub async fn attach(bundle: &Path, stdin: bool, stdout: bool, stderr: bool) -> Result<Attached, ShimError> {
    framed(bundle, &Request::Attach { stdin, stdout, stderr }, "attach").await
}

/// Starts an interactive exec in the shim (containers of a shim v2): the shim answers,
/// then streams the process's output, its exit status last.
pub async fn exec_stream(bundle: &Path, request: ExecStreamRequest) -> Result<Attached, ShimError> {
    framed(bundle, &Request::ExecStream(request), "exec stream").await
}

/// A request whose answer switches the connection to attach frames.
async fn framed(bundle: &Path, request: &Request, what: &str) -> Result<Attached, ShimError> {
    let mut client = connect(bundle).await?;
    match client.call(request, QUICK).await.map_err(|e| shim_error(bundle, e))? {
        Response::Ok { .. } => {}
        r => return Err(unexpected(bundle, what, r)),
    }
    let (reader, writer) = client.into_parts();
    Ok(Attached { reader, writer })
}
