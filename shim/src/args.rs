//! Command line: `berth-shim start|serve --id ID --bundle DIR --runtime PATH
//! --runtime-root DIR --log-path FILE [--runtime-arg FLAG]... [--stdin] [--stdin-once]
//! [--tty] [--systemd-cgroup] [--gvisor] [--shim-v2 [--events-address PATH]]`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const USAGE: &str = "usage: berth-shim start|serve --id ID --bundle DIR --runtime PATH --runtime-root DIR \
--log-path FILE [--runtime-arg FLAG]... [--stdin] [--stdin-once] [--tty] [--systemd-cgroup] [--gvisor] \
[--shim-v2 [--events-address PATH]]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    pub log_path: PathBuf,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub systemd_cgroup: bool,
    /// The runtime handler's own global flags.
    pub runtime_args: Vec<String>,
    /// The runtime is gVisor's runsc: a container of a pod sandbox takes its stdio at
    /// `start`, and its exit is learnt from `runsc wait` (its pid is the sandbox's).
    pub gvisor: bool,
    /// `runtime` is a containerd shim v2 binary, driven over its Task API (see
    /// `serve::task`).
    pub shim_v2: bool,
    /// The ttrpc Events service a shim v2 publishes to (its `TTRPC_ADDRESS`).
    pub events_address: Option<PathBuf>,
}

impl Args {
    /// Parses the arguments after the subcommand. Relative paths are made absolute (the
    /// serving shim changes into the bundle directory).
    pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
        let (mut id, mut bundle, mut runtime, mut root, mut log) = (None, None, None, None, None);
        let mut a = Args {
            id: String::new(),
            bundle: PathBuf::new(),
            runtime: PathBuf::new(),
            runtime_root: PathBuf::new(),
            log_path: PathBuf::new(),
            stdin: false,
            stdin_once: false,
            tty: false,
            systemd_cgroup: false,
            runtime_args: Vec::new(),
            gvisor: false,
            shim_v2: false,
            events_address: None,
        };
        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            let name = arg.to_str().ok_or_else(|| format!("bad argument {arg:?}"))?.to_string();
            let slot = match name.as_str() {
                "--stdin" => {
                    a.stdin = true;
                    continue;
                }
                "--stdin-once" => {
                    a.stdin_once = true;
                    continue;
                }
                "--tty" => {
                    a.tty = true;
                    continue;
                }
                "--systemd-cgroup" => {
                    a.systemd_cgroup = true;
                    continue;
                }
                "--gvisor" => {
                    a.gvisor = true;
                    continue;
                }
                "--shim-v2" => {
                    a.shim_v2 = true;
                    continue;
                }
                "--events-address" => {
                    let v = it.next().ok_or("--events-address needs a value")?;
                    a.events_address = Some(absolute(v.into())?);
                    continue;
                }
                "--runtime-arg" => {
                    let v = it.next().ok_or("--runtime-arg needs a value")?;
                    let v = v.into_string().map_err(|_| "bad --runtime-arg".to_string())?;
                    if !v.starts_with('-') {
                        return Err(format!("--runtime-arg {v:?} is not a flag"));
                    }
                    a.runtime_args.push(v);
                    continue;
                }
                "--id" => &mut id,
                "--bundle" => &mut bundle,
                "--runtime" => &mut runtime,
                "--runtime-root" => &mut root,
                "--log-path" => &mut log,
                _ => return Err(format!("unknown argument {name}")),
            };
            *slot = Some(it.next().ok_or_else(|| format!("{name} needs a value"))?);
        }
        let need = |v: Option<OsString>, name: &str| v.ok_or_else(|| format!("missing {name}"));
        a.id = need(id, "--id")?.into_string().map_err(|_| "bad --id".to_string())?;
        if a.id.is_empty() || a.id.starts_with('-') || a.id.contains('/') {
            return Err(format!("bad --id {:?}", a.id));
        }
        a.bundle = absolute(need(bundle, "--bundle")?.into())?;
        a.runtime = need(runtime, "--runtime")?.into();
        if a.runtime.components().count() > 1 {
            a.runtime = absolute(a.runtime)?;
        }
        a.runtime_root = absolute(need(root, "--runtime-root")?.into())?;
        a.log_path = absolute(need(log, "--log-path")?.into())?;
        Ok(a)
    }

    /// The arguments after the subcommand, as `parse` reads them.
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        for (flag, value) in [
            ("--id", Path::new(&self.id)),
            ("--bundle", &self.bundle),
            ("--runtime", &self.runtime),
            ("--runtime-root", &self.runtime_root),
            ("--log-path", &self.log_path),
        ] {
            v.push(flag.into());
            v.push(value.into());
        }
        if let Some(events) = &self.events_address {
            v.push("--events-address".into());
            v.push(events.into());
        }
        for arg in &self.runtime_args {
            v.push("--runtime-arg".into());
            v.push(arg.into());
        }
        for (flag, on) in [
            ("--stdin", self.stdin),
            ("--stdin-once", self.stdin_once),
            ("--tty", self.tty),
            ("--systemd-cgroup", self.systemd_cgroup),
            ("--gvisor", self.gvisor),
            ("--shim-v2", self.shim_v2),
        ] {
            if on {
                v.push(flag.into());
            }
        }
        v
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf, String> {
    if p.is_absolute() {
        Ok(p)
    } else {
        std::path::absolute(&p).map_err(|e| format!("{}: {e}", p.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let argv: Vec<OsString> = [
            "--id",
            "c1",
            "--bundle",
            "/b",
            "--runtime",
            "runc",
            "--runtime-root",
            "/r",
            "--log-path",
            "/l/x.log",
            "--tty",
            "--stdin",
            "--runtime-arg",
            "--platform=ptrace",
            "--gvisor",
            "--shim-v2",
            "--events-address",
            "/run/e.sock",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let a = Args::parse(argv).expect("parse");
        assert!(a.tty && a.stdin && !a.stdin_once && !a.systemd_cgroup);
        assert_eq!(a.runtime, PathBuf::from("runc"));
        assert!(a.gvisor && a.shim_v2);
        assert_eq!(a.events_address, Some(PathBuf::from("/run/e.sock")));
        assert_eq!(a.runtime_args, ["--platform=ptrace"]);
        assert_eq!(Args::parse(a.to_argv()).expect("again"), a);
        assert!(Args::parse(vec![OsString::from("--id")]).is_err());
        assert!(Args::parse(vec![OsString::from("--bogus")]).is_err());
        let not_a_flag = Args::parse(["--runtime-arg", "ptrace"].iter().map(OsString::from));
        assert!(not_a_flag.is_err());
    }
}
