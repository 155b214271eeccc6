//! A pod as a whole: what stopping and removing its sandbox does to the containers in it.
//! CRI handlers only translate; this is where the order lives.

use std::sync::Arc;
use std::time::Duration;

use crate::container::lifecycle::{ContainerError, Containers};
use crate::sandbox::{SandboxError, Sandboxes};

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// The services a pod spans.
#[derive(Clone)]
pub struct Pods {
    pub sandboxes: Arc<Sandboxes>,
    pub containers: Arc<Containers>,
}

impl Pods {
    /// Kills the pod's running containers, all at once (no grace period: kubelet stopped them first
    /// when it wanted one), then stops the sandbox (network down, infra process ended).
    /// Idempotent: a stopped or unknown sandbox is not an error.
    pub async fn stop(&self, id: &str) -> Result<(), PodError> {
        let _members = self.sandboxes.hold_members(id).await;
        if let Ok(sandbox) = self.sandboxes.get(id) {
            let containers = self.containers.in_sandbox(&sandbox.id).await;
            all_of(containers.iter().map(|c| self.containers.stop(&c.id, Duration::ZERO))).await?;
        }
        Ok(self.sandboxes.stop(id).await?)
    }

    /// Removes the pod's containers (killing running ones), then the sandbox and all its
    /// state. Idempotent: a sandbox that is gone is not an error.
    pub async fn remove(&self, id: &str) -> Result<(), PodError> {
        let _members = self.sandboxes.hold_members(id).await;
        if let Ok(sandbox) = self.sandboxes.get(id) {
            let containers = self.containers.in_sandbox(&sandbox.id).await;
            all_of(containers.iter().map(|c| self.containers.remove(&c.id))).await?;
        }
        Ok(self.sandboxes.remove(id).await?)
    }
}

/// Runs the containers' steps side by side (each container has a lock of its own) and
/// waits for all of them; the first error, if any, once every step is done.
async fn all_of<F>(steps: impl Iterator<Item = F>) -> Result<(), ContainerError>
where
    F: std::future::Future<Output = Result<(), ContainerError>>,
{
    futures_util::future::join_all(steps).await.into_iter().collect()
}
