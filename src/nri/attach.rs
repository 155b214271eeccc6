//! NRI as the daemon turns it on: the socket opened, the plugin directory's plugins
//! started, and the bridge installed as the sandboxes' and containers' hooks.

use std::path::Path;
use std::sync::Arc;

use super::bridge::Bridge;
use super::node::Node;
use super::{Nri, NriConfig, NriObserver};
use crate::container::lifecycle::Containers;
use crate::sandbox::Sandboxes;

/// NRI for this daemon; disabled (and logged) when configured off, when another live
/// process serves the socket, or when it cannot start. NRI never keeps berthd from serving.
pub async fn attach(
    cfg: &NriConfig,
    sandboxes: &Arc<Sandboxes>,
    containers: &Arc<Containers>,
    cdi: &Arc<crate::cdi::Cdi>,
) -> Nri {
    if !cfg.enabled {
        tracing::info!("NRI is turned off");
        return Nri::disabled();
    }
    if served(&cfg.socket_path) {
        tracing::warn!(socket = %cfg.socket_path.display(), "another process serves the NRI socket: NRI stays off");
        return Nri::disabled();
    }
    let host = Node::new(sandboxes, containers);
    match Nri::start(cfg, host.clone()) {
        Ok(nri) => {
            nri.set_observer(Arc::new(Metrics));
            let bridge = Bridge::start(nri.clone(), host, cdi.clone());
            sandboxes.set_hooks(bridge.clone());
            containers.set_hooks(Arc::new(bridge));
            // The plugin directory's plugins are in place before the first request.
            nri.wait_started().await;
            tracing::info!(socket = %cfg.socket_path.display(), plugins = nri.plugins().len(), "NRI socket open");
            nri
        }
        Err(e) => {
            tracing::error!(socket = %cfg.socket_path.display(), error = %e, "NRI could not start: NRI stays off");
            Nri::disabled()
        }
    }
}

/// Whether a live process accepts connections on `path` (a stale socket file does not).
fn served(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Plugin calls and drops counted in berthd's metrics, per plugin (`NN-name`).
struct Metrics;

impl NriObserver for Metrics {
    fn call(&self, index: &str, plugin: &str, method: &str, ok: bool, elapsed: std::time::Duration) {
        crate::metrics::global().nri_call(&format!("{index}-{plugin}"), method, ok, elapsed.as_secs_f64());
    }

    fn dropped(&self, index: &str, plugin: &str) {
        crate::metrics::global().nri_dropped(&format!("{index}-{plugin}"));
    }
}
