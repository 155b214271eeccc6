//! The daemon's state: configuration plus the services built from it, shared by every
//! CRI call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::container::lifecycle::{ContainerFilter, ContainerState, Containers, ContainersOptions};
use crate::events::EventBus;
use crate::image::content::ContentStore;
use crate::image::hosts::HostsConfig;
use crate::image::registry::RegistryClient;
use crate::image::{Images, ImagesOptions};
use crate::network::{CniNetwork, CniOptions, PodNetwork};
use crate::runtime::handler::Runtime;
use crate::sandbox::{Sandboxes, SandboxesOptions};
use crate::snapshot::overlay::OverlaySnapshotter;
use crate::store::MetaStore;

pub struct Daemon {
    pub config: Config,
    pub images: Arc<Images>,
    pub sandboxes: Arc<Sandboxes>,
    pub containers: Arc<Containers>,
    pub streams: Arc<crate::stream::StreamServer>,
    pub events: Arc<EventBus>,
    pub stats: Arc<crate::stats::Collector>,
    pub cdi: Arc<crate::cdi::Cdi>,
    pub volumes: Arc<crate::volume::Volumes>,
    /// Image builds (`berth.v1.Builds`).
    pub builder: Arc<crate::build::Builder>,
    /// NRI plugins (disabled: none can connect).
    pub nri: crate::nri::Nri,
}

/// One condition of `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl Readiness {
    fn ok() -> Readiness {
        Readiness {
            ready: true,
            reason: String::new(),
            message: String::new(),
        }
    }

    fn not(reason: &str, message: String) -> Readiness {
        Readiness {
            ready: false,
            reason: reason.into(),
            message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Content(#[from] crate::image::content::ContentError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Container(#[from] crate::container::lifecycle::ContainerError),
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error("starting the streaming server on {address}:{port}: {source}")]
    Streaming {
        address: String,
        port: u16,
        source: std::io::Error,
    },
}

fn mkdir(path: &Path, mode: u32) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| StartError::Dir {
            path: path.into(),
            source,
        })
}

impl Daemon {
    /// The pod controller over the sandbox and container services.
    pub fn pods(&self) -> crate::pod::Pods {
        crate::pod::Pods {
            sandboxes: Arc::clone(&self.sandboxes),
            containers: Arc::clone(&self.containers),
        }
    }

