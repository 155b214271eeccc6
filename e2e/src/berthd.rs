//! [`Berthd`]: the berthd binary run for one test, in a throw-away directory.
//!
//! Layout of the temporary directory: `root/` (`--root`), `state/` (`--state`),
//! `state/berth.sock` (the CRI socket), `berthd.toml` (with a config) and `berthd.log`
//! (stdout and stderr of every run, appended).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::containerd::{self, Runtime};
use crate::registry::read_lossy;
use crate::sys;

/// How long [`Berthd::start`] waits for the socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Berthd::stop`] waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long dropping a [`Berthd`] waits for its pods to be removed through the CRI.
const REMOVE_ALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of log shown in a start failure.
const LOG_TAIL_LINES: usize = 60;

/// Options for [`Berthd::start`].
#[derive(Debug, Clone, Default)]
pub struct BerthdOpts {
    /// `--registry-config-path DIR` (hosts.toml-style per-registry configuration).
    pub registry_config_dir: Option<PathBuf>,
    /// Appended after the standard arguments.
    pub extra_args: Vec<String>,
    /// Written to `<tempdir>/berthd.toml` and passed as `--config`.
    pub config_toml: Option<String>,
    /// The binary to run instead of the one [`berthd_binary`] finds.
    pub binary: Option<PathBuf>,
    /// Ready once the socket accepts a connection, instead of once a CRI Version call is
    /// answered: for a stand-in that speaks no CRI.
    pub ready_on_connect: bool,
    /// The runtime to run: berthd, or containerd in its place (see [`crate::containerd`]);
    /// `None` reads `E2E_RUNTIME`.
    pub runtime: Option<Runtime>,
    /// containerd's sandbox (pause) image; berthd has its own infra process.
    pub sandbox_image: Option<String>,
}

/// A berthd process for one test. Dropping it stops the process, detaches every mount left
/// under its directory (deepest first), then removes the directory.
#[derive(Debug)]
pub struct Berthd {
    child: Option<Child>,
    binary: PathBuf,
    args: Vec<String>,
    root: PathBuf,
    state: PathBuf,
    socket: PathBuf,
    log_path: PathBuf,
    ready_on_connect: bool,
    runtime: Runtime,
    /// Cgroup parents the runtime made that were not there before it started (containerd's
    /// `k8s.io` for pods without a cgroup parent): removed with it.
    cgroup_parents: Vec<PathBuf>,
    /// Taken in `Drop`: removed, or kept if mounts could not be detached.
    dir: Option<TempDir>,
}

/// The berthd to test: env `BERTHD` if set, else `<workspace>/target/debug/berthd`.
pub fn berthd_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTHD") {
        return Ok(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/berthd");
    if !p.exists() {
        bail!(
            "berthd binary not found at {}: build it first: cargo build --bin berthd (or set BERTHD)",
            p.display()
        );
    }
    Ok(p)
}

/// Whether berthd answers a CRI call: the socket is bound before the daemon is open, so a
/// connection alone says only that the process got that far.
async fn answers(socket: &Path) -> bool {
    let call = async {
        let mut cri = crate::cri::Cri::connect(socket).await.ok()?;
        cri.runtime.version(k8s_cri::v1::VersionRequest::default()).await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), call).await, Ok(Some(_)))
}

impl Berthd {
    /// Creates the directory, starts berthd with
    /// `--listen unix://<sock> --root <root> --state <state> [--registry-config-path DIR]
    /// [--config FILE] --log-level debug <extra_args>` and waits (20 s at most) until it
    /// answers a CRI Version call (see [`BerthdOpts::ready_on_connect`]). On failure the error carries the log's tail.
    pub async fn start(opts: BerthdOpts) -> Result<Berthd> {
        let runtime = opts.runtime.unwrap_or_else(Runtime::from_env);
        let binary = match (&opts.binary, runtime) {
            (Some(b), _) => b.clone(),
            (None, Runtime::Berth) => berthd_binary()?,
            (None, Runtime::Containerd) => PathBuf::from("containerd"),
        };
        let dir = tempfile::Builder::new().prefix("berth-e2e-").tempdir()?;
        // Traversable, as /var/lib is: containers in a pod's own user namespace reach
        // their root filesystems through it.
        fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&state)?;
        let socket = state.join("berth.sock");
        let log_path = dir.path().join("berthd.log");

        let mut args = vec![
            "--listen".to_string(),
            format!("unix://{}", socket.display()),
            "--root".into(),
            root.display().to_string(),
            "--state".into(),
            state.display().to_string(),
            // Each berthd its own NRI socket, so test daemons never take the node's.
            "--nri-socket".into(),
            state.join("nri.sock").display().to_string(),
        ];
        if let Some(d) = &opts.registry_config_dir {
            args.push("--registry-config-path".into());
            args.push(d.display().to_string());
        }
        if let Some(toml) = &opts.config_toml {
            let cfg = dir.path().join("berthd.toml");
            fs::write(&cfg, toml)?;
            args.push("--config".into());
            args.push(cfg.display().to_string());
        }
        args.push("--log-level".into());
        args.push("debug".into());
        if runtime == Runtime::Containerd {
            let cfg = dir.path().join("containerd.toml");
            let settings = containerd::Settings {
                hosts_dir: opts.registry_config_dir.as_deref(),
                cni_conf_dir: containerd::flag_value(&opts.extra_args, "--cni-conf-dir"),
                cni_bin_dir: containerd::flag_value(&opts.extra_args, "--cni-bin-dir"),
                sandbox_image: opts.sandbox_image.as_deref(),
            };
            fs::write(&cfg, containerd::config(&root, &state, &socket, &settings))?;
            args = vec!["--config".into(), cfg.display().to_string()];
        } else {
            args.extend(opts.extra_args);
        }

