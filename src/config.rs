//! berthd configuration: one serde struct read from a TOML file, merged with drop-ins
//! from `<file>.d/*.toml` (sorted), then overridden by flags and `BERTH_*` environment
//! variables, then checked by [`Config::validate`].
//!
//! Every key is documented in `deploy/config.toml` and README.md.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::runtime::handler::RuntimeHandler;

/// Default location of the main config file.
pub const DEFAULT_CONFIG: &str = "/etc/berth/config.toml";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// CRI endpoint, `unix:///path/to/socket`.
    pub listen: String,
    /// Persistent data: metadata DB, content store, snapshots.
    pub root: PathBuf,
    /// Runtime state that does not outlive a reboot: sockets, pid files.
    pub state: PathBuf,
    /// Directory of per-registry `hosts.toml` files (containerd's `certs.d` layout).
    pub registry_config_path: PathBuf,
    /// Docker-daemon style mirror list for docker.io, tried in order before the upstream.
    pub registry_mirrors: Vec<String>,
    /// Registries (host or host:port) reached over plain HTTP instead of HTTPS.
    pub insecure_registries: Vec<String>,
    /// Docker-style `config.json` with `auths` used when a pull carries no credentials.
    pub registry_auth_file: PathBuf,
    /// A containers-policy.json(5) signature policy every pull is checked against
    /// (`insecureAcceptAnything`, `reject`, `sigstoreSigned` with public keys); unset:
    /// images are not checked for signatures.
    pub signature_policy: Option<PathBuf>,
    /// Layers of one image downloaded at once.
    pub max_concurrent_downloads: usize,
    /// Seconds a registry may take to answer, or stay silent while sending a body, before
    /// the request fails (a layer download that stalls fails its pull with DeadlineExceeded).
    pub registry_timeout_secs: u64,
    /// Log filter: a level (`info`) or a `RUST_LOG`-style directive list.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// `cgroupfs` or `systemd`; reported to kubelet by `RuntimeConfig`.
    pub cgroup_driver: CgroupDriver,
    /// OCI runtime binary used for the default runtime handler ("").
    pub default_runtime: String,
    /// Named runtime handlers (what a RuntimeClass's `handler` names): an OCI runtime binary
    /// with runc's command line (runc, crun, youki), or a table with `kind` (`oci`,
    /// `gvisor`), `binary` and `args` (see `runtime::handler`).
    pub runtime_handlers: std::collections::BTreeMap<String, crate::runtime::handler::RuntimeHandler>,
    /// Directory of CNI network configs; the first valid file (by name) is used.
    pub cni_conf_dir: PathBuf,
    /// Directories searched, in order, for CNI plugin binaries.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Seconds one CNI plugin call may take before it is killed.
    pub cni_timeout_secs: u64,
    /// Size of each pod's /dev/shm tmpfs, in bytes.
    pub sandbox_shm_size: u64,
    /// The pod infra program; default: `berth-pause` beside berthd, else on PATH.
    pub infra_binary: Option<PathBuf>,
    /// The per-container shim; default: `berth-shim` beside berthd, else on PATH.
    pub shim_binary: Option<PathBuf>,
    /// Upper bounds that protect the node from hostile images.
    pub limits: Limits,
    /// The exec/attach/port-forward streaming server.
    pub streaming: Streaming,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Container Device Interface (GPUs and other devices).
    pub cdi: CdiConfig,
    /// NRI (Node Resource Interface) plugins.
    pub nri: crate::nri::NriConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CdiConfig {
    /// Inject CDI devices requested through `cdi_devices` and `cdi.k8s.io/*` annotations.
    pub enabled: bool,
    /// Directories of CDI spec files, lowest priority first.
    pub spec_dirs: Vec<PathBuf>,
    /// Generate an NVIDIA spec at start when `/dev/nvidia*` exist and no spec declares
    /// `nvidia.com/gpu`.
    pub nvidia_discovery: bool,
    /// Where NVIDIA's driver libraries and tools are installed ("/" normally; the root of a
    /// driver container otherwise).
    pub nvidia_driver_root: PathBuf,
    /// Root under which `/dev/nvidia*` are found ("/" normally).
    pub nvidia_dev_root: PathBuf,
}

