//! The OCI runtime's command line (runc's, which crun and runsc accept too): the global
//! flags Berth always passes, then one subcommand. Written once, for the shim (create,
//! start, kill, delete, ExecSync) and berthd (interactive exec, update, clean-up after a
//! lost shim).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One OCI runtime as Berth runs it for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    /// The runtime binary.
    pub bin: PathBuf,
    /// Its state directory (`--root`), one per runtime handler.
    pub root: PathBuf,
    /// Cgroup paths are systemd `slice:prefix:name` triples.
    pub systemd_cgroup: bool,
    /// Its own log (`--log`, JSON), in the container's bundle: warnings go there, so that
    /// only fatal errors reach stderr (for `create` without a tty, the container's stderr).
    pub log: PathBuf,
    /// The runtime handler's own global flags (runsc's `--platform=ptrace`), after Berth's.
    pub args: Vec<String>,
}

impl OciRuntime {
    /// `RUNTIME --root R --log L --log-format json [--systemd-cgroup] [ARGS]`, ready for a
    /// subcommand.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        if self.systemd_cgroup {
            c.arg("--systemd-cgroup");
        }
        c.args(&self.args);
        c
    }

    /// `exec --process FILE --pid-file FILE ID`: a process (OCI `process` JSON) in a
    /// running container.
    pub fn exec(&self, process: &Path, pid_file: &Path, id: &str) -> Command {
        self.exec_with(process, pid_file, None, id)
    }

    /// runsc's `exec`: also `--internal-pid-file FILE`, the process's pid inside the gVisor
    /// sandbox, which is what `kill --pid` takes (the `--pid-file` pid is runsc's own).
    pub fn exec_in_sandbox(&self, process: &Path, pid_file: &Path, internal_pid_file: &Path, id: &str) -> Command {
        self.exec_with(process, pid_file, Some(internal_pid_file), id)
    }

    fn exec_with(&self, process: &Path, pid_file: &Path, internal_pid_file: Option<&Path>, id: &str) -> Command {
        let mut c = self.command();
        c.arg("exec")
            .arg("--process")
            .arg(process)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(file) = internal_pid_file {
            c.arg("--internal-pid-file").arg(file);
        }
        c.arg(id);
        c
    }

    /// runsc's `kill --pid PID ID SIGNAL`: one process inside a gVisor sandbox.
    pub fn kill_in_sandbox(&self, id: &str, pid: i32, signal: i32) -> Command {
        let mut c = self.command();
        c.args(["kill", "--pid", &pid.to_string(), id, &signal.to_string()]);
        c
    }

    /// `delete --force ID`: the container's runtime state and cgroup, whatever its state.
    pub fn delete_force(&self, id: &str) -> Command {
        let mut c = self.command();
        c.args(["delete", "--force", id]);
        c
    }

    /// `update --resources - ID`: new limits, as OCI `linux.resources` JSON on stdin.
    pub fn update_resources(&self, id: &str) -> Command {
        let mut c = self.command();
        c.args(["update", "--resources", "-", id]);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<String> {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn global_flags_then_the_subcommand() {
        let mut rt = OciRuntime {
            bin: "/usr/sbin/runc".into(),
            root: "/run/berth/runtimes/default".into(),
            systemd_cgroup: false,
            log: "/b/runc.log".into(),
            args: Vec::new(),
        };
        let global = [
            "/usr/sbin/runc",
            "--root",
            "/run/berth/runtimes/default",
            "--log",
            "/b/runc.log",
            "--log-format",
            "json",
        ];
        let mut want: Vec<&str> = global.to_vec();
        want.extend(["delete", "--force", "c1"]);
        assert_eq!(args(&rt.delete_force("c1")), want);
        rt.systemd_cgroup = true;
        let mut want: Vec<&str> = global.to_vec();
        want.extend([
            "--systemd-cgroup",
            "exec",
            "--process",
            "/b/p.json",
            "--pid-file",
            "/b/p.pid",
            "c1",
        ]);
        assert_eq!(
            args(&rt.exec(Path::new("/b/p.json"), Path::new("/b/p.pid"), "c1")),
            want
        );
        let update = args(&rt.update_resources("c1"));
        assert_eq!(update[update.len() - 4..], ["update", "--resources", "-", "c1"]);
        rt.args = vec!["--platform=ptrace".into()];
        let delete = args(&rt.delete_force("c1"));
        assert_eq!(
            delete[delete.len() - 4..],
            ["--platform=ptrace", "delete", "--force", "c1"]
        );
    }
}