    /// The services stats are gathered from.
    pub fn stats_sources(&self) -> crate::stats::query::Sources<'_> {
        crate::stats::query::Sources {
            containers: &self.containers,
            sandboxes: &self.sandboxes,
            stats: &self.stats,
        }
    }

    /// Opens (creating) the root and state directories and the stores in them, then
    /// collects whatever an earlier crash left unreferenced.
    pub async fn open(config: Config) -> Result<Daemon, StartError> {
        mkdir(&config.root, 0o711)?;
        mkdir(&config.state, 0o711)?;
        let meta = Arc::new(MetaStore::open(&config.root.join("meta.redb"))?);
        let content = ContentStore::open(&config.root.join("content"))?;
        let snapshots: Arc<dyn crate::snapshot::Snapshotter> =
            Arc::new(OverlaySnapshotter::open(&config.root.join("snapshots"))?);
        let hosts = HostsConfig {
            dir: Some(config.registry_config_path.clone()),
            docker_mirrors: config.registry_mirrors.clone(),
            insecure: config.insecure_registries.clone(),
        };
        let registry = RegistryClient::new(hosts, Duration::from_secs(config.registry_timeout_secs));
        let options = ImagesOptions {
            limits: config.limits.clone(),
            max_concurrent_downloads: config.max_concurrent_downloads,
            auth_file: config.registry_auth_file.clone(),
            signature_policy: config.signature_policy.clone(),
        };
        let images = Arc::new(Images::open(
            content,
            snapshots.clone(),
            registry,
            meta.clone(),
            options,
        )?);
        images.collect_garbage().await?;
        let network: Arc<dyn PodNetwork> = Arc::new(CniNetwork::new(CniOptions {
            conf_dir: config.cni_conf_dir.clone(),
            bin_dirs: config.cni_bin_dirs.clone(),
            timeout: Duration::from_secs(config.cni_timeout_secs),
            cache_dir: config.state.join("cni-cache"),
        }));
        let sandbox_opts = SandboxesOptions {
            state_dir: config.state.clone(),
            infra_binary: config
                .infra_binary
                .clone()
                .unwrap_or_else(|| beside_berthd("berth-pause")),
            cgroup_driver: config.cgroup_driver,
            shm_size: config.sandbox_shm_size,
            stop_grace: Duration::from_secs(2),
        };
        let events = Arc::new(EventBus::default().observed_by(|e| crate::metrics::global().event(e)));
        let infra_binary = sandbox_opts.infra_binary.clone();
        let sandboxes = Arc::new(Sandboxes::open(sandbox_opts, meta.clone(), network, events.clone())?);
        let shim_binary = config
            .shim_binary
            .clone()
            .unwrap_or_else(|| beside_berthd("berth-shim"));
        let runtimes = runtime_binaries(&config);
        let gvisor_stats = crate::stats::gvisor::Runsc::for_handlers(&runtimes, &config.state);
        if let Some(pods) = crate::runtime::gvisor::GvisorPods::new(crate::runtime::gvisor::GvisorPods {
            shim_binary: shim_binary.clone(),
            pause_binary: infra_binary,
            state_dir: config.state.clone(),
            runtimes: runtimes.clone(),
        }) {
            sandboxes.set_pod_runtime(Arc::new(pods));
        }
        let volumes = Arc::new(crate::volume::Volumes::open(config.volume_root(), meta.clone())?);
        sandboxes.recover().await;
        let cdi = Arc::new(crate::cdi::Cdi::start(&config.cdi, config.cgroup_driver));
        let events_address = runtimes
            .values()
            .any(|r| r.kind == crate::runtime::handler::HandlerKind::ShimV2)
            .then(|| crate::runtime::events::serve(&config.state.join("shim-events.sock")))
            .flatten();
        let container_opts = ContainersOptions {
            state_dir: config.state.clone(),
            root_dir: config.root.clone(),
            shim_binary,
            runtimes,
            cgroup_driver: config.cgroup_driver,
            cdi: cdi.clone(),
            volume_root: config.volume_root(),
            events_address,
        };
        let containers = Arc::new(Containers::open(
            container_opts,
            meta,
            images.clone(),
            snapshots,
            sandboxes.clone(),
            events.clone(),
        )?);
        containers.sweep_orphans().await;
        containers.watch_running();
        containers.enforce_restart_policies(&events);
        let nri = crate::nri::attach(&config.nri, &sandboxes, &containers, &cdi).await;
        let streams = crate::stream::StreamServer::start(&config.streaming, containers.clone())
            .await
            .map_err(|source| StartError::Streaming {
                address: config.streaming.address.clone(),
                port: config.streaming.port,
                source,
            })?;
        let stats = Arc::new(crate::stats::Collector::new(config.cgroup_driver).with_gvisor(gvisor_stats));
        let builder = Arc::new(crate::build::Builder::new(
            images.clone(),
            containers.clone(),
            sandboxes.clone(),
            config.root.join("builds"),
        ));
        builder.sweep().await;
        Ok(Daemon {
            config,
            images,
            sandboxes,
            containers,
            streams,
            events,
            stats,
            cdi,
            volumes,
            builder,
            nri,
        })
    }

    /// NRI's state for `Status` verbose info: on or off, the socket, the plugins.
    pub fn nri_json(&self) -> String {
        serde_json::json!({
            "enabled": self.nri.is_enabled(),
            "socket": self.config.nri.socket_path,
            "plugins": self.nri.plugins().iter().map(|p| serde_json::json!({
                "name": p.name,
                "index": p.index,
                "events": format!("{:#x}", p.events),
                "pid": p.pid,
            })).collect::<Vec<_>>(),
        })
        .to_string()
    }

    /// Counts by state for the metrics endpoint (records as last seen; no shim is asked).
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let containers = self.containers.records(&ContainerFilter::default());
        let count = |s: ContainerState| containers.iter().filter(|c| c.state == s).count() as i64;
        let sandboxes = self.sandboxes.list(&Default::default());
        let ready = sandboxes
            .iter()
            .filter(|s| s.state == crate::sandbox::SandboxState::Ready)
            .count() as i64;
        crate::metrics::Snapshot {
            containers: vec![
                ("created", count(ContainerState::Created)),
                ("running", count(ContainerState::Running)),
                ("exited", count(ContainerState::Exited)),
                ("unknown", count(ContainerState::Unknown)),
            ],
            sandboxes: vec![("ready", ready), ("notready", sandboxes.len() as i64 - ready)],
            shims: self.containers.live_shims() as i64,
            event_subscribers: self.events.subscribers() as i64,
            nri_plugins: self.nri.plugins().len() as i64,
        }
    }

    /// The runtime handlers this daemon offers: the default ("") and its runtime by name.
    pub fn check_runtime_handler(&self, handler: &str) -> Result<(), crate::error::Error> {
        if handler.is_empty() || handler == self.config.default_runtime {
            return Ok(());
        }
        if let Some(h) = self.config.runtime_handlers.get(handler) {
            let binary = &h.binary;
            if find_in_path(binary).is_none() {
                return Err(crate::error::Error::FailedPrecondition(format!(
                    "runtime handler {handler:?}: its runtime {binary:?} is not installed"
                )));
            }
            return Ok(());
        }
        Err(crate::error::Error::InvalidArgument(format!(
            "unknown runtime handler {handler:?}"
        )))
    }

    /// Ready when the configured OCI runtime binary can be found on PATH.
    pub fn runtime_readiness(&self) -> Readiness {
        match find_in_path(&self.config.default_runtime) {
            Some(_) => Readiness::ok(),
            None => Readiness::not(
                "OCIRuntimeNotFound",
                format!("OCI runtime {:?} was not found on PATH", self.config.default_runtime),
            ),
        }
    }

    /// Ready when the CNI config directory holds a network config.
    pub fn network_readiness(&self) -> Readiness {
        let dir = &self.config.cni_conf_dir;
        let has_config = std::fs::read_dir(dir).ok().is_some_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".conflist") || name.ends_with(".conf") || name.ends_with(".json")
            })
        });
        if has_config {
            Readiness::ok()
        } else {
            Readiness::not(
                "NetworkPluginNotReady",
                format!("no CNI network config found in {}", dir.display()),
            )
        }
    }

    /// The effective configuration, for `Status` with `verbose`.
    pub fn config_json(&self) -> String {
        format!("{:?}", self.config)
    }
}

