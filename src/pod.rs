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
    /// Kills the pod's running containers (no grace period: kubelet stopped them first
    /// when it wanted one), then stops the sandbox (network down, infra process ended).
    /// Idempotent: a stopped or unknown sandbox is not an error.
    pub async fn stop(&self, id: &str) -> Result<(), PodError> {
        let _members = self.sandboxes.hold_members(id).await;
        if let Ok(sandbox) = self.sandboxes.get(id) {
            for c in self.containers.in_sandbox(&sandbox.id).await {
                self.containers.stop(&c.id, Duration::ZERO).await?;
            }
        }
        Ok(self.sandboxes.stop(id).await?)
    }

    /// Removes the pod's containers (killing running ones), then the sandbox and all its
    /// state. Idempotent: a sandbox that is gone is not an error.
    pub async fn remove(&self, id: &str) -> Result<(), PodError> {
        let _members = self.sandboxes.hold_members(id).await;
        if let Ok(sandbox) = self.sandboxes.get(id) {
            for c in self.containers.in_sandbox(&sandbox.id).await {
                self.containers.remove(&c.id).await?;
            }
        }
        Ok(self.sandboxes.remove(id).await?)
    }
}
