//! Which objects a stats request covers, and collecting their figures off the async
//! threads (cgroup files and layer walks are blocking reads).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{ContainerSample, PodSample};
use crate::container::lifecycle::Containers;
use crate::container::lifecycle::{ContainerFilter, ContainerRecord};
use crate::sandbox::{SandboxFilter, SandboxRecord, SandboxState, Sandboxes};

/// The blocking collection did not finish (it panicked or the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("collecting stats: {0}")]
pub struct CollectError(#[from] tokio::task::JoinError);

type Result<T> = std::result::Result<T, CollectError>;

/// What stats are gathered from: the container and sandbox services and the collector.
pub struct Sources<'a> {
    pub containers: &'a Arc<Containers>,
    pub sandboxes: &'a Sandboxes,
    pub stats: &'a Arc<super::Collector>,
}

/// Figures of the containers matching `filter` (their states refreshed first).
pub async fn containers(d: &Sources<'_>, filter: &ContainerFilter) -> Result<Vec<ContainerSample>> {
    let records = d.containers.list(filter).await;
    prune(d);
    collect(d, move |c, layers| {
        records
            .into_iter()
            .map(|r| {
                let upper = layers(&r.id);
                c.container(r, &upper, false)
            })
            .collect()
    })
    .await
}

/// Figures of the sandboxes matching `filter`; listings leave out sandboxes that are not
/// ready (nothing runs in them), a request for one id does not. `detail` adds the finer
/// figures metrics need.
pub async fn pods(d: &Sources<'_>, filter: &SandboxFilter, ready_only: bool, detail: bool) -> Result<Vec<PodSample>> {
    let sandboxes: Vec<SandboxRecord> = d
        .sandboxes
        .list(filter)
        .into_iter()
        .filter(|s| !ready_only || s.state == SandboxState::Ready)
        .collect();
    prune(d);
    // Only the chosen pods' containers are brought up to date (each costs a shim call).
    let wanted = match &sandboxes[..] {
        [one] => ContainerFilter {
            sandbox_id: Some(one.id.clone()),
            ..Default::default()
        },
        _ => ContainerFilter::default(),
    };
    let mut by_pod: HashMap<String, Vec<ContainerRecord>> = HashMap::new();
    for c in d.containers.list(&wanted).await {
        by_pod.entry(c.sandbox_id.clone()).or_default().push(c);
    }
    collect(d, move |c, layers| {
        sandboxes
            .into_iter()
            .map(|s| {
                let members = by_pod
                    .remove(&s.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        let upper = layers(&r.id);
                        c.container(r, &upper, detail)
                    })
                    .collect();
                c.pod(s, members, detail)
            })
            .collect()
    })
    .await
}

/// Bytes and inodes of every container's writable layer together (cached walks; no shim calls).
pub async fn writable_layers(d: &Sources<'_>) -> Result<super::disk::Usage> {
    let ids: Vec<String> = d
        .containers
        .records(&ContainerFilter::default())
        .into_iter()
        .map(|r| r.id)
        .collect();
    prune(d);
    collect(d, move |c, layers| {
        let mut total = super::disk::Usage::default();
        for id in &ids {
            if let Ok(u) = c.writable_usage(&layers(id)) {
                total.bytes += u.bytes;
                total.inodes += u.inodes;
            }
        }
        total
    })
    .await
}

/// Lets the collector forget containers and sandboxes that are gone (cheap: records only).
fn prune(d: &Sources<'_>) {
    let containers: Vec<(String, PathBuf)> = d
        .containers
        .records(&ContainerFilter::default())
        .into_iter()
        .map(|r| {
            let layer = d.containers.writable_layer(&r.id);
            (r.id, layer)
        })
        .collect();
    let sandboxes: Vec<String> = d
        .sandboxes
        .list(&SandboxFilter::default())
        .into_iter()
        .map(|s| s.id)
        .collect();
    d.stats.retain(&containers, &sandboxes);
}

/// Runs `work` on a blocking thread with the collector and a way to find writable layers.
async fn collect<T: Send + 'static>(
    d: &Sources<'_>,
    work: impl FnOnce(&super::Collector, &dyn Fn(&str) -> std::path::PathBuf) -> T + Send + 'static,
) -> Result<T> {
    let collector = Arc::clone(d.stats);
    let containers = Arc::clone(d.containers);
    tokio::task::spawn_blocking(move || work(&collector, &|id: &str| containers.writable_layer(id)))
        .await
        .map_err(CollectError)
}
