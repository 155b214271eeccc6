//! A container run by a containerd shim v2 (`--shim-v2`: the runtime handler's binary is
//! such a shim, e.g. `containerd-shim-runc-v2`), driven over its Task API.
//!
//! The shim v2 gets a bundle of its own, `task/` inside Berth's (its `start` and `create`
//! write `shim.pid`, `address` and `init.pid`, names Berth's bundle uses too): a copy of
//! config.json whose root is absolute, the `log` FIFO it writes its own log to, and the
//! stdio FIFOs. This shim
//! - runs `SHIM -namespace berth -address EVENTS -id ID start` there, with
//!   `TTRPC_ADDRESS` = berthd's Events service; the answer is the shim v2's socket (a shim
//!   may serve several containers: containerd-shim-runc-v2 serves a pod's from one process,
//!   grouped by the pod id annotation);
//! - makes the FIFOs and holds a write end of each output until the shim v2 has opened its
//!   own (so that the first EOF read is its close, not the moment before its open);
//! - calls Create, and Wait on a connection of its own: the container's exit;
//! - answers Start, Kill, Delete (then Shutdown) and ExecSync (Exec, Start, Wait, Delete
//!   of an exec process with FIFOs of its own) through the Task API; the CRI log, attach,
//!   exit.json and OOM counting stay as for runc containers.

use super::*;
use berth_shim::task::{CreateTaskRequest, TaskClient, NAMESPACE, TASK_DIR};
use berth_shim::ttrpc::CODE_NOT_FOUND;
use rustix::fs::{Mode, OFlags};
use std::os::unix::fs::DirBuilderExt as _;

/// The shim v2 of a container.
pub(super) struct Task {
    /// Its socket.
    pub address: PathBuf,
    /// `<bundle>/task`.
    pub dir: PathBuf,
}

impl Task {
    pub(super) async fn client(&self) -> Result<TaskClient, String> {
        TaskClient::connect(&self.address)
            .await
            .map_err(|e| format!("shim v2 at {}: {e}", self.address.display()))
    }

    /// CloseIO: the shim v2 holds a stdin FIFO open until told its input has ended.
    pub(super) async fn close_stdin(&self, id: &str) {
        let r = match self.client().await {
            Ok(mut c) => c.close_stdin(id, "").await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            log!("closing the container's stdin through the shim v2: {e}");
        }
    }
}

/// An output FIFO: the read end on the reactor, and a write end held until the shim v2
/// has opened its own.
pub(super) struct OutputFifo {
    pub path: PathBuf,
    pub rx: Receiver,
    pub hold: OwnedFd,
}

