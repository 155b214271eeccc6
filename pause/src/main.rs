//! `berth-pause`: the infra process of a Berth pod sandbox.
//!
//! ```text
//! berth-pause [--userns PATH] [--netns PATH] [--uts] [--hostname NAME] [--ipc] [--pid] [--sysctl KEY=VALUE]...
//! ```
//!
//! With `--userns` it first enters the pod's pinned user namespace, so that every namespace it
//! makes belongs to the pod's user namespace. It joins the pod's pinned network namespace (and brings its `lo` up), creates the UTS (with the pod's hostname),
//! IPC and, when asked, PID namespaces that the pod's containers later join through
//! `/proc/<pid>/ns/*`, writes `ready <pid>` on stdout (the pid containers must join; with
//! `--pid` that is a child that is PID 1 of the new namespace), and then only reaps
//! zombies until SIGTERM or SIGINT ends it. Pod sysctls are written once the namespaces
//! exist, so `net.*` lands in the pod's network namespace and `kernel.shm*` in its IPC one. No image is pulled for it and it holds no
//! memory to speak of.

#![deny(unsafe_code)]

mod sys;

use std::io::Write as _;
use std::process::ExitCode;

struct Args {
    userns: Option<String>,
    netns: Option<String>,
    uts: bool,
    hostname: Option<String>,
    ipc: bool,
    pid: bool,
    sysctls: Vec<(String, String)>,
    /// Internal: this process is the PID 1 spawned into a new PID namespace.
    init: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        userns: None,
        netns: None,
        uts: false,
        hostname: None,
        ipc: false,
        pid: false,
        sysctls: Vec::new(),
        init: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--userns" => args.userns = Some(it.next().ok_or("--userns needs a path")?),
            "--netns" => args.netns = Some(it.next().ok_or("--netns needs a path")?),
            "--hostname" => args.hostname = Some(it.next().ok_or("--hostname needs a name")?),
            "--uts" => args.uts = true,
            "--ipc" => args.ipc = true,
            "--pid" => args.pid = true,
            "--init" => args.init = true,
            "--sysctl" => {
                let kv = it.next().ok_or("--sysctl needs KEY=VALUE")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--sysctl {kv:?}: expected KEY=VALUE"))?;
                let ok_chars = k.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
                if k.is_empty() || !ok_chars || k.contains("..") || k.starts_with('/') {
                    return Err(format!("--sysctl {kv:?}: bad key"));
                }
                args.sysctls.push((k.to_string(), v.to_string()));
            }
            "--version" => {
                println!("berth-pause {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.hostname.is_some() && !args.uts {
        return Err("--hostname needs --uts (a private UTS namespace)".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-pause: {e}");
            return ExitCode::from(2);
        }
    };
    // Signals are taken synchronously (sigwaitinfo), so block them before anything else.
    if let Err(e) = sys::block_signals() {
        eprintln!("berth-pause: blocking signals: {e}");
        return ExitCode::from(1);
    }
    if args.init {
        if let Err(e) = sys::die_with_parent() {
            eprintln!("berth-pause: {e}");
            return ExitCode::from(1);
        }
        return sys::reap_until_terminated(None);
    }
    if let Err(e) = setup(&args) {
        eprintln!("berth-pause: {e}");
        return ExitCode::from(1);
    }
    let (pid, child) = if args.pid {
        // The next child of this process is PID 1 of the new PID namespace.
        let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        match std::process::Command::new(exe)
            .arg("--init")
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => (c.id(), Some(c.id())),
            Err(e) => {
                eprintln!("berth-pause: starting the PID namespace's init: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        (std::process::id(), None)
    };
    let mut out = std::io::stdout();
    if writeln!(out, "ready {pid}").and_then(|_| out.flush()).is_err() {
        return ExitCode::from(1);
    }
    sys::close_stdout();
    sys::reap_until_terminated(child)
}

fn setup(args: &Args) -> Result<(), String> {
    if let Some(path) = &args.userns {
        sys::join_userns(path).map_err(|e| format!("joining user namespace {path}: {e}"))?;
    }
    if let Some(path) = &args.netns {
        sys::join_netns(path).map_err(|e| format!("joining network namespace {path}: {e}"))?;
        sys::loopback_up().map_err(|e| format!("bringing up lo: {e}"))?;
    }
    if args.uts || args.ipc || args.pid {
        sys::unshare(args.uts, args.ipc, args.pid).map_err(|e| format!("creating namespaces: {e}"))?;
    }
    if let Some(name) = &args.hostname {
        rustix::system::sethostname(name.as_bytes()).map_err(|e| format!("setting hostname {name:?}: {e}"))?;
    }
    for (key, value) in &args.sysctls {
        // `a.b.c` or `a/b/c` (the slash form allows dots inside a component, e.g. VLANs).
        let rel = if key.contains('/') {
            key.clone()
        } else {
            key.replace('.', "/")
        };
        let path = format!("/proc/sys/{rel}");
        std::fs::write(&path, value).map_err(|e| format!("sysctl {key}={value}: {e}"))?;
    }
    Ok(())
}
