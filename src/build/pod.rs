//! Where a build's steps run: a work directory under berthd's root (context, logs, spool
//! files) and one Berth pod per network mode, made on first use, with a container per step.
//! Everything is labelled with the build's id and removed when the build ends, however it
//! ends; what a crash of berthd leaves is removed when berthd starts again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::error::BuildError;
use crate::container::lifecycle::Containers;
use crate::container::model::{ContainerSpec, Profile, ProfileKind, SecuritySpec};
use crate::sandbox::{NamespaceModes, NsMode, SandboxFilter, SandboxSpec, Sandboxes};

/// The label on a build's pods and containers: the build id.
pub const BUILD_LABEL: &str = "io.berth.build";

/// A build's directory and pods.
pub(super) struct Workspace {
    pub id: String,
    pub dir: PathBuf,
    sandboxes: Arc<Sandboxes>,
    containers: Arc<Containers>,
    /// Network mode ("" or "host") to pod id.
    pods: BTreeMap<String, String>,
    /// Containers made and not yet removed.
    live: Vec<String>,
}

impl Workspace {
    pub fn create(
        root: &std::path::Path,
        sandboxes: Arc<Sandboxes>,
        containers: Arc<Containers>,
    ) -> Result<Workspace, BuildError> {
        let id = crate::sandbox::new_id();
        let dir = root.join(&id);
        for sub in ["context", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(BuildError::io("making the build directory"))?;
        }
        Ok(Workspace {
            id,
            dir,
            sandboxes,
            containers,
            pods: BTreeMap::new(),
            live: Vec::new(),
        })
    }

    pub fn context(&self) -> PathBuf {
        self.dir.join("context")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// A fresh scratch directory in the workspace.
    pub fn scratch(&self, name: &str) -> Result<PathBuf, BuildError> {
        let dir = self.dir.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(BuildError::io("clearing a scratch directory"))?;
        }
        std::fs::create_dir_all(&dir).map_err(BuildError::io("making a scratch directory"))?;
        Ok(dir)
    }

    async fn pod(&mut self, network: &str) -> Result<String, BuildError> {
        if let Some(id) = self.pods.get(network) {
            return Ok(id.clone());
        }
        let labels = BTreeMap::from([(BUILD_LABEL.to_string(), self.id.clone())]);
        let spec = SandboxSpec {
            name: format!("build-{}", &self.id[..12]),
            uid: self.id.clone(),
            namespace: "berth-build".into(),
            hostname: "berth-build".into(),
            log_directory: self.logs().display().to_string(),
            labels,
            namespaces: NamespaceModes {
                network: if network == "host" { NsMode::Node } else { NsMode::Pod },
                ..Default::default()
            },
            ..Default::default()
        };
        let id = self.sandboxes.run(spec).await?;
        self.pods.insert(network.to_string(), id.clone());
        Ok(id)
    }

    /// Creates (does not start) a step container from `image` running `command`.
    pub async fn container(
        &mut self,
        network: &str,
        name: &str,
        image: &str,
        command: Vec<String>,
        envs: Vec<(String, String)>,
    ) -> Result<String, BuildError> {
        let pod = self.pod(network).await?;
        let spec = ContainerSpec {
            name: name.to_string(),
            image: image.to_string(),
            command,
            envs,
            log_path: format!("{name}.log"),
            labels: BTreeMap::from([(BUILD_LABEL.to_string(), self.id.clone())]),
            security: SecuritySpec {
                seccomp: Some(Profile {
                    kind: ProfileKind::RuntimeDefault,
                    localhost_ref: String::new(),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let id = self.containers.create(&pod, spec).await?;
        self.live.push(id.clone());
        Ok(id)
    }

    /// Removes a step container (killing it if it runs).
    pub async fn remove(&mut self, id: &str) {
        if let Err(e) = self.containers.remove(id).await {
            tracing::warn!(container = %id, error = %e, "removing a build step's container");
        }
        self.live.retain(|c| c != id);
    }

    /// Removes every container, pod and file of the build.
    pub async fn close(mut self) {
        for id in std::mem::take(&mut self.live) {
            self.remove(&id).await;
        }
        let pods = crate::pod::Pods {
            sandboxes: self.sandboxes.clone(),
            containers: self.containers.clone(),
        };
        for id in self.pods.values() {
            if let Err(e) = pods.remove(id).await {
                tracing::warn!(pod = %id, error = %e, "removing a build's pod");
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing a build's directory");
        }
    }
}

/// Removes what builds interrupted by a crash left: their pods (with their containers)
/// and directories under `root`.
pub async fn sweep(root: &std::path::Path, sandboxes: Arc<Sandboxes>, containers: Arc<Containers>) {
    let pods = crate::pod::Pods {
        sandboxes: sandboxes.clone(),
        containers,
    };
    for pod in sandboxes.list(&SandboxFilter::default()) {
        if pod.spec.labels.contains_key(BUILD_LABEL) {
            if let Err(e) = pods.remove(&pod.id).await {
                tracing::warn!(pod = %pod.id, error = %e, "removing a pod of an interrupted build");
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
