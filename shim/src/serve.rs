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
use crate::timefmt::now_ns;

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
        let oom_file = read_cgroups_path().map(|p| oom_file(&p, &args.id, args.systemd_cgroup));
        // The socket is created 0600: the umask is process-wide, and nothing else runs now.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let listener = UnixListener::bind(SOCKET);
        rustix::process::umask(old);
        let listener = listener.map_err(|e| format!("{}/{SOCKET}: {e}", args.bundle.display()))?;
        let container = match create(args, &runc, &reaper).await {
            Ok(c) => c,
            Err(e) => {
                // Leave nothing behind: a half-created container, its cgroup, runc state.
                let _ = crate::runc::run(&runc, &reaper, &["delete".as_ref(), "-f".as_ref(), args.id.as_ref()]).await;
                return Err(e);
            }
        };
        let (stopped, _) = watch::channel(false);
        let shim = Rc::new(Shim {
            id: args.id.clone(),
            runc,
            reaper: reaper.clone(),
            init_pid: container.init_pid,
            stdin_once: args.stdin_once,
            has_stdin: args.stdin,
            oom_file,
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

/// `linux.cgroupsPath` from the bundle's config.json.
fn read_cgroups_path() -> Option<String> {
    let config: Value = serde_json::from_slice(&std::fs::read("config.json").ok()?).ok()?;
    Some(
        config
            .get("linux")?
            .get("cgroupsPath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

/// The file whose `oom_kill N` line counts OOM kills in the container's memory cgroup:
/// v1 `memory/<path>/memory.oom_control`, v2 (unified hierarchy) `<path>/memory.events`.
fn oom_file(cgroups_path: &str, id: &str, systemd: bool) -> PathBuf {
    let rel = cgroups::container_dir(cgroups_path, id, systemd);
    if cgroups::unified() {
        PathBuf::from(format!("{}/{rel}/memory.events", cgroups::ROOT))
    } else {
        PathBuf::from(format!("{}/memory/{rel}/memory.oom_control", cgroups::ROOT))
    }
}

fn oom_kills(file: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(file) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
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

async fn create(args: &Args, runc: &Runc, reaper: &Reaper) -> Result<Container, String> {
    let io_err = |what: &str, e: io::Error| format!("{what}: {e}");
    let spawn_err = |e: io::Error| format!("{}: {e}", runc.bin.display());
    let mut cmd = runc.command();
    cmd.arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(args.bundle.join(INIT_PID_FILE));
    // runc's stderr: the container's stderr without a tty, only runc's errors with one.
    let (err_r, err_w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
    let err_rx = fdio::receiver(err_r).map_err(|e| io_err("pipe", e))?;
    let (outputs, stdin, console) = if args.tty {
        let console = UnixListener::bind(CONSOLE_SOCKET).map_err(|e| io_err(CONSOLE_SOCKET, e))?;
        // Relative: runc resolves it in the bundle directory, where it also runs; this
        // keeps long bundle paths clear of the 108-byte socket path limit.
        cmd.arg("--console-socket").arg(CONSOLE_SOCKET).arg(&args.id);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err_w);
        let (_, mut exited) = fdio::spawn(cmd, reaper).map_err(spawn_err)?;
        let (master, code) = {
            let recv = async {
                let (stream, _) = console.accept().await?;
                recv_fd(&stream).await
            };
            tokio::pin!(recv);
            tokio::select! {
                m = &mut recv => (Some(m), (&mut exited).await),
                c = &mut exited => (tokio::time::timeout(Duration::from_secs(1), &mut recv).await.ok(), c),
            }
        };
        drop(console);
        let _ = std::fs::remove_file(CONSOLE_SOCKET);
        let code = code.unwrap_or(-1);
        if code != 0 {
            return Err(create_error(&err_rx, code).await);
        }
        let master = match master {
            Some(Ok(fd)) => fd,
            Some(Err(e)) => return Err(format!("receiving the console from runc: {e}")),
            None => return Err("runc create sent no console".into()),
        };
        let console = rustix::io::fcntl_dupfd_cloexec(&master, 3).map_err(|e| io_err("dup", e.into()))?;
        let stdin = if args.stdin {
            let dup = rustix::io::fcntl_dupfd_cloexec(&master, 3).map_err(|e| io_err("dup", e.into()))?;
            Some(StdinSink {
                tx: fdio::sender(dup).map_err(|e| io_err("console", e))?,
                pty: true,
            })
        } else {
            None
        };
        (
            vec![("stdout", fdio::receiver(master).map_err(|e| io_err("console", e))?)],
            stdin,
            Some(console),
        )
    } else {
        let (out_r, out_w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
        let (stdin_keep, stdin_child) = if args.stdin {
            let (r, w) = fdio::pipe().map_err(|e| io_err("pipe", e))?;
            (Some(w), Stdio::from(r))
        } else {
            (None, Stdio::null())
        };
        cmd.arg(&args.id).stdin(stdin_child).stdout(out_w).stderr(err_w);
        let (_, exited) = fdio::spawn(cmd, reaper).map_err(spawn_err)?;
        let code = exited.await.unwrap_or(-1);
        if code != 0 {
            return Err(create_error(&err_rx, code).await);
        }
        let out_rx = fdio::receiver(out_r).map_err(|e| io_err("pipe", e))?;
        let stdin = match stdin_keep {
            Some(w) => Some(StdinSink {
                tx: fdio::sender(w).map_err(|e| io_err("pipe", e))?,
                pty: false,
            }),
            None => None,
        };
        (vec![("stdout", out_rx), ("stderr", err_rx)], stdin, None)
    };
    let init_pid = read_pid(INIT_PID_FILE).ok_or_else(|| format!("runc create left no readable {INIT_PID_FILE}"))?;
    // Registered before any await: an init that already died is in the reaper's
    // unclaimed list and is reported at once.
    let init_exit = reaper.watch(init_pid);
    Ok(Container {
        init_pid,
        init_exit,
        outputs,
        stdin,
        console,
    })
}

/// What runc printed on a failed create (it exits, so its stderr reaches EOF).
async fn create_error(err_rx: &Receiver, code: i32) -> String {
    let mut stderr = Vec::new();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, fdio::read_capped(err_rx, 16 * 1024, &mut stderr)).await;
    error_text(&stderr, &format!("runc create exited with {code}"))
}

/// The pty master runc sends over the console socket (SCM_RIGHTS).
async fn recv_fd(stream: &UnixStream) -> io::Result<OwnedFd> {
    loop {
        stream.readable().await?;
        let got = stream.try_io(Interest::READABLE, || {
            let mut name = [0u8; 4096];
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let msg = recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut name)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            let mut fd = None;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                    fd = fd.or_else(|| fds.next());
                }
            }
            match fd {
                Some(fd) => Ok(fd),
                None if msg.bytes == 0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "console socket closed")),
                None => Err(io::Error::other("no file descriptor in the console message")),
            }
        });
        match got {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

struct Shim {
    id: String,
    runc: Runc,
    reaper: Rc<Reaper>,
    init_pid: i32,
    stdin_once: bool,
    has_stdin: bool,
    oom_file: Option<PathBuf>,
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

    async fn on_init_exit(self: Rc<Self>, exited: oneshot::Receiver<i32>, pumps: Vec<JoinHandle<()>>) {
        let exit_code = exited.await.unwrap_or(-1);
        self.init_exited.set(true);
        let finished_at = now_ns();
        // Read now: `runc delete` removes the cgroup.
        let oom_killed = self.oom_file.as_deref().is_some_and(|f| oom_kills(f) > 0);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            for p in pumps {
                let _ = p.await;
            }
        })
        .await;
        if drained.is_err() {
            log!("output still open {DRAIN_TIMEOUT:?} after the init exited; reporting the exit anyway");
        }
        self.hub.close();
        let record = ExitRecord {
            exit_code,
            finished_at,
            oom_killed,
            started_at: self.started_at.get(),
        };
        if let Err(e) = write_exit(&record) {
            log!("writing {EXIT_FILE}: {e}");
        }
        log!(
            "init {} exited with {exit_code} (oom_killed: {oom_killed})",
            self.init_pid
        );
        self.exit.set(Some(record.exit()));
        self.status.set(Status::Stopped);
        self.stopped.send_replace(true);
        *self.stdin.lock().await = None;
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
            // Switches the connection to frames: taken in `connection`.
            Request::Attach { .. } => Response::error("attach is answered on its own connection"),
        };
        (r, false)
    }

    fn state(&self) -> Response {
        Response::State(StateResponse {
            status: self.status.get(),
            pid: self.init_pid as u32,
            started_at: self.started_at.get(),
            exit: self.exit.get(),
        })
    }

    async fn start(&self) -> Response {
        if self.status.get() != Status::Created || self.starting.get() || self.init_exited.get() {
            let what = if self.starting.get() {
                "starting"
            } else {
                status_name(self.status.get())
            };
            return Response::error(format!("container is {what}, not created"));
        }
        self.starting.set(true);
        // Set before `runc start` so an init that exits at once still has its start time.
        self.started_at.set(now_ns());
        let r = self.runc(&["start", &self.id]).await;
        self.starting.set(false);
        match r {
            Ok(()) => {
                if self.status.get() == Status::Created {
                    self.status.set(Status::Running);
                }
                Response::ok()
            }
            Err(e) => {
                if !self.init_exited.get() {
                    self.started_at.set(0);
                }
                Response::error(e)
            }
        }
    }

    async fn kill(&self, signal: i32, all: bool) -> Response {
        if self.init_exited.get() {
            return Response::ok();
        }
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([self.id.as_str(), sig.as_str()]);
        match self.runc(&args).await {
            Ok(()) => Response::ok(),
            // Raced with the exit: the container is (about to be) stopped.
            Err(e) if self.init_exited.get() || e.contains("not running") || e.contains("already finished") => {
                Response::ok()
            }
            Err(e) => Response::error(e),
        }
    }

    async fn wait(&self, timeout_ms: u64) -> Response {
        let mut rx = self.stopped.subscribe();
        let stopped = rx.wait_for(|s| *s);
        let timed_out = if timeout_ms == 0 {
            let _ = stopped.await;
            false
        } else {
            tokio::time::timeout(Duration::from_millis(timeout_ms), stopped)
                .await
                .is_err()
        };
        Response::Wait(WaitResponse {
            timed_out,
            exit: if timed_out { None } else { self.exit.get() },
        })
    }

    async fn delete(&self) -> (Response, bool) {
        if self.exit.get().is_none() {
            return (
                Response::error(format!("container is {}, not stopped", status_name(self.status.get()))),
                false,
            );
        }
        if self.deleting.replace(true) {
            return (Response::error("delete already in progress"), false);
        }
        match self.runc(&["delete", "-f", &self.id]).await {
            Ok(()) => (Response::ok(), true),
            Err(e) if e.contains("does not exist") || e.contains("not exist") => (Response::ok(), true),
            Err(e) => {
                self.deleting.set(false);
                (Response::error(e), false)
            }
        }
    }

    async fn stdin(&self, data: &str, close: bool) -> Response {
        let data = match b64::decode(data) {
            Ok(d) => d,
            Err(e) => return Response::error(format!("stdin data: {e}")),
        };
        match self.write_stdin(&data, close).await {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(e),
        }
    }

    async fn write_stdin(&self, data: &[u8], close: bool) -> Result<(), String> {
        if !self.has_stdin {
            return Err("the container was created without stdin".into());
        }
        let mut sink = self.stdin.lock().await;
        let Some(s) = sink.as_ref() else {
            return if data.is_empty() {
                Ok(())
            } else {
                Err("stdin is closed".into())
            };
        };
        fdio::write_all(&s.tx, data)
            .await
            .map_err(|e| format!("writing stdin: {e}"))?;
        if close && self.stdin_once {
            if s.pty {
                // A pty has no write end to close: send the EOF character (^D).
                let _ = fdio::write_all(&s.tx, b"\x04").await;
            }
            *sink = None;
        }
        Ok(())
    }

    /// One attach session: output frames out, input frames in, until the container's
    /// output ends or berthd closes the connection.
    async fn attach(self: Rc<Self>, r: BufReader<OwnedReadHalf>, mut w: OwnedWriteHalf, f: AttachFlags) {
        if f.stdin && !self.has_stdin {
            let _ = w
                .write_all(b"{\"error\":\"the container was created without stdin\"}\n")
                .await;
            return;
        }
        let sub = if f.stdout || f.stderr {
            self.hub.subscribe(f.stdout, f.stderr)
        } else {
            None
        };
        if w.write_all(b"{\"ok\":true}\n").await.is_err() {
            if let Some((id, _)) = sub {
                self.hub.unsubscribe(id);
            }
            return;
        }
        let hub = self.hub.clone();
        let mut stopped = self.stopped.subscribe();
        let sub_id = sub.as_ref().map(|(id, _)| *id);
        let output = async move {
            if let Some((_, mut rx)) = sub {
                while let Some((kind, data)) = rx.recv().await {
                    if attach::write_frame(&mut w, kind, &data).await.is_err() {
                        return;
                    }
                }
            } else {
                // Input only: the session still ends when the container does.
                let _ = stopped.wait_for(|s| *s).await;
            }
            if hub.is_closed() {
                let _ = attach::write_frame(&mut w, attach::EXIT, &[]).await;
            }
            let _ = w.shutdown().await;
        };
        let shim = self.clone();
        let input = async move {
            let mut r = r;
            while let Ok(Some((kind, data))) = attach::read_frame(&mut r).await {
                match kind {
                    attach::STDIN if f.stdin => {
                        if let Err(e) = shim.write_stdin(&data, false).await {
                            log!("attach: {e}");
                        }
                    }
                    attach::STDIN_CLOSE if f.stdin => {
                        let _ = shim.write_stdin(&[], true).await;
                    }
                    attach::RESIZE if data.len() == 4 => shim.resize(&data),
                    _ => {}
                }
            }
        };
        tokio::select! {
            _ = output => {}
            _ = input => {}
        }
        if let Some(id) = sub_id {
            self.hub.unsubscribe(id);
        }
    }

    fn resize(&self, data: &[u8]) {
        let (width, height) = (
            u16::from_be_bytes([data[0], data[1]]),
            u16::from_be_bytes([data[2], data[3]]),
        );
        if let Some(console) = self.console.borrow().as_ref() {
            let size = rustix::termios::Winsize {
                ws_row: height,
                ws_col: width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            if let Err(e) = rustix::termios::tcsetwinsize(console, size) {
                log!("resizing the console: {e}");
            }
        }
    }

    async fn exec(&self, req: ExecRequest) -> Response {
        if req.tty {
            return Response::error("exec with a tty is not supported");
        }
        if req.args.is_empty() {
            return Response::error("exec needs args");
        }
        if self.init_exited.get() {
            return Response::error("container is not running");
        }
        let n = self.exec_seq.get() + 1;
        self.exec_seq.set(n);
        let (process_file, pid_file) = (format!("exec-{n}.json"), format!("exec-{n}.pid"));
        let r = match exec_process(&req) {
            Ok(process) => match write_private(&process_file, &process) {
                Ok(()) => self.exec_run(&req, &process_file, &pid_file).await,
                Err(e) => Err(format!("{process_file}: {e}")),
            },
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        r.unwrap_or_else(Response::error)
    }

    async fn exec_run(&self, req: &ExecRequest, process_file: &str, pid_file: &str) -> Result<Response, String> {
        let (out_r, out_w) = fdio::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = fdio::pipe().map_err(|e| format!("pipe: {e}"))?;
        let mut cmd = self.runc.exec(Path::new(process_file), Path::new(pid_file), &self.id);
        cmd.stdin(Stdio::null()).stdout(out_w).stderr(err_w);
        let (runc_pid, exited) =
            fdio::spawn(cmd, &self.reaper).map_err(|e| format!("{}: {e}", self.runc.bin.display()))?;
        let out_rx = fdio::receiver(out_r).map_err(|e| format!("pipe: {e}"))?;
        let err_rx = fdio::receiver(err_r).map_err(|e| format!("pipe: {e}"))?;
        let max = if req.max_output == 0 {
            DEFAULT_MAX_OUTPUT
        } else {
            req.max_output
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let exit_code = Cell::new(-1);
        let mut timed_out = false;
        {
            let work = async {
                let (_, _, code) = tokio::join!(
                    fdio::read_capped(&out_rx, max, &mut stdout),
                    fdio::read_capped(&err_rx, max, &mut stderr),
                    exited
                );
                if let Ok(code) = code {
                    exit_code.set(code);
                }
            };
            tokio::pin!(work);
            if req.timeout_ms == 0 {
                work.await;
            } else if tokio::time::timeout(Duration::from_millis(req.timeout_ms), &mut work)
                .await
                .is_err()
            {
                timed_out = true;
                kill_exec(pid_file, runc_pid).await;
                // runc exec returns once its process is gone; output may be held open by
                // the process's own children, so this wait is bounded.
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut work).await;
            }
        }
        Ok(Response::Exec(ExecResponse {
            exit_code: exit_code.get(),
            stdout: b64::encode(&stdout),
            stderr: b64::encode(&stderr),
            timed_out,
        }))
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

/// SIGKILLs the exec'd process (its pid from `runc exec --pid-file`); if runc never got
/// that far, runc itself.
async fn kill_exec(pid_file: &str, runc_pid: i32) {
    for _ in 0..100 {
        if let Some(pid) = read_pid(pid_file).and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::KILL);
            return;
        }
        let Some(runc) = Pid::from_raw(runc_pid) else { return };
        if test_kill_process(runc).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(runc) = Pid::from_raw(runc_pid) {
        let _ = kill_process(runc, Signal::KILL);
    }
}

/// The OCI process for an exec: the container's own `process` (capabilities, rlimits,
/// LSM labels, noNewPrivileges carry over) with the request's fields on top.
fn exec_process(req: &ExecRequest) -> Result<Value, String> {
    let config: Value = std::fs::read("config.json")
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("config.json: {e}"))?;
    let mut process = berth_shim::api::exec_process(&config, &req.args, false)?;
    let p = process.as_object_mut().ok_or("config.json: process is not an object")?;
    if !req.env.is_empty() {
        p.insert("env".into(), json!(req.env));
    }
    if !req.cwd.is_empty() {
        p.insert("cwd".into(), json!(req.cwd));
    }
    if let Some(u) = &req.user {
        let mut user = json!({"uid": u.uid, "gid": u.gid});
        if !u.additional_gids.is_empty() {
            user["additionalGids"] = json!(u.additional_gids);
        }
        if let Some(umask) = p.get("user").and_then(|old| old.get("umask")) {
            user["umask"] = umask.clone();
        }
        p.insert("user".into(), user);
    }
    Ok(process)
}

fn write_private(path: &str, value: &Value) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&data)
}

/// `exit.json`, atomically (temporary file, fsync, rename).
fn write_exit(record: &ExitRecord) -> io::Result<()> {
    let tmp = format!("{EXIT_FILE}.tmp");
    let data = serde_json::to_vec(record).map_err(io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(&data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, EXIT_FILE)
}

/// Copies one output stream into the log until EOF.
fn spawn_pump(rx: Receiver, stream: &'static str, log: Rc<RefCell<LogFile>>, hub: Rc<Hub>) -> JoinHandle<()> {
    let kind = if stream == "stderr" {
        attach::STDERR
    } else {
        attach::STDOUT
    };
    spawn_local(async move {
        let mut buf = vec![0u8; 8 * 1024];
        let mut splitter = Splitter::new(MAX_LINE);
        loop {
            let n = match fdio::read(&rx, &mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    log!("reading {stream}: {e}");
                    break;
                }
            };
            hub.publish(kind, &buf[..n]);
            let mut log = log.borrow_mut();
            splitter.push(&buf[..n], &mut |tag, content| log.write(stream, tag, content));
        }
        let mut log = log.borrow_mut();
        splitter.finish(&mut |tag, content| log.write(stream, tag, content));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_process_overrides() {
        let req = ExecRequest {
            args: vec!["ls".into()],
            user: Some(berth_shim::api::User {
                uid: 5,
                gid: 6,
                additional_gids: vec![],
            }),
            ..Default::default()
        };
        // No config.json in the test's working directory.
        assert!(exec_process(&req).is_err());
    }
}
