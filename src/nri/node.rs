//! What NRI plugins see of, and may change in, this node: the pods and containers Berth
//! has recorded, and unsolicited updates or evictions of running containers.
//!
//! Creations and synchronizations exclude each other through one lock: every container
//! creation holds it shared from its CreateContainer hook until the container is recorded,
//! and a plugin's synchronization holds it exclusively from the listing until the plugin
//! has answered. A container is therefore either in a plugin's Synchronize set or sent to
//! it as CreateContainer, never neither.

use std::sync::{Arc, Weak};

use berth_proto::nri as api;
use futures_util::future::BoxFuture;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::convert;
use crate::container::lifecycle::{ContainerFilter, Containers};
use crate::sandbox::{SandboxFilter, Sandboxes};

pub struct Node {
    sandboxes: Weak<Sandboxes>,
    containers: Weak<Containers>,
    sync: Arc<RwLock<()>>,
}

impl Node {
    pub fn new(sandboxes: &Arc<Sandboxes>, containers: &Arc<Containers>) -> Arc<Node> {
        Arc::new(Node {
            sandboxes: Arc::downgrade(sandboxes),
            containers: Arc::downgrade(containers),
            sync: Arc::default(),
        })
    }

    /// The shared hold a container creation keeps until it is recorded.
    pub async fn creating(&self) -> OwnedRwLockReadGuard<()> {
        self.sync.clone().read_owned().await
    }

    pub fn has_container(&self, id: &str) -> bool {
        self.containers.upgrade().is_some_and(|c| {
            !c.records(&ContainerFilter {
                id_prefix: Some(id.to_string()),
                ..Default::default()
            })
            .is_empty()
        })
    }
}

impl super::NriHost for Node {
    fn list(&self) -> BoxFuture<'_, super::Listing> {
        Box::pin(async move {
            let hold = self.sync.clone().write_owned().await;
            let pods = self
                .sandboxes
                .upgrade()
                .map(|s| s.list(&SandboxFilter::default()))
                .unwrap_or_default();
            let containers = self
                .containers
                .upgrade()
                .map(|c| c.records(&ContainerFilter::default()))
                .unwrap_or_default();
            super::Listing {
                pods: pods.iter().map(convert::pod).collect(),
                containers: containers.iter().map(convert::container).collect(),
                hold: Box::new(hold),
            }
        })
    }

    fn update_containers(
        &self,
        updates: Vec<api::ContainerUpdate>,
        evictions: Vec<api::ContainerEviction>,
    ) -> BoxFuture<'_, Vec<api::ContainerUpdate>> {
        Box::pin(async move {
            let Some(containers) = self.containers.upgrade() else {
                return updates;
            };
            let mut failed = Vec::new();
            for u in updates {
                let Some(r) = u.linux.as_ref().and_then(|l| l.resources.as_ref()) else {
                    continue;
                };
                let mut resources = oci_spec::runtime::LinuxResources::default();
                let applied = match super::adjust::apply_resources(&mut resources, r) {
                    Ok(_) => containers
                        .apply_linux_resources(&u.container_id, &resources)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = applied {
                    if !u.ignore_failure {
                        tracing::warn!(container = u.container_id, error = %e, "NRI container update");
                        failed.push(u);
                    }
                }
            }
            for e in evictions {
                tracing::info!(
                    container = e.container_id,
                    reason = e.reason,
                    "evicted by an NRI plugin"
                );
                if let Err(err) = containers.stop(&e.container_id, std::time::Duration::ZERO).await {
                    tracing::warn!(container = e.container_id, error = %err, "NRI eviction");
                }
            }
            failed
        })
    }
}