impl OutputFifo {
    pub fn new(path: PathBuf) -> Result<OutputFifo, String> {
        let err = |e: rustix::io::Errno| format!("{}: {e}", path.display());
        mkfifo(&path)?;
        let read = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        // Cannot block: the read end is open.
        let hold = rustix::fs::open(
            &path,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        let rx = fdio::receiver(read).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(OutputFifo { path, rx, hold })
    }

    pub fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

pub(super) fn mkfifo(path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(|e| format!("mkfifo {}: {e}", path.display()))
}

/// Creates the container through the handler's shim v2.
pub(super) async fn create(args: &Args, reaper: &Reaper) -> Result<(Container, Task), String> {
    let dir = args.bundle.join(TASK_DIR);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    write_config(&args.bundle, &dir)?;
    // The shim v2 opens `log` for writing before it serves. A plain file, not the FIFO
    // containerd reads it from: the shim v2 may outlive this shim (it serves the pod's other
    // containers from here), and its writes must never block or break on a gone reader.
    std::fs::write(dir.join("log"), b"").map_err(|e| format!("task/log: {e}"))?;
    let task = Task {
        address: start_shim(args, &dir, reaper).await?,
        dir,
    };
    let stdout = OutputFifo::new(task.dir.join("stdout"))?;
    let stderr = if args.tty {
        None
    } else {
        Some(OutputFifo::new(task.dir.join("stderr"))?)
    };
    let stdin = if args.stdin {
        let path = task.dir.join("stdin");
        mkfifo(&path)?;
        // Read-write: opening never blocks, and closing it is the end of input.
        let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Some((path, fd))
    } else {
        None
    };
    let req = CreateTaskRequest {
        id: args.id.clone(),
        bundle: task.dir.to_string_lossy().into_owned(),
        terminal: args.tty,
        stdin: stdin
            .as_ref()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        stdout: stdout.path(),
        stderr: stderr.as_ref().map(OutputFifo::path).unwrap_or_default(),
    };
    let pid = task
        .client()
        .await?
        .create(&req)
        .await
        .map_err(|e| format!("shim v2 create: {e}"))?;
    let (tx, rx) = oneshot::channel();
    let mut waiter = task.client().await?;
    let id = args.id.clone();
    spawn_local(async move {
        let code = match waiter.wait(&id, "").await {
            Ok(status) => status as i32,
            Err(e) => {
                log!("waiting for the container through its shim v2: {e}");
                255
            }
        };
        let _ = tx.send(code);
    });
    let mut outputs = vec![("stdout", stdout.rx)];
    drop(stdout.hold);
    if let Some(e) = stderr {
        outputs.push(("stderr", e.rx));
        drop(e.hold);
    }
    let stdin = match stdin {
        Some((_, fd)) => Some(StdinSink {
            tx: fdio::sender(fd).map_err(|e| format!("stdin: {e}"))?,
            pty: false,
        }),
        None => None,
    };
    let container = Container {
        init_pid: pid as i32,
        init_exit: rx,
        outputs,
        stdin,
        console: None,
    };
    Ok((container, task))
}

/// The shim v2's own bundle config: Berth's, with the root made absolute.
fn write_config(bundle: &Path, dir: &Path) -> Result<(), String> {
    let mut config: Value = std::fs::read("config.json")
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("config.json: {e}"))?;
    if let Some(root) = config.get_mut("root").and_then(|r| r.get_mut("path")) {
        if let Some(p) = root.as_str().filter(|p| !p.starts_with('/')) {
            *root = json!(bundle.join(p));
        }
    }
    let value = serde_json::to_value(&config).map_err(|e| e.to_string())?;
    exec::write_private(&dir.join("config.json").to_string_lossy(), &value)
        .map_err(|e| format!("task/config.json: {e}"))
}

/// `SHIM [ARGS] -namespace berth -address EVENTS -id ID start` in the task directory.
async fn start_shim(args: &Args, dir: &Path, reaper: &Reaper) -> Result<PathBuf, String> {
    let events = args.events_address.clone().unwrap_or_else(|| dir.join("events.sock"));
    let mut cmd = std::process::Command::new(&args.runtime);
    cmd.args(&args.runtime_args)
        .args(["-namespace", NAMESPACE, "-address"])
        .arg(&events)
        .args(["-id", &args.id, "start"])
        .current_dir(dir)
        .env("TTRPC_ADDRESS", &events);
    let out = tokio::time::timeout(Duration::from_secs(60), crate::runc::output(cmd, reaper))
        .await
        .map_err(|_| format!("{} start did not answer within 60s", args.runtime.display()))??;
    let text = String::from_utf8_lossy(&out);
    berth_shim::task::parse_start_output(&text).ok_or_else(|| {
        format!(
            "{} start answered {:?}, not an address",
            args.runtime.display(),
            text.trim()
        )
    })
}

/// Takes back what a failed create left: the container in the shim v2 (and the shim v2
/// when it serves nothing else), or, with no shim v2 answering, its `delete` command.
pub(super) async fn cleanup(args: &Args, reaper: &Reaper) {
    let dir = args.bundle.join(TASK_DIR);
    if berth_shim::task::take_down(&args.bundle, &args.id).await {
        return;
    }
    if dir.is_dir() {
        delete_command(&args.runtime, &args.runtime_args, reaper, &args.id, &dir).await;
    }
}

impl Shim {
    pub(super) async fn start_task(&self, task: &Task) -> Result<(), String> {
        task.client()
            .await?
            .start(&self.id, "")
            .await
            .map(drop)
            .map_err(|e| format!("shim v2 start: {e}"))
    }

    pub(super) async fn kill_task(&self, task: &Task, signal: i32, all: bool) -> Response {
        let r = match task.client().await {
            Ok(mut c) => c.kill(&self.id, "", signal as u32, all).await.map_err(|e| {
                // Raced with the exit: the process is (about to be) gone.
                if e.code() == Some(CODE_NOT_FOUND) || self.init_exited.get() {
                    None
                } else {
                    Some(format!("shim v2 kill: {e}"))
                }
            }),
            Err(e) => Err(Some(e)),
        };
        match r {
            Ok(()) | Err(None) => Response::ok(),
            Err(Some(e)) => Response::error(e),
        }
    }

    /// Delete, then Shutdown (the shim v2 exits once it serves no container).
    pub(super) async fn delete_task(&self, task: &Task) -> Result<(), String> {
        let mut c = match task.client().await {
            Ok(c) => c,
            Err(e) => {
                log!("{e}; running its delete command");
                delete_command(&self.runc.bin, &self.runc.args, &self.reaper, &self.id, &task.dir).await;
                return Ok(());
            }
        };
        match c.delete(&self.id, "").await {
            Ok(_) => {}
            Err(e) if e.code() == Some(CODE_NOT_FOUND) => {}
            Err(e) => return Err(format!("shim v2 delete: {e}")),
        }
        c.shutdown(&self.id).await;
        Ok(())
    }

    pub(super) fn resize_task(&self, task: &Task, width: u16, height: u16) {
        let (address, id) = (task.address.clone(), self.id.clone());
        spawn_local(async move {
            let r = match TaskClient::connect(&address).await {
                Ok(mut c) => c.resize(&id, "", width.into(), height.into()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                log!("resizing the terminal through the shim v2: {e}");
            }
        });
    }
}

/// The shim v2's `delete` command, for a container whose shim v2 is gone.
async fn delete_command(bin: &Path, args: &[String], reaper: &Reaper, id: &str, dir: &Path) {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args)
        .args(["-namespace", NAMESPACE, "-id", id, "delete"])
        .current_dir(dir);
    if let Err(e) = crate::runc::output(cmd, reaper).await {
        log!("shim v2 delete: {e}");
    }
}
