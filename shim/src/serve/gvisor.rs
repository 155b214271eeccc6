//! gVisor (`runsc`) containers of a pod sandbox differ from runc's in two ways:
//! - their stdio is the stdio of `runsc start`, not of `runsc create`;
//! - the pid runsc reports is the sandbox's, shared by the whole pod, so the exit comes
//!   from `runsc wait ID`, which prints `{"id":..,"exitStatus":N}` (128+signal when killed).
//!
//! The pod's own sandbox container (`io.kubernetes.cri.container-type: sandbox`) is run
//! like a runc container: its process is the sandbox, a child this shim reaps.

use super::*;

/// The annotation runsc reads to tell a pod's sandbox container from its other containers.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// Whether the bundle's container joins an existing gVisor sandbox.
pub(super) fn joins_sandbox() -> bool {
    let Ok(bytes) = std::fs::read("config.json") else {
        return false;
    };
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|c| {
            c.get("annotations")?
                .get(CONTAINER_TYPE)?
                .as_str()
                .map(|t| t == "container")
        })
        .unwrap_or(false)
}

/// The container's stdio, held from `create` until `start` hands it to `runsc start`.
pub(super) struct PendingStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// What the shim keeps for a container that joins a gVisor sandbox.
pub(super) struct Joined {
    pub stdio: RefCell<Option<PendingStdio>>,
    /// Fulfilled with the exit code once `runsc wait` answers (or at once when the
    /// container is killed before it ever started).
    pub exit: RefCell<Option<oneshot::Sender<i32>>>,
}

/// `runsc create` for a container joining a sandbox: no stdio (runsc ignores it here);
/// the pipes are made now and kept for `start`.
pub(super) async fn create(args: &Args, runc: &Runc, reaper: &Reaper) -> Result<(Container, Joined), String> {
    if args.tty {
        return Err("a terminal (tty: true) is not supported for containers of a gVisor pod".into());
    }
    let io_err = |what: &str, e: io::Error| format!("{what}: {e}");
    let (out_r, out_w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
    let (err_r, err_w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
    let (stdin_keep, stdin_child) = if args.stdin {
        let (r, w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
        (Some(w), Some(r))
    } else {
        (None, None)
    };
    let (cerr_r, cerr_w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
    let cerr_rx = fdio::receiver(cerr_r).map_err(|e| io_err("pipe", e))?;
    let mut cmd = runc.command();
    cmd.arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(args.bundle.join(INIT_PID_FILE))
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(cerr_w);
    let (_, exited) = fdio::spawn(cmd, reaper).map_err(|e| format!("{}: {e}", runc.bin.display()))?;
    let code = exited.await.unwrap_or(-1);
    if code != 0 {
        return Err(create::create_error(&cerr_rx, code).await);
    }
    let init_pid = read_pid(INIT_PID_FILE).ok_or_else(|| format!("runsc create left no readable {INIT_PID_FILE}"))?;
    let stdin = match stdin_keep {
        Some(w) => Some(StdinSink {
            tx: fdio::sender(w).map_err(|e| io_err("pipe", e))?,
            pty: false,
        }),
        None => None,
    };
    let (tx, rx) = oneshot::channel();
    let container = Container {
        init_pid,
        init_exit: rx,
        outputs: vec![
            ("stdout", fdio::receiver(out_r).map_err(|e| io_err("pipe", e))?),
            ("stderr", fdio::receiver(err_r).map_err(|e| io_err("pipe", e))?),
        ],
        stdin,
        console: None,
    };
    let joined = Joined {
        stdio: RefCell::new(Some(PendingStdio {
            stdin: stdin_child,
            stdout: out_w,
            stderr: err_w,
        })),
        exit: RefCell::new(Some(tx)),
    };
    Ok((container, joined))
}

impl Shim {
    /// `runsc start ID` with the container's stdio, then a task that waits for its exit.
    pub(super) async fn start_joined(&self, joined: &Joined) -> Result<(), String> {
        let stdio = joined
            .stdio
            .borrow_mut()
            .take()
            .ok_or("the container's stdio is gone")?;
        let mut cmd = self.runc.command();
        cmd.args(["start", &self.id])
            .stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let (_, exited) = fdio::spawn(cmd, &self.reaper).map_err(|e| format!("{}: {e}", self.runc.bin.display()))?;
        match exited.await {
            Ok(0) => {}
            Ok(code) => return Err(format!("runsc start exited with {code}{}", runsc_error(&self.runc.log))),
            Err(_) => return Err("runsc start: exit status lost".into()),
        }
        let Some(tx) = joined.exit.borrow_mut().take() else {
            return Ok(());
        };
        let mut cmd = self.runc.command();
        cmd.args(["wait", &self.id]);
        let reaper = self.reaper.clone();
        let id = self.id.clone();
        spawn_local(async move {
            let code = match crate::runc::output(cmd, &reaper).await {
                Ok(out) => parse_wait(&out).unwrap_or_else(|| {
                    log!("runsc wait {id}: unreadable answer {:?}", String::from_utf8_lossy(&out));
                    255
                }),
                Err(e) => {
                    log!("runsc wait {id}: {e}");
                    255
                }
            };
            let _ = tx.send(code);
        });
        Ok(())
    }

    /// SIGKILLs an exec'd process inside the sandbox by the pid runsc wrote to `file`
    /// (killing `runsc exec` alone leaves it running there, holding its output open).
    pub(super) async fn kill_in_sandbox(&self, file: &str) {
        for _ in 0..100 {
            if let Some(pid) = read_pid(file) {
                let cmd = self.runc.kill_in_sandbox(&self.id, pid, 9);
                if let Err(e) = crate::runc::output(cmd, &self.reaper).await {
                    log!("killing exec'd process {pid} in the sandbox: {e}");
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A container killed before it started never runs: it has exited.
    pub(super) fn killed_before_start(&self, joined: &Joined, signal: i32) {
        joined.stdio.borrow_mut().take();
        if let Some(tx) = joined.exit.borrow_mut().take() {
            let _ = tx.send(128 + signal);
        }
    }
}

/// `{"id":"..","exitStatus":N}`.
fn parse_wait(out: &[u8]) -> Option<i32> {
    let v: Value = serde_json::from_slice(out).ok()?;
    i32::try_from(v.get("exitStatus")?.as_i64()?).ok()
}

/// The last message runsc logged (its `--log`, JSON lines), as `: message`.
fn runsc_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("msg").and_then(Value::as_str).map(str::to_string))
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_answers() {
        assert_eq!(parse_wait(br#"{"id":"c","exitStatus":137}"#), Some(137));
        assert_eq!(parse_wait(b"{\"id\":\"c\",\"exitStatus\":0}\n"), Some(0));
        assert_eq!(parse_wait(b"nonsense"), None);
        assert_eq!(parse_wait(br#"{"id":"c"}"#), None);
    }
}
