//! Interactive exec for the streaming server: berthd runs `<runtime> exec` in the
//! foreground as its own child, with pipes or a pty it owns as the process's stdio, so the
//! bytes of a session never pass through the shim.
//!
//! The exec'd process is a child of the runtime (it clones the process into the container
//! as its own child and waits for it), so the runtime's exit status is the process's.
//! Dropping an [`ExecProcess`] before it has exited SIGKILLs the process (by the pid the
//! runtime wrote) and the runtime, and removes the files it used: a dying stream leaves
//! nothing behind.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

use crate::sys::pty;

/// Which OCI runtime state a container lives in.
#[derive(Debug, Clone)]
pub struct RuntimeTarget {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    pub systemd_cgroup: bool,
    /// The runtime handler's global flags.
    pub runtime_args: Vec<String>,
    /// The container runs inside a gVisor sandbox (runsc).
    pub gvisor: bool,
    /// The container runs under a shim v2: berthd cannot run its runtime, the container's
    /// berth-shim runs interactive execs (see `runtime::shim::exec_stream`).
    pub shim_v2: bool,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub args: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Changes to the container's own process settings.
    pub overrides: ProcessOverrides,
}

/// What an exec changes of the container process's settings (`exec -e -w -u`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessOverrides {
    /// `K=V`, each replacing the container's `K` or added.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// uid, gid and additional gids.
    pub user: Option<(u32, u32, Vec<u32>)>,
}

impl ProcessOverrides {
    /// Applies these to an OCI process object.
    pub fn apply(&self, process: &mut Value) {
        let Some(p) = process.as_object_mut() else { return };
        if !self.env.is_empty() {
            let mut env: Vec<String> = p
                .get("env")
                .and_then(|e| serde_json::from_value(e.clone()).ok())
                .unwrap_or_default();
            for kv in &self.env {
                let key = kv.split('=').next().unwrap_or(kv);
                env.retain(|e| e.split('=').next() != Some(key));
                env.push(kv.clone());
            }
            p.insert("env".into(), serde_json::json!(env));
        }
        if let Some(cwd) = &self.cwd {
            p.insert("cwd".into(), serde_json::json!(cwd));
        }
        if let Some((uid, gid, gids)) = &self.user {
            p.insert(
                "user".into(),
                serde_json::json!({"uid": uid, "gid": gid, "additionalGids": gids}),
            );
        }
    }
}

/// The process's stdio, as berthd holds it.
pub enum ExecIo {
    /// A pty: one master for input and (merged) output.
    Tty(OwnedFd),
    Pipes {
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    },
}

pub struct ExecProcess {
    child: Child,
    runtime_pid: Option<i32>,
    process_file: PathBuf,
    pid_file: PathBuf,
    /// In a gVisor sandbox: how to kill the process there (killing `runsc exec` alone
    /// leaves it running inside), and the file runsc writes its pid there to.
    in_sandbox: Option<(berth_shim::oci::OciRuntime, String, PathBuf)>,
    exited: bool,
    reaped: Arc<AtomicBool>,
}

/// Tells the runtime of an exec that its pty changed size.
#[derive(Clone)]
pub struct Winch {
    runtime_pid: Option<i32>,
    reaped: Arc<AtomicBool>,
}

impl Winch {
    /// The runtime copies the pty's new size onto the container's console on SIGWINCH.
    pub fn send(&self) {
        if self.reaped.load(Ordering::Acquire) {
            return;
        }
        if let Some(pid) = self.runtime_pid.and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::WINCH);
        }
    }
}

fn unique(bundle: &Path, what: &str) -> PathBuf {
    use std::sync::atomic::AtomicU64;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    bundle.join(format!("stream-exec-{}-{n}.{what}", std::process::id()))
}

fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// The OCI process of an exec: the container's own, with the exec's args, terminal and
/// overrides.
pub fn process_for(t: &RuntimeTarget, o: &ExecOptions) -> io::Result<Value> {
    let config: Value = std::fs::read(t.bundle.join("config.json"))
        .and_then(|b| serde_json::from_slice(&b).map_err(io::Error::other))?;
    let mut process = berth_shim::api::exec_process(&config, &o.args, o.tty).map_err(io::Error::other)?;
    o.overrides.apply(&mut process);
    Ok(process)
}

