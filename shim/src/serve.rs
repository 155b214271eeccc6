//! `berth-shim serve`: the shim proper.
//!
//! It leaves berthd's session (`setsid`), becomes a child subreaper, changes into the
//! bundle directory and runs a current-thread tokio runtime:
//! 1. `runc create` with pipes (or, with `--tty`, a console socket) as the container's
//!    stdio; reports `ok <init pid>` / `error <message>` on stdout for `start`;
//! 2. copies the container's output into the CRI log file;
//! 3. reaps every child; when the init exits it records the exit (code, time, OOM kills
//!    read from the cgroup before any `runc delete`), drains the output (up to 2 s), and
//!    writes `<bundle>/exit.json` atomically;
//! 4. serves the API (`berth_shim::api`) on `<bundle>/shim.sock` until `delete`.
//!
//! With `--shim-v2` the runtime is a containerd shim v2: create, start, signals, exits and
//! execs go through its Task API instead of runc (see `task`, `task_exec`).
//!
//! SIGTERM, SIGINT and SIGHUP are caught and ignored: stopping the shim never stops the
//! container. If the shim is SIGKILLed its socket stays but refuses connections; berthd
//! then treats the shim as gone and reads `exit.json`, which exists only if the container
//! had stopped while the shim was alive.

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::io::{self, IoSliceMut, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use berth_shim::api::{
    ExecRequest, ExecResponse, Exit, ExitRecord, Request, Response, StateResponse, Status, WaitResponse, EXIT_FILE,
    PID_FILE, SOCKET,
};
use berth_shim::attach::{self, Hub};
use berth_shim::{b64, cgroups};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::process::{kill_process, test_kill_process, Pid, Signal};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader, Interest};
use tokio::net::unix::pipe::{Receiver, Sender};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch, Mutex};
use tokio::task::{spawn_local, JoinHandle};

use crate::args::Args;
use crate::fdio;
use crate::logs::{LogFile, Splitter, MAX_LINE};
use crate::reaper::Reaper;
use crate::runc::{error_text, Runc};
use berth_shim::timefmt::now_ns;

const CONSOLE_SOCKET: &str = "console.sock";
const INIT_PID_FILE: &str = "init.pid";
/// How long an exit waits for the output pipes to reach EOF (a process outside the
/// container's pid namespace may still hold them).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request line (stdin payloads included).
const MAX_REQUEST: u64 = 16 << 20;
/// ExecSync output kept per stream when the request says 0 (kubelet's limit).
const DEFAULT_MAX_OUTPUT: usize = 16 << 20;

macro_rules! log {
    ($($t:tt)*) => { crate::log(format_args!($($t)*)) };
}

// After the macro: the parts use it.
mod control;
mod create;
mod exec;
mod exit;
mod gvisor;
mod stdio;
mod task;
mod task_exec;

use control::owns_pid_namespace;
use create::create;
use exit::{cgroups_path, oom_file, read_config};
use stdio::spawn_pump;

pub fn run(args: Args) -> i32 {
    // Out of berthd's session and process group, so that signals to those miss the shim.
    if let Err(e) = rustix::process::setsid() {
        log!("setsid: {e}");
    }
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        report(&format!("error becoming a child subreaper: {e}"));
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("error tokio runtime: {e}"));
            return 1;
        }
    };
    tokio::task::LocalSet::new().block_on(&rt, serve(args))
}

/// The one line for `start`; stdout then points at /dev/null.
fn report(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", line.trim_end().replace('\n', "; "));
    let _ = out.flush();
    drop(out);
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

async fn serve(args: Args) -> i32 {
    let reaper = Rc::new(Reaper::default());
    let sigchld = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            report(&format!("error SIGCHLD handler: {e}"));
            return 1;
        }
    };
    let r = reaper.clone();
    spawn_local(async move { r.run(sigchld).await });
    // Handled, hence never fatal; runc and the container get default dispositions back
    // on exec.
    for (kind, name) in [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::hangup(), "SIGHUP"),
    ] {
        if let Ok(mut s) = signal(kind) {
            spawn_local(async move {
                while s.recv().await.is_some() {
                    log!("ignoring {name}");
                }
            });
        }
    }

    let runc = Runc {
        bin: args.runtime.clone(),
        root: args.runtime_root.clone(),
        systemd_cgroup: args.systemd_cgroup,
        log: args.bundle.join("runc.log"),
        args: args.runtime_args.clone(),
    };
    match setup(&args, runc, reaper).await {
        Ok((listener, shim, container)) => {
            report(&format!("ok {}", shim.init_pid));
            log!("container {} created, init pid {}", args.id, shim.init_pid);
            shim.run(listener, container).await
        }
        Err(e) => {
            log!("create failed: {e}");
            report(&format!("error {e}"));
            1
        }
    }
}