        let mut d = Berthd {
            child: None,
            binary,
            args,
            root,
            state,
            socket,
            log_path,
            ready_on_connect: opts.ready_on_connect,
            runtime,
            cgroup_parents: match runtime {
                Runtime::Containerd => containerd::new_cgroup_parents(),
                Runtime::Berth => Vec::new(),
            },
            dir: Some(dir),
        };
        d.spawn_and_wait().await?;
        Ok(d)
    }

    async fn spawn_and_wait(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("berthd exited during startup: {status}\n{}", self.log_tail());
                }
            }
            let ready = if self.ready_on_connect {
                tokio::net::UnixStream::connect(&self.socket).await.is_ok()
            } else {
                answers(&self.socket).await
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                bail!(
                    "berthd's socket {} did not accept within {START_TIMEOUT:?}\n{}",
                    self.socket.display(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!("--- berthd log ({}), last lines ---\n{tail}", self.log_path.display())
    }

    /// Which runtime this is.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// The CRI socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix://<socket>`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `--root`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `--state`.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The temporary directory holding root, state, config and log.
    pub fn dir(&self) -> &Path {
        // Only `Drop` takes it.
        self.dir.as_ref().map_or(Path::new("/nonexistent"), TempDir::path)
    }

    /// Everything berthd wrote so far, across restarts.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL (a crash: no cleanup by berthd), and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = sys::signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// SIGTERM, up to 10 s to exit, then SIGKILL. Blocks; idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            sys::terminate(&mut child, STOP_GRACE);
        }
    }

    /// Stops berthd if running, then starts it again with the same directories and arguments.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn_and_wait().await
    }
}

impl Berthd {
    /// Stops and removes every pod through the CRI (which ends their containers, shims and
    /// infra processes and tears their networks down): pods outlive berthd by design, so a
    /// test's berthd must take its pods with it.
    fn remove_all_pods(&mut self) {
        if self.is_running() {
            remove_all_pods_at(self.socket());
        }
    }

    /// Last resort for what berthd could not take down (it died, or a test killed it):
    /// containers in the runtimes' state roots, then the shims and infra processes whose
    /// command line names this test's directory (all started by this test's berthd).
    fn sweep(dir: &Path) {
        for root in containerd::runc_roots(&dir.join("state")) {
            let out = std::process::Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["list", "-q"])
                .output();
            for id in out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .lines()
            {
                let _ = std::process::Command::new("runc")
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", id])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        let needle = dir.to_string_lossy().into_owned();
        if let Ok(procs) = fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if pid as u32 != std::process::id() && cmdline.contains(&needle) {
                    let _ = sys::signal(pid as u32, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        self.remove_all_pods();
        self.stop();
        let Some(dir) = self.dir.take() else { return };
        Self::sweep(dir.path());
        for parent in &self.cgroup_parents {
            crate::kubelet::remove_tree(parent);
        }
        unmount_under(dir.path());
        let left = mounts_under(dir.path());
        if !left.is_empty() {
            // Removing the directory would descend into those mounts and delete what they show.
            let kept = dir.keep();
            eprintln!(
                "berth-e2e: keeping {} because these are still mounted: {left:?}",
                kept.display()
            );
        }
    }
}

/// Stops and removes every pod sandbox of the CRI runtime at `socket` (up to two minutes;
/// one that does not answer is left to the caller).
pub fn remove_all_pods_at(socket: &Path) {
    let socket = socket.to_path_buf();
    let cleanup = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        // A daemon that stopped answering is left to the caller (Berthd sweeps it).
        rt.block_on(async {
            tokio::time::timeout(REMOVE_ALL_TIMEOUT, async {
                use crate::cri::v1 as cri;
                let mut c = crate::cri::Cri::connect(&socket).await.ok()?;
                let pods = c
                    .runtime
                    .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
                    .await
                    .ok()?;
                for p in pods.into_inner().items {
                    let id = p.id;
                    let _ = c
                        .runtime
                        .stop_pod_sandbox(cri::StopPodSandboxRequest {
                            pod_sandbox_id: id.clone(),
                        })
                        .await;
                    let _ = c
                        .runtime
                        .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                        .await;
                }
                Some(())
            })
            .await
        })
        .ok()
        .flatten()
    });
    let _ = cleanup.join();
}

/// Waits until the unix socket at `path` accepts a connection.
pub async fn wait_for_socket(path: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::net::UnixStream::connect(path).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("{} did not accept within {timeout:?}: {e}", path.display())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Mount points at or under `dir`, from `/proc/self/mountinfo` (octal escapes decoded).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(std::ffi::OsStr::from_bytes(&unescape_mountinfo(m))))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// Detaches every mount at or under `dir`, deepest first, repeating for stacked mounts.
pub fn unmount_under(dir: &Path) {
    for _ in 0..16 {
        let mut mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            if let Err(e) = sys::umount_detach(&m) {
                eprintln!("berth-e2e: umount2({}, MNT_DETACH): {e}", m.display());
            }
        }
    }
}

/// Decodes mountinfo's `\ooo` escapes (space, tab, newline, backslash).
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), b"/a b\\c");
        assert_eq!(unescape_mountinfo(r"/plain\"), b"/plain\\");
    }
}