/// Starts `<runtime> exec` for a running container.
pub fn spawn(t: &RuntimeTarget, o: &ExecOptions) -> io::Result<(ExecProcess, ExecIo)> {
    if t.shim_v2 {
        return Err(io::Error::other(
            "a container of a shim v2 runs interactive execs through its shim; a detached exec is not available",
        ));
    }
    let process = process_for(t, o)?;
    let process_file = unique(&t.bundle, "json");
    let pid_file = unique(&t.bundle, "pid");
    write_private(&process_file, &serde_json::to_vec(&process).map_err(io::Error::other)?)?;
    let runtime = berth_shim::oci::OciRuntime {
        bin: t.runtime.clone(),
        root: t.runtime_root.clone(),
        systemd_cgroup: t.systemd_cgroup,
        log: t.bundle.join("runc.log"),
        args: t.runtime_args.clone(),
    };
    let internal_pid_file = t.gvisor.then(|| unique(&t.bundle, "internal-pid"));
    let exec = match &internal_pid_file {
        Some(internal) => runtime.exec_in_sandbox(&process_file, &pid_file, internal, &t.id),
        None => runtime.exec(&process_file, &pid_file, &t.id),
    };
    let mut cmd = tokio::process::Command::from(exec);
    cmd.kill_on_drop(true);
    let mut master = None;
    if o.tty {
        let p = pty::open()?;
        cmd.stdin(p.slave.try_clone()?)
            .stdout(p.slave.try_clone()?)
            .stderr(p.slave);
        master = Some(p.master);
    } else {
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        cmd.stdin(pipe(o.stdin)).stdout(pipe(o.stdout)).stderr(pipe(o.stderr));
    }
    let spawned = cmd.spawn();
    // The slave copies went to the child; ours close with `cmd`.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&process_file);
            return Err(io::Error::new(e.kind(), format!("{}: {e}", t.runtime.display())));
        }
    };
    let io = match master {
        Some(m) => ExecIo::Tty(m),
        None => ExecIo::Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        },
    };
    let runtime_pid = child.id().map(|p| p as i32);
    Ok((
        ExecProcess {
            child,
            runtime_pid,
            process_file,
            pid_file,
            in_sandbox: internal_pid_file.map(|f| (runtime, t.id.clone(), f)),
            exited: false,
            reaped: Arc::new(AtomicBool::new(false)),
        },
        io,
    ))
}

impl ExecProcess {
    /// Waits for the exec'd process; its exit status (128 + signal when killed).
    pub async fn wait(&mut self) -> io::Result<i32> {
        let status = self.child.wait().await?;
        self.exited = true;
        self.reaped.store(true, Ordering::Release);
        self.cleanup_files();
        use std::os::unix::process::ExitStatusExt;
        Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    pub fn winch(&self) -> Winch {
        Winch {
            runtime_pid: self.runtime_pid,
            reaped: self.reaped.clone(),
        }
    }

    /// SIGKILLs the exec'd process (and the runtime) unless it has exited.
    pub fn kill(&mut self) {
        if self.exited {
            return;
        }
        let pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(Pid::from_raw);
        if let Some(pid) = pid {
            let _ = kill_process(pid, Signal::KILL);
        }
        if let Some((runtime, id, file)) = &self.in_sandbox {
            let pid = std::fs::read_to_string(file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let mut kill = runtime.kill_in_sandbox(id, pid, 9);
                kill.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                // Waited for on a thread of its own: this runs in Drop.
                std::thread::spawn(move || kill.status());
            }
        }
        let _ = self.child.start_kill();
    }

    fn cleanup_files(&self) {
        let _ = std::fs::remove_file(&self.process_file);
        let _ = std::fs::remove_file(&self.pid_file);
        if let Some((_, _, file)) = &self.in_sandbox {
            let _ = std::fs::remove_file(file);
        }
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        self.kill();
        self.cleanup_files();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_what_they_name_and_keep_the_rest() {
        let mut process = serde_json::json!({
            "env": ["PATH=/bin", "HOME=/root"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
        });
        ProcessOverrides {
            env: vec!["HOME=/x".into(), "NEW=1".into()],
            cwd: Some("/tmp".into()),
            user: Some((1, 2, vec![3])),
        }
        .apply(&mut process);
        assert_eq!(process["env"], serde_json::json!(["PATH=/bin", "HOME=/x", "NEW=1"]));
        assert_eq!(process["cwd"], "/tmp");
        assert_eq!(
            process["user"],
            serde_json::json!({"uid": 1, "gid": 2, "additionalGids": [3]})
        );
        assert_eq!(process["args"], serde_json::json!(["sh"]));
        let before = process.clone();
        ProcessOverrides::default().apply(&mut process);
        assert_eq!(process, before, "nothing asked, nothing changed");
    }
}