async fn setup(args: &Args, runc: Runc, reaper: Rc<Reaper>) -> Result<(UnixListener, Rc<Shim>, Container), String> {
    rustix::process::chdir(&args.bundle).map_err(|e| format!("bundle {}: {e}", args.bundle.display()))?;
    for stale in [EXIT_FILE, INIT_PID_FILE, CONSOLE_SOCKET, SOCKET] {
        let _ = std::fs::remove_file(stale);
    }
    std::fs::write(PID_FILE, format!("{}\n", std::process::id())).map_err(|e| format!("{PID_FILE}: {e}"))?;
    let result = async {
        let log = LogFile::open(&args.log_path).map_err(|e| format!("log file {}: {e}", args.log_path.display()))?;
        let config = read_config();
        let oom_file = config
            .as_ref()
            .and_then(cgroups_path)
            .map(|p| oom_file(&p, &args.id, args.systemd_cgroup));
        // A runc container alone in its PID namespace ends with its init (the kernel kills
        // the rest of the namespace), so SIGKILL to all of it needs no runtime process.
        let kill_through_init = !args.shim_v2 && !args.gvisor && config.as_ref().is_some_and(owns_pid_namespace);
        // The socket is created 0600: the umask is process-wide, and nothing else runs now.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let listener = UnixListener::bind(SOCKET);
        rustix::process::umask(old);
        let listener = listener.map_err(|e| format!("{}/{SOCKET}: {e}", args.bundle.display()))?;
        let created = if args.shim_v2 {
            task::create(args, &reaper).await.map(|(c, t)| (c, None, Some(t)))
        } else if args.gvisor && gvisor::joins_sandbox() {
            gvisor::create(args, &runc, &reaper)
                .await
                .map(|(c, j)| (c, Some(j), None))
        } else {
            create(args, &runc, &reaper).await.map(|c| (c, None, None))
        };
        let (container, joined, task) = match created {
            Ok(c) => c,
            Err(e) => {
                // Leave nothing behind: a half-created container, its cgroup, runc state.
                if args.shim_v2 {
                    task::cleanup(args, &reaper).await;
                } else {
                    let _ = crate::runc::run(
                        &runc,
                        &reaper,
                        &["delete".as_ref(), "--force".as_ref(), args.id.as_ref()],
                    )
                    .await;
                }
                return Err(e);
            }
        };
        let (stopped, _) = watch::channel(false);
        let shim = Rc::new(Shim {
            id: args.id.clone(),
            runc,
            reaper: reaper.clone(),
            init_pid: container.init_pid,
            // With a terminal, leaving a session is detaching: stdin stays open (Docker's
            // rule too); without one, the end of the first session is the end of input.
            stdin_once: args.stdin_once && !args.tty,
            has_stdin: args.stdin,
            oom_file,
            kill_through_init,
            status: Cell::new(Status::Created),
            starting: Cell::new(false),
            started_at: Cell::new(0),
            init_exited: Cell::new(false),
            exit: Cell::new(None),
            stopped,
            deleting: Cell::new(false),
            exec_seq: Cell::new(0),
            log: Rc::new(RefCell::new(log)),
            stdin: Mutex::new(None),
            hub: Rc::new(Hub::default()),
            console: RefCell::new(None),
            joined,
            task,
        });
        Ok((listener, shim, container))
    }
    .await;
    if result.is_err() {
        for f in [SOCKET, PID_FILE, CONSOLE_SOCKET] {
            let _ = std::fs::remove_file(f);
        }
    }
    result
}

fn read_pid(file: impl AsRef<Path>) -> Option<i32> {
    std::fs::read_to_string(file)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&p: &i32| p > 0)
}

