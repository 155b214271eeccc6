//! Restart of a container made by `berthctl run`. A CRI container starts once, so a restart
//! is a new attempt: the same spec (image by id, mounts, log file), the attempt number one
//! higher, and the old container's writable layer, created before the old one is removed
//! so a failure leaves the old one as it was. A pod that is no longer ready (its infra
//! process died, or the machine rebooted) is run again first, from its own spec.
//! Containers of kubelet's pods are refused: kubelet restarts those.

use std::sync::Arc;
use std::time::Duration;

use super::error::ContainerError;
use super::lifecycle::Containers;
use super::model::{ContainerRecord, ContainerState};
use super::policy::RESTART_COUNT;
use crate::sandbox::{SandboxError, SandboxState};

/// The label `berthctl run` puts on its pods and containers.
pub const RUN_LABEL: &str = "io.berth.run";

/// What a restart made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarted {
    pub id: String,
    pub attempt: u32,
}

impl Containers {
    /// Stops `id` if it runs (waiting up to `timeout`), then starts it again as a new
    /// attempt. A container never started is just started. The policy's restart count
    /// starts over.
    pub async fn restart(self: &Arc<Self>, id: &str, timeout: Duration) -> Result<Restarted, ContainerError> {
        self.restart_counted(id, timeout, 0).await
    }

    /// [`Containers::restart`], recording `restarts` as the policy's restart count.
    pub(super) async fn restart_counted(
        self: &Arc<Self>,
        id: &str,
        timeout: Duration,
        restarts: u32,
    ) -> Result<Restarted, ContainerError> {
        let rec = self.get(id).await?;
        if !rec.spec.labels.contains_key(RUN_LABEL) {
            return Err(ContainerError::FailedPrecondition(format!(
                "container {} was not made by berthctl run (no {RUN_LABEL} label): \
                 its pod's owner (kubelet) restarts it",
                rec.id
            )));
        }
        let sandbox_ready = self
            .sandboxes
            .get(&rec.sandbox_id)
            .is_ok_and(|s| s.state == SandboxState::Ready);
        if rec.state == ContainerState::Created && sandbox_ready {
            self.start(&rec.id).await?;
            return Ok(Restarted {
                id: rec.id,
                attempt: rec.spec.attempt,
            });
        }
        self.stop(&rec.id, timeout).await?;
        let new_pod = if sandbox_ready {
            None
        } else {
            Some(self.rerun_pod(&rec).await?)
        };
        let sandbox_id = new_pod.as_deref().unwrap_or(&rec.sandbox_id);
        let mut spec = rec.spec.clone();
        spec.attempt += 1;
        // The same image, even if its tag has moved since.
        spec.image = rec.image.id.clone();
        spec.annotations.insert(RESTART_COUNT.into(), restarts.to_string());
        let started = match self.create_attempt(sandbox_id, spec, Some(&rec.id)).await {
            Ok(new_id) => match self.start(&new_id).await {
                Ok(()) => Ok(new_id),
                Err(e) => {
                    // The old container, with its layer, stays what the user sees.
                    self.give_layer_back(&new_id, &rec.id).await;
                    self.remove(&new_id).await?;
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        let new_id = match started {
            Ok(id) => id,
            Err(e) => {
                if let Some(pod) = &new_pod {
                    self.sandboxes.remove(pod).await.map_err(pod_err(&rec))?;
                }
                return Err(e);
            }
        };
        self.remove(&rec.id).await?;
        if new_pod.is_some() {
            self.sandboxes.remove(&rec.sandbox_id).await.map_err(pod_err(&rec))?;
        }
        Ok(Restarted {
            id: new_id,
            attempt: rec.spec.attempt + 1,
        })
    }

    /// Runs the pod of `rec` again as its next attempt, the old one stopped first (its
    /// host ports and address given back); the new sandbox's id.
    async fn rerun_pod(&self, rec: &ContainerRecord) -> Result<String, ContainerError> {
        let old = self.sandboxes.get(&rec.sandbox_id).map_err(pod_err(rec))?;
        if !old.spec.labels.contains_key(RUN_LABEL) {
            return Err(ContainerError::FailedPrecondition(format!(
                "sandbox {} is not ready and was not made by berthctl run",
                old.id
            )));
        }
        self.sandboxes.stop(&old.id).await.map_err(pod_err(rec))?;
        let mut spec = old.spec.clone();
        spec.attempt += 1;
        self.sandboxes.run(spec).await.map_err(pod_err(rec))
    }

    /// Ends the failed attempt `id` and returns the writable layer it took over to `to`.
    pub(super) async fn give_layer_back(&self, id: &str, to: &str) {
        let _ = self.driver.kill(id, 9, true).await;
        let _ = self.driver.wait(id, Duration::from_secs(5)).await;
        if let Err(e) = self.driver.move_layer(id, to) {
            tracing::warn!(container = id, to, error = %e, "giving the writable layer back");
        }
    }
}

fn pod_err(rec: &ContainerRecord) -> impl Fn(SandboxError) -> ContainerError + '_ {
    move |e| ContainerError::Setup {
        id: rec.id.clone(),
        message: format!("running its pod again: {e}"),
    }
}
