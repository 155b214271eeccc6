//! The real kubelet (v1.36, from the offline kit in `../shared/kube`) in standalone mode
//! against a berthd: static pods from a manifest directory, its own cgroup root, ports and
//! directories, so that it changes nothing of the host that it does not take back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::apiserver::ApiServer;
use crate::{free_port, sys};

/// Where node-e2e.sh unpacks the kit's binaries; shared so each is unpacked once.
fn kit_bin_dir() -> PathBuf {
    std::env::var_os("KUBE_KIT_BIN").map_or_else(|| PathBuf::from("/var/tmp/berth-kube-kit"), PathBuf::from)
}

/// The kit: `$KUBE_KIT`, else `../shared/kube` beside the repository.
fn kit_dir() -> PathBuf {
    std::env::var_os("KUBE_KIT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/kube"),
        PathBuf::from,
    )
}

/// The kubelet binary, unpacked from the kit's `bin/kubelet.xz` when missing or stale (the
/// same cache and check node-e2e.sh uses).
pub fn kubelet_binary() -> Result<PathBuf> {
    kit_binary("kubelet")
}

/// A binary of the kit (`kubelet`, `kubectl`, `e2e_node.test`), unpacked from its
/// `bin/NAME.xz` when missing or stale.
pub fn kit_binary(name: &str) -> Result<PathBuf> {
    let dir = kit_bin_dir();
    let bin = dir.join(name);
    let xz = kit_dir().join(format!("bin/{name}.xz"));
    if !xz.exists() {
        if bin.exists() {
            return Ok(bin);
        }
        bail!(
            "no {name}: {} is missing (the node e2e kit, ../shared/kube)",
            xz.display()
        );
    }
    let out = Command::new("sha256sum").arg(&xz).output().context("sha256sum")?;
    let sum: String = String::from_utf8_lossy(&out.stdout).chars().take(16).collect();
    let sum_file = dir.join(format!("{name}.sum"));
    if bin.exists() && std::fs::read_to_string(&sum_file).is_ok_and(|s| s.trim() == sum) {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("{name}.tmp{}", std::process::id()));
    let file = std::fs::File::create(&tmp)?;
    let st = Command::new("xz")
        .arg("-dc")
        .arg(&xz)
        .stdout(file)
        .status()
        .context("xz (apt-get install xz-utils)")?;
    if !st.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("xz -dc {} failed", xz.display());
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &bin)?;
    std::fs::write(&sum_file, format!("{sum}\n"))?;
    Ok(bin)
}

/// The last `n` lines of `text` (a log's tail, for failure messages).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A kubelet process and everything it was given: stopped, its mounts detached and its cgroup
/// root removed when dropped.
pub struct Kubelet {
    child: Option<Child>,
    /// The runtime's socket: the pods kubelet left (a test that failed midway) are removed
    /// through it before kubelet's cgroup root, which they sit in.
    socket: Option<PathBuf>,
    /// The host had no `KUBE-*` iptables chains before: those kubelet adds are removed.
    remove_kube_chains: bool,
    dir: tempfile::TempDir,
    /// The cgroup root kubelet was given (`/berth-e2e-kubelet-<pid>`): it makes its
    /// `kubepods` tree there, fresh for every test.
    pub cgroup_root: String,
    /// The HTTPS port of kubelet's API (anonymous, AlwaysAllow, self-signed).
    pub port: u16,
    pub node_name: String,
}

impl Kubelet {
    /// Starts kubelet against `endpoint` with static pods from [`Kubelet::manifests`].
    pub fn start(endpoint: &str) -> Result<Kubelet> {
        Kubelet::start_with(endpoint, &[])
    }

    /// [`Kubelet::start`] with some settings of the kit's configuration replaced
    /// (`("imageGCHighThresholdPercent", "1")`); a key the kit lacks is added.
    pub fn start_with(endpoint: &str, settings: &[(&str, &str)]) -> Result<Kubelet> {
        Kubelet::launch(endpoint, settings, None)
    }

    /// Starts kubelet against `endpoint` as a node of `api` (it registers itself and runs the
    /// pods bound to it, RuntimeClasses resolved through the API), static pods too.
    pub fn start_on(endpoint: &str, api: &ApiServer) -> Result<Kubelet> {
        Kubelet::launch(endpoint, &[], Some(&api.kubeconfig))
    }

