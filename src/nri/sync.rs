//! Synchronizing a new plugin with the existing pods and containers. A large state is
//! split into several requests, all but the last with `more` set; a plugin must answer
//! those with `more` set and no updates (else it cannot take split requests and is closed).

use berth_proto::nri::{Container, PodSandbox, SynchronizeRequest, SynchronizeResponse};
use prost::Message as _;

use super::error::{NriError, Result};
use super::plugin::{Plugin, Shared};

/// Largest Synchronize request sent in one piece (a plugin reads at most 4 MiB).
pub const SYNC_CHUNK_BYTES: usize = 3 << 20;

/// Sends every existing pod and container to the plugin (within the registration timeout
/// per request), and asks the host to apply the updates it answers with.
pub async fn synchronize(
    plugin: &Plugin,
    shared: &Shared,
    pods: Vec<PodSandbox>,
    containers: Vec<Container>,
) -> Result<()> {
    let chunks = sync_chunks(pods, containers);
    let last = chunks.len() - 1;
    for (i, req) in chunks.into_iter().enumerate() {
        let resp: SynchronizeResponse = plugin
            .call_with("Synchronize", &req, shared.registration_timeout)
            .await?;
        if i < last && (!resp.more || !resp.update.is_empty()) {
            plugin.mark_dead();
            return Err(NriError::Plugin {
                plugin: plugin.info.name.clone(),
                method: "Synchronize".into(),
                message: "the plugin cannot take a synchronization split in several messages".into(),
                code: 0,
            });
        }
        if i == last && !resp.update.is_empty() {
            let failed = shared.host.update_containers(resp.update, Vec::new()).await;
            if !failed.is_empty() {
                tracing::warn!(plugin = %plugin.info.name, failed = failed.len(), "NRI: synchronization updates failed");
            }
        }
    }
    Ok(())
}

/// Splits a synchronization into requests of at most [`SYNC_CHUNK_BYTES`] (at least one
/// object each); all but the last have `more` set.
fn sync_chunks(pods: Vec<PodSandbox>, containers: Vec<Container>) -> Vec<SynchronizeRequest> {
    let mut out = Vec::new();
    let mut cur = SynchronizeRequest::default();
    let mut size = 0;
    let full = |size: usize, add: usize, cur: &SynchronizeRequest| {
        size + add > SYNC_CHUNK_BYTES && !(cur.pods.is_empty() && cur.containers.is_empty())
    };
    for p in pods {
        let n = p.encoded_len() + 8;
        if full(size, n, &cur) {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.pods.push(p);
    }
    for c in containers {
        let n = c.encoded_len() + 8;
        if full(size, n, &cur) {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.containers.push(c);
    }
    out.push(cur);
    let last = out.len() - 1;
    for r in &mut out[..last] {
        r.more = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_synchronizations_are_split_with_more_set() {
        let pods: Vec<_> = (0..4)
            .map(|i| PodSandbox {
                id: format!("pod{i}"),
                name: "x".repeat(SYNC_CHUNK_BYTES / 3),
                ..Default::default()
            })
            .collect();
        let ctrs = vec![Container {
            id: "c".into(),
            ..Default::default()
        }];
        let chunks = sync_chunks(pods, ctrs);
        assert_eq!(chunks.len(), 2);
        assert!(chunks[0].more && !chunks[1].more);
        assert_eq!(chunks[0].pods.len() + chunks[1].pods.len(), 4);
        assert_eq!(chunks[1].containers.len(), 1);
        assert_eq!(sync_chunks(Vec::new(), Vec::new()).len(), 1);
    }
}
