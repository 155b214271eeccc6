//! The other runtime the fault tests can run against: Debian's containerd with its CRI
//! plugin, started by [`crate::Berthd`] in place of berthd when `E2E_RUNTIME=containerd`
//! (or [`crate::BerthdOpts::runtime`] says so). Everything it keeps lives in the test's
//! directory, as berthd's does: root, state, the runc root and the netns pins.

use std::path::Path;

/// Which CRI runtime a test's daemon is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Runtime {
    #[default]
    Berth,
    Containerd,
}

impl Runtime {
    /// `E2E_RUNTIME` (`berth`, the default, or `containerd`).
    pub fn from_env() -> Runtime {
        match std::env::var("E2E_RUNTIME").as_deref() {
            Ok("containerd") => Runtime::Containerd,
            Ok("berth") | Ok("") | Err(_) => Runtime::Berth,
            Ok(other) => panic!("E2E_RUNTIME={other}: berth or containerd"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Berth => "berth",
            Runtime::Containerd => "containerd",
        }
    }
}

/// Where containerd's CRI plugin finds what berthd takes as flags.
#[derive(Debug, Default)]
pub struct Settings<'a> {
    pub hosts_dir: Option<&'a Path>,
    pub cni_conf_dir: Option<&'a str>,
    pub cni_bin_dir: Option<&'a str>,
    pub sandbox_image: Option<&'a str>,
}

/// The value after `flag` in berthd-style arguments.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// containerd's config.toml for a daemon whose directories are `root`/`state`, serving
/// `socket`. A restricted oom_score_adj: this host lacks CAP_SYS_RESOURCE. containerd takes
/// one CNI plugin directory: the first of a `:`-separated list.
pub fn config(root: &Path, state: &Path, socket: &Path, s: &Settings) -> String {
    let q = |p: &Path| p.display().to_string();
    let mut out = format!(
        "version = 2\nroot = \"{}\"\nstate = \"{}\"\n[grpc]\n  address = \"{}\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n",
        q(root),
        q(state),
        q(socket)
    );
    if let Some(image) = s.sandbox_image {
        out.push_str(&format!("  sandbox_image = \"{image}\"\n"));
    }
    out.push_str(&format!(
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  Root = \"{}\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{}\"\n  conf_dir = \"{}\"\n",
        q(&state.join("runc")),
        s.cni_bin_dir.and_then(|d| d.split(':').next()).unwrap_or("/usr/lib/cni"),
        s.cni_conf_dir.unwrap_or("/etc/cni/net.d"),
    ));
    if let Some(hosts) = s.hosts_dir {
        out.push_str(&format!(
            "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{}\"\n",
            q(hosts)
        ));
    }
    out
}

/// The runc roots a daemon under `state` may keep containers in.
pub fn runc_roots(state: &Path) -> Vec<std::path::PathBuf> {
    let mut roots = Vec::new();
    for parent in [state.join("runtimes"), state.join("runc")] {
        if let Ok(rd) = std::fs::read_dir(parent) {
            roots.extend(rd.flatten().map(|e| e.path()));
        }
    }
    roots
}

/// The cgroup parent containerd's CRI plugin gives pods without one (`/k8s.io`), in each
/// hierarchy where it does not exist yet: what a test's containerd will have made.
pub fn new_cgroup_parents() -> Vec<std::path::PathBuf> {
    crate::kubelet::hierarchies()
        .into_iter()
        .map(|h| h.join("k8s.io"))
        .filter(|p| !p.exists())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_carries_every_setting() {
        let s = Settings {
            hosts_dir: Some(Path::new("/h")),
            cni_conf_dir: Some("/c"),
            cni_bin_dir: Some("/w:/usr/lib/cni"),
            sandbox_image: Some("127.0.0.1:5000/e2e/pause:1"),
        };
        let c = config(
            Path::new("/d/root"),
            Path::new("/d/state"),
            Path::new("/d/state/s.sock"),
            &s,
        );
        for want in [
            "root = \"/d/root\"",
            "address = \"/d/state/s.sock\"",
            "sandbox_image = \"127.0.0.1:5000/e2e/pause:1\"",
            "Root = \"/d/state/runc\"",
            "bin_dir = \"/w\"",
            "conf_dir = \"/c\"",
            "config_path = \"/h\"",
            "netns_mounts_under_state_dir = true",
        ] {
            assert!(c.contains(want), "{want} missing from\n{c}");
        }
        let args: Vec<String> = ["--cni-conf-dir", "/c", "--x"].map(String::from).to_vec();
        assert_eq!(flag_value(&args, "--cni-conf-dir"), Some("/c"));
        assert_eq!(flag_value(&args, "--x"), None);
    }
}