impl Default for CdiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            spec_dirs: vec!["/etc/cdi".into(), "/var/run/cdi".into()],
            nvidia_discovery: true,
            nvidia_driver_root: "/".into(),
            nvidia_dev_root: "/".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:PORT` serving `/metrics` over HTTP; empty: no endpoint.
    pub address: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Streaming {
    /// Address the streaming server listens on (loopback by default: kubelet proxies).
    pub address: String,
    /// TCP port; 0 picks a free one at start.
    pub port: u16,
    /// PEM certificate chain and key: both set serves HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How long a URL returned by Exec/Attach/PortForward stays valid (single use).
    pub token_ttl_secs: u64,
    /// Most sessions open at once; more are refused with 503.
    pub max_sessions: usize,
    /// A session with no traffic for this long is closed (kubelet's default: 4h).
    pub idle_timeout_secs: u64,
    /// How long a client may take to open all streams of a SPDY session.
    pub stream_creation_timeout_secs: u64,
}

impl Default for Streaming {
    fn default() -> Self {
        Streaming {
            address: "127.0.0.1".into(),
            port: 0,
            tls_cert: None,
            tls_key: None,
            token_ttl_secs: 60,
            max_sessions: 128,
            idle_timeout_secs: 4 * 3600,
            stream_creation_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest manifest or index accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Largest image config accepted, in bytes.
    pub max_config_bytes: u64,
    /// Most layers one image may have.
    pub max_layers: usize,
    /// Most tar entries in one layer.
    pub max_layer_entries: u64,
    /// Most uncompressed bytes in one layer (decompression-bomb guard).
    pub max_layer_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_config_bytes: 8 << 20,
            max_layers: 128,
            max_layer_entries: 2_000_000,
            max_layer_bytes: 64 << 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "unix:///run/berth/berth.sock".into(),
            root: "/var/lib/berth".into(),
            state: "/run/berth".into(),
            registry_config_path: "/etc/berth/certs.d".into(),
            registry_mirrors: Vec::new(),
            insecure_registries: Vec::new(),
            registry_auth_file: "/root/.docker/config.json".into(),
            signature_policy: None,
            max_concurrent_downloads: 6,
            registry_timeout_secs: 30,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            cgroup_driver: CgroupDriver::Cgroupfs,
            default_runtime: "runc".into(),
            runtime_handlers: [("runc", "runc"), ("crun", "crun"), ("youki", "youki")]
                .into_iter()
                .map(|(k, v)| (k.into(), RuntimeHandler::oci(v)))
                .chain([
                    ("runsc".into(), RuntimeHandler::gvisor()),
                    (
                        "runc-shim-v2".into(),
                        RuntimeHandler::shim_v2("containerd-shim-runc-v2", Some("runc")),
                    ),
                ])
                .collect(),
            cni_conf_dir: "/etc/cni/net.d".into(),
            cni_bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cni_timeout_secs: 60,
            sandbox_shm_size: 64 << 20,
            infra_binary: None,
            shim_binary: None,
            limits: Limits::default(),
            streaming: Streaming::default(),
            metrics: MetricsConfig::default(),
            cdi: CdiConfig::default(),
            nri: crate::nri::NriConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Where named and anonymous volumes live (one directory each).
    pub fn volume_root(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// Loads `path` (a missing file is an error only when `required`), merges its drop-in
    /// directory `<path>.d/*.toml` in name order, and fills the rest with defaults.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let mut table = match std::fs::read_to_string(path) {
            Ok(text) => parse_table(path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => toml::Table::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let dropins = PathBuf::from(format!("{}.d", path.display()));
        if let Ok(dir) = std::fs::read_dir(&dropins) {
            let mut files: Vec<PathBuf> = dir
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                    path: file.clone(),
                    source,
                })?;
                merge(&mut table, parse_table(&file, &text)?);
            }
        }
        Config::deserialize(table).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// The socket path of `listen`.
    pub fn socket_path(&self) -> Result<PathBuf, ConfigError> {
        let path = self.listen.strip_prefix("unix://").ok_or_else(|| {
            ConfigError::Invalid(format!("listen {:?}: only unix:// endpoints are served", self.listen))
        })?;
        if !path.starts_with('/') {
            return Err(ConfigError::Invalid(format!(
                "listen {:?}: the socket path must be absolute",
                self.listen
            )));
        }
        Ok(path.into())
    }

    /// Checks values that serde cannot: paths absolute, counts non-zero, endpoints parse.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.socket_path()?;
        for (key, path) in [
            ("root", &self.root),
            ("state", &self.state),
            ("registry_config_path", &self.registry_config_path),
        ] {
            if !path.is_absolute() {
                return Err(ConfigError::Invalid(format!("{key} {path:?} must be an absolute path")));
            }
        }
        if let Some(path) = &self.signature_policy {
            crate::image::trust::Policy::load(path)
                .map_err(|e| ConfigError::Invalid(format!("signature_policy: {e}")))?;
        }
        if self.root == self.state {
            return Err(ConfigError::Invalid(
                "root and state must be different directories".into(),
            ));
        }
        if self.max_concurrent_downloads == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent_downloads must be at least 1".into(),
            ));
        }
        for mirror in &self.registry_mirrors {
            if !(mirror.starts_with("http://") || mirror.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "registry_mirrors entry {mirror:?} must start with http:// or https://"
                )));
            }
        }
        if self.cni_timeout_secs == 0 {
            return Err(ConfigError::Invalid("cni_timeout_secs must be at least 1".into()));
        }
        if self.sandbox_shm_size < 4096 {
            return Err(ConfigError::Invalid(
                "sandbox_shm_size must be at least 4096 bytes".into(),
            ));
        }
        if self.limits.max_layers == 0 || self.limits.max_manifest_bytes == 0 {
            return Err(ConfigError::Invalid("limits must be positive".into()));
        }
        if !self.metrics.address.is_empty() && self.metrics.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "metrics.address {:?} must be IP:PORT",
                self.metrics.address
            )));
        }
        self.nri.validate().map_err(ConfigError::Invalid)?;
        if let Some(d) = self.cdi.spec_dirs.iter().find(|d| !d.is_absolute()) {
            return Err(ConfigError::Invalid(format!(
                "cdi.spec_dirs: {} is not an absolute path",
                d.display()
            )));
        }
        let st = &self.streaming;
        if st.address.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "streaming.address {:?} must be an IP address",
                st.address
            )));
        }
        if st.tls_cert.is_some() != st.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "streaming.tls_cert and streaming.tls_key go together".into(),
            ));
        }
        if st.token_ttl_secs == 0 || st.max_sessions == 0 || st.stream_creation_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "streaming.token_ttl_secs, max_sessions and stream_creation_timeout_secs must be positive".into(),
            ));
        }
        Ok(())
    }
}

fn parse_table(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_optional_file_gives_defaults() {
        let cfg = Config::load(Path::new("/nonexistent/berth.toml"), false).expect("defaults");
        assert_eq!(cfg, Config::default());
        cfg.validate().expect("defaults are valid");
        assert!(Config::load(Path::new("/nonexistent/berth.toml"), true).is_err());
    }

    #[test]
    fn a_signature_policy_must_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.json");
        let cfg = Config {
            signature_policy: Some(path.clone()),
            ..Config::default()
        };
        assert!(cfg.validate().is_err(), "a missing policy file");
        std::fs::write(
            &path,
            r#"{"default": [{"type": "sigstoreSigned", "keyPath": "absent.pub"}]}"#,
        )
        .expect("write");
        let err = cfg.validate().expect_err("a key that is not there").to_string();
        assert!(err.contains("signature_policy") && err.contains("absent.pub"), "{err}");
        std::fs::write(&path, r#"{"default": [{"type": "insecureAcceptAnything"}]}"#).expect("write");
        cfg.validate().expect("a policy that loads");
    }

    #[test]
    fn shipped_config_is_the_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config.toml");
        let cfg = Config::load(&shipped, true).expect("deploy/config.toml parses");
        assert_eq!(cfg, Config::default(), "deploy/config.toml and the defaults disagree");
    }

    #[test]
    fn streaming_settings_are_checked() {
        let mut cfg = Config::default();
        cfg.streaming.address = "localhost".into();
        assert!(cfg.validate().is_err(), "an address must be an IP");
        let mut cfg = Config::default();
        cfg.streaming.tls_cert = Some("/etc/berth/s.crt".into());
        assert!(cfg.validate().is_err(), "cert without key");
        let mut cfg = Config::default();
        cfg.streaming.max_sessions = 0;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn file_and_dropins_merge_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("config.toml");
        std::fs::write(
            &main,
            "root = \"/srv/berth\"\n[limits]\nmax_layers = 10\nmax_layer_entries = 5\n",
        )
        .expect("write");
        std::fs::create_dir(dir.path().join("config.toml.d")).expect("mkdir");
        std::fs::write(dir.path().join("config.toml.d/20-b.toml"), "log_level = \"debug\"\n").expect("write");
        std::fs::write(
            dir.path().join("config.toml.d/10-a.toml"),
            "log_level = \"warn\"\n[limits]\nmax_layers = 20\n",
        )
        .expect("write");
        let cfg = Config::load(&main, true).expect("load");
        assert_eq!(cfg.root, PathBuf::from("/srv/berth"));
        assert_eq!(cfg.log_level, "debug");
        assert_eq!(cfg.limits.max_layers, 20);
        assert_eq!(cfg.limits.max_layer_entries, 5);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("config.toml");
        std::fs::write(&main, "lsten = \"unix:///x\"\n").expect("write");
        let err = Config::load(&main, true).expect_err("unknown key");
        assert!(err.to_string().contains("lsten"), "{err}");

        let cfg = Config {
            listen: "tcp://0.0.0.0:1".into(),
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = Config {
            root: "relative".into(),
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = Config {
            registry_mirrors: vec!["mirror.local".into()],
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
    }
}
