//! The connected plugins of one NRI instance: adding a new one (registration, then
//! synchronization under the write side of the sync lock), listing the subscribers of an
//! event in call order, and dropping the dead.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use berth_proto::nri::Event;
use tokio::task::JoinHandle;

use super::error::{NriError, Result};
use super::host::observer;
use super::plugin::{Plugin, Prestarted, Shared};
use super::sync;

/// The state behind an `Nri`.
pub struct Inner {
    pub shared: Shared,
    pub plugins: RwLock<Vec<Arc<Plugin>>>,
    /// Held for writing while a new plugin is synchronized, for reading by events, so a
    /// plugin sees every change after the state it was synchronized with.
    pub sync: tokio::sync::RwLock<()>,
    pub dropped: AtomicU64,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The registrations of the plugins started from the plugin directory.
    pub starting: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Set by shutdown: a plugin still registering is closed instead of listed.
    pub closed: std::sync::atomic::AtomicBool,
    pub socket: Option<PathBuf>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            tasks.iter().for_each(JoinHandle::abort);
        }
        if let Ok(starting) = self.starting.try_lock() {
            starting.iter().for_each(JoinHandle::abort);
        }
    }
}

impl Inner {
    pub fn snapshot(&self) -> Vec<Arc<Plugin>> {
        self.plugins.read().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn subscribed(&self, event: Event) -> Vec<Arc<Plugin>> {
        let (live, dead): (Vec<_>, Vec<_>) = self.snapshot().into_iter().partition(|p| !p.is_dead());
        for p in &dead {
            self.drop_plugin(p, None);
        }
        live.into_iter().filter(|p| p.subscribed(event as i32)).collect()
    }

    /// Passes `r` through; drops `p` first when the call killed it.
    pub fn check<T>(&self, p: &Arc<Plugin>, r: Result<T>) -> Result<T> {
        if r.is_err() && p.is_dead() {
            self.drop_plugin(p, r.as_ref().err());
        }
        r
    }

    fn drop_plugin(&self, p: &Arc<Plugin>, why: Option<&NriError>) {
        let Ok(mut plugins) = self.plugins.write() else { return };
        let before = plugins.len();
        plugins.retain(|x| !Arc::ptr_eq(x, p));
        if plugins.len() < before {
            self.count_dropped(p);
            let why = why.map(ToString::to_string).unwrap_or_default();
            tracing::warn!(plugin = %p.info.name, index = %p.info.index, error = %why, "NRI: plugin dropped");
        }
    }

    fn count_dropped(&self, p: &Plugin) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(o) = observer(&self.shared.observer) {
            o.dropped(&p.info.index, &p.info.name);
        }
    }

    /// Takes a new connection through registration and synchronization, then lists it.
    pub async fn add(this: Weak<Inner>, stream: tokio::net::UnixStream, pre: Option<Prestarted>) {
        let Some(inner) = this.upgrade() else { return };
        let plugin = match Plugin::connect(stream, pre, &inner.shared).await {
            Ok(p) => Arc::new(p),
            Err(e) => {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "NRI: plugin not registered");
                return;
            }
        };
        let (name, index) = (&plugin.info.name, &plugin.info.index);
        // A plugin of the same name and index reconnecting (after a crash or a restart whose
        // old connection is not seen closed yet) replaces the old connection.
        for old in inner
            .snapshot()
            .into_iter()
            .filter(|p| &p.info.name == name && &p.info.index == index)
        {
            tracing::info!(plugin = %name, index = %index, "NRI: plugin reconnected; the old connection is closed");
            old.mark_dead();
            inner.drop_plugin(&old, None);
        }
        // The listing first: the host may hold its own lock in it (`Listing::hold`) while
        // its lifecycle operations, holding that lock, still finish their NRI events (they
        // take the read side of `sync`, taken for writing only after).
        let Ok(listing) = tokio::time::timeout(inner.shared.registration_timeout, inner.shared.host.list()).await
        else {
            inner.count_dropped(&plugin);
            tracing::warn!(plugin = %name, "NRI: listing pods and containers timed out; plugin not synchronized");
            plugin.mark_dead();
            return;
        };
        let _sync = inner.sync.write().await;
        // `hold` (and `_sync`) are released only once the plugin is listed.
        let (pods, containers, hold) = (listing.pods, listing.containers, listing.hold);
        if let Err(e) = sync::synchronize(&plugin, &inner.shared, pods, containers).await {
            inner.count_dropped(&plugin);
            tracing::warn!(error = %e, "NRI: plugin not synchronized");
            plugin.mark_dead();
            return;
        }
        tracing::info!(plugin = %name, index = %index, events = %format!("{:#x}", plugin.info.events), "NRI: plugin connected");
        let mut plugins = inner.plugins.write().unwrap_or_else(|e| e.into_inner());
        if inner.closed.load(Ordering::Relaxed) {
            plugin.mark_dead();
            return;
        }
        plugins.push(plugin.clone());
        plugins.sort_by(|a, b| (&a.info.index, &a.info.name).cmp(&(&b.info.index, &b.info.name)));
        drop(plugins);
        drop(hold);
    }
}