/// Runtime handler name ("" for the default) to its runtime, the binary's path resolved.
fn runtime_binaries(config: &Config) -> std::collections::BTreeMap<String, Runtime> {
    let resolve = |b: &str| {
        let path = find_in_path(b).unwrap_or_else(|| b.into());
        warn_if_replaceable(&path);
        path
    };
    let mut out: std::collections::BTreeMap<String, Runtime> = config
        .runtime_handlers
        .iter()
        .map(|(k, v)| {
            let rt = Runtime {
                binary: resolve(&v.binary),
                args: v.args.clone(),
                kind: v.kind,
                features_from: v.features_from.as_deref().map(resolve),
            };
            (k.clone(), rt)
        })
        .collect();
    out.insert(String::new(), Runtime::oci(resolve(&config.default_runtime)));
    out
}

/// A helper binary installed beside berthd, else found on PATH.
pub fn beside_berthd(name: &str) -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if dir.join(name).is_file() {
            return dir.join(name);
        }
    }
    PathBuf::from(name)
}

fn find_in_path(binary: &str) -> Option<PathBuf> {
    if binary.contains('/') {
        return Path::new(binary).is_file().then(|| binary.into());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
}

/// Warns when an OCI runtime binary could be replaced by someone other than root: not owned
/// by root, or writable by group or others (a container that reaches it, CVE-2019-5736
/// style, or a local user, would then run code as root on the next container start).
fn warn_if_replaceable(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        tracing::warn!(
            binary = %path.display(),
            uid = meta.uid(),
            mode = format!("{:o}", meta.mode() & 0o7777),
            "OCI runtime binary is not owned by root or is writable by group or others; it could be replaced"
        );
    }
}