#[derive(Debug, Clone, Copy)]
struct AttachFlags {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// Where the container's input goes: a pipe's write end, or (a dup of) the pty master.
struct StdinSink {
    tx: Sender,
    pty: bool,
}

/// What `runc create` left us.
struct Container {
    init_pid: i32,
    init_exit: oneshot::Receiver<i32>,
    outputs: Vec<(&'static str, Receiver)>,
    stdin: Option<StdinSink>,
    console: Option<OwnedFd>,
}

struct Shim {
    id: String,
    runc: Runc,
    reaper: Rc<Reaper>,
    init_pid: i32,
    stdin_once: bool,
    has_stdin: bool,
    oom_file: Option<PathBuf>,
    /// SIGKILL to the whole container is SIGKILL to its init (see `control::kill`).
    kill_through_init: bool,
    status: Cell<Status>,
    /// `runc start` in flight.
    starting: Cell<bool>,
    started_at: Cell<i64>,
    /// The init has been reaped (the exit may not be final yet: output still draining).
    init_exited: Cell<bool>,
    exit: Cell<Option<Exit>>,
    stopped: watch::Sender<bool>,
    deleting: Cell<bool>,
    exec_seq: Cell<u64>,
    log: Rc<RefCell<LogFile>>,
    stdin: Mutex<Option<StdinSink>>,
    /// Attached clients.
    hub: Rc<Hub>,
    /// A dup of the pty master (containers with a tty), for resizes.
    console: RefCell<Option<OwnedFd>>,
    /// A container that joins a gVisor sandbox (see `gvisor`).
    joined: Option<gvisor::Joined>,
    /// A container run by a shim v2 (see `task`).
    task: Option<task::Task>,
}

impl Shim {
    async fn run(self: Rc<Self>, listener: UnixListener, container: Container) -> i32 {
        *self.stdin.lock().await = container.stdin;
        *self.console.borrow_mut() = container.console;
        let pumps: Vec<JoinHandle<()>> = container
            .outputs
            .into_iter()
            .map(|(stream, fd)| spawn_pump(fd, stream, self.log.clone(), self.hub.clone()))
            .collect();
        spawn_local(self.clone().on_init_exit(container.init_exit, pumps));
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    spawn_local(self.clone().connection(stream));
                }
                Err(e) => {
                    log!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(self: Rc<Self>, stream: UnixStream) {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::with_capacity(1024, r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut r).take(MAX_REQUEST).read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let (response, exit_after) = if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_REQUEST {
                (
                    Response::error(format!("request longer than {MAX_REQUEST} bytes")),
                    false,
                )
            } else {
                match serde_json::from_slice::<Request>(&line) {
                    Ok(Request::Attach { stdin, stdout, stderr }) => {
                        let flags = AttachFlags { stdin, stdout, stderr };
                        return self.attach(r, w, flags).await;
                    }
                    Ok(Request::ExecStream(req)) => return self.exec_stream(r, w, req).await,
                    Ok(req) => self.handle(req).await,
                    Err(e) => (Response::error(format!("bad request: {e}")), false),
                }
            };
            let mut out = serde_json::to_vec(&response).unwrap_or_else(|e| {
                serde_json::to_vec(&Response::error(format!("encoding the response: {e}"))).unwrap_or_default()
            });
            out.push(b'\n');
            if exit_after {
                // Gone before the answer arrives: a client that got `ok` sees no socket.
                for f in [SOCKET, PID_FILE] {
                    let _ = std::fs::remove_file(f);
                }
            }
            let written = w.write_all(&out).await;
            if exit_after {
                let _ = w.flush().await;
                log!("deleted; exiting");
                std::process::exit(0);
            }
            if written.is_err() || (line.last() != Some(&b'\n') && line.len() as u64 >= MAX_REQUEST) {
                return;
            }
            if line.capacity() > 64 * 1024 {
                line = Vec::new();
            }
        }
    }

    /// The response, and whether the shim exits once it is sent.
    async fn handle(&self, req: Request) -> (Response, bool) {
        let r = match req {
            Request::State => self.state(),
            Request::Start => self.start().await,
            Request::Kill { signal, all } => self.kill(signal, all).await,
            Request::Wait { timeout_ms } => self.wait(timeout_ms).await,
            Request::Exec(e) => self.exec(e).await,
            Request::ReopenLog => match self.log.borrow_mut().reopen() {
                Ok(()) => Response::ok(),
                Err(e) => Response::error(format!("reopening the log: {e}")),
            },
            Request::Delete => return self.delete().await,
            Request::Stdin { data, close } => self.stdin(&data, close).await,
            // Switch the connection to frames: taken in `connection`.
            Request::Attach { .. } | Request::ExecStream(_) => {
                Response::error("attach and exec streams are answered on their own connection")
            }
        };
        (r, false)
    }

    async fn runc(&self, args: &[&str]) -> Result<(), String> {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        crate::runc::run(&self.runc, &self.reaper, &args).await
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Stopped => "stopped",
    }
}