    fn launch(endpoint: &str, settings: &[(&str, &str)], kubeconfig: Option<&Path>) -> Result<Kubelet> {
        let bin = kubelet_binary()?;
        let dir = tempfile::tempdir()?;
        let remove_kube_chains = kube_chains().is_empty();
        let cgroup_root = format!("/berth-e2e-kubelet-{}", std::process::id());
        for h in hierarchies() {
            std::fs::create_dir_all(h.join(cgroup_root.trim_start_matches('/')))?;
        }
        let port = free_port();
        let healthz = free_port();
        let base = std::fs::read_to_string(kit_dir().join("kubelet-config.yaml"))
            .context("the kit's kubelet-config.yaml")?
            .replace("cgroupRoot: /\n", "");
        let base = with_settings(&base, settings);
        for d in ["manifests", "root", "logs", "certs"] {
            std::fs::create_dir_all(dir.path().join(d))?;
        }
        let p = |d: &str| dir.path().join(d).display().to_string();
        let config = format!(
            "{base}\ncgroupRoot: {cgroup_root}\nstaticPodPath: {}\npodLogsDir: {}\naddress: 127.0.0.1\n\
             port: {port}\nreadOnlyPort: 0\nhealthzBindAddress: 127.0.0.1\nhealthzPort: {healthz}\n\
             syncFrequency: 5s\nauthentication:\n  anonymous:\n    enabled: true\n  webhook:\n    enabled: false\n\
             authorization:\n  mode: AlwaysAllow\n",
            p("manifests"),
            p("logs"),
        );
        std::fs::write(dir.path().join("config.yaml"), config)?;
        let node_name = "berth-e2e".to_string();
        let log = std::fs::File::create(dir.path().join("kubelet.log"))?;
        let mut cmd = Command::new(bin);
        if let Some(kubeconfig) = kubeconfig {
            cmd.arg(format!("--kubeconfig={}", kubeconfig.display()));
        }
        let child = cmd
            .arg(format!("--config={}", dir.path().join("config.yaml").display()))
            .arg(format!("--container-runtime-endpoint={endpoint}"))
            .arg(format!("--root-dir={}", p("root")))
            .arg(format!("--cert-dir={}", p("certs")))
            .arg(format!("--hostname-override={node_name}"))
            .arg("--v=2")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting kubelet")?;
        Ok(Kubelet {
            child: Some(child),
            socket: endpoint.strip_prefix("unix://").map(PathBuf::from),
            remove_kube_chains,
            dir,
            cgroup_root,
            port,
            node_name,
        })
    }

    /// The static pod directory.
    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// kubelet's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kubelet.log")).unwrap_or_default()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        last_lines(&self.log(), n)
    }

    /// Whether kubelet is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops kubelet (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sys::terminate(&mut c, Duration::from_secs(10));
        }
    }

    /// Directories under the cgroup root, in every hierarchy, relative to the root.
    pub fn cgroup_dirs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in hierarchies() {
            let root = h.join(self.cgroup_root.trim_start_matches('/'));
            walk_dirs(&root, &root, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop();
        if let Some(socket) = self.socket.as_ref().filter(|s| s.exists()) {
            crate::berthd::remove_all_pods_at(socket);
        }
        crate::berthd::unmount_under(self.dir.path());
        for h in hierarchies() {
            remove_tree(&h.join(self.cgroup_root.trim_start_matches('/')));
        }
        if self.remove_kube_chains {
            remove_kube_chains();
        }
    }
}

/// `config` (top-level YAML keys) with the values of `settings` in place of its own.
fn with_settings(config: &str, settings: &[(&str, &str)]) -> String {
    let mut lines: Vec<String> = config
        .lines()
        .filter(|l| !settings.iter().any(|(k, _)| l.starts_with(&format!("{k}:"))))
        .map(str::to_string)
        .collect();
    lines.extend(settings.iter().map(|(k, v)| format!("{k}: {v}")));
    lines.join("\n") + "\n"
}

/// `(command, table, line)` of every line of `iptables-save` and `ip6tables-save`.
fn saved_rules() -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for cmd in ["iptables", "ip6tables"] {
        let save = Command::new(format!("{cmd}-save"))
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        let mut table = String::new();
        for line in String::from_utf8_lossy(&save).lines() {
            match line.strip_prefix('*') {
                Some(t) => table = t.to_string(),
                None => out.push((cmd, table.clone(), line.to_string())),
            }
        }
    }
    out
}

/// `(command, table, chain)` of every `KUBE-*` iptables chain (IPv4 and IPv6).
fn kube_chains() -> Vec<(&'static str, String, String)> {
    saved_rules()
        .into_iter()
        .filter_map(|(cmd, table, line)| {
            let name = line.strip_prefix(":KUBE-")?.split_whitespace().next()?.to_string();
            Some((cmd, table, format!("KUBE-{name}")))
        })
        .collect()
}

/// Takes out the chains kubelet made (its localnet firewall and canaries) and the jumps to
/// them from the built-in chains.
fn remove_kube_chains() {
    let chains = kube_chains();
    for (cmd, table, line) in saved_rules() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        if !rule.starts_with("KUBE-") && rule.contains("-j KUBE-") {
            let mut args = vec!["-t".to_string(), table, "-D".to_string()];
            args.extend(rule.split_whitespace().map(str::to_string));
            let _ = Command::new(cmd).args(&args).stderr(Stdio::null()).status();
        }
    }
    for flag in ["-F", "-X"] {
        for (cmd, table, chain) in &chains {
            let _ = Command::new(cmd)
                .args(["-t", table, flag, chain])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Mounted cgroup hierarchies: `/sys/fs/cgroup` on v2, else every v1 mount (named ones such
/// as `name=systemd` too, kubelet wants its cgroup root in each) and the hybrid layout's v2
/// tree.
pub fn hierarchies() -> Vec<PathBuf> {
    mounted(true)
}

/// The hierarchies Berth makes its cgroups in: the v2 root, else the v1 controller mounts.
pub fn berth_hierarchies() -> Vec<PathBuf> {
    mounted(false)
}

fn mounted(all: bool) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let opts = right.split_whitespace().nth(2).unwrap_or("");
            let mp = left.split_whitespace().nth(4)?;
            ((fstype == "cgroup" && (all || !opts.contains("name="))) || (all && fstype == "cgroup2"))
                .then(|| PathBuf::from(mp))
        })
        .filter(|p| p.starts_with(root))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn walk_dirs(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.display().to_string());
            }
            walk_dirs(root, &p, out);
        }
    }
}

/// Removes a cgroup directory tree, deepest first (cgroup dirs are removed with rmdir).
pub fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
