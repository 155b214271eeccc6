//! Sandboxes a crash left half-made. A sandbox is recorded only once `run` finished, so a
//! berthd killed in the middle of it leaves a netns, a /dev/shm mount, a cgroup, an infra
//! process and a CNI attachment that no record names. The start-up sweep takes down every
//! sandbox directory or netns pin that has no record, guided by the intent `run` wrote
//! (see `intent`).

use super::intent::INTENT;
use super::lifecycle::Sandboxes;
use super::SandboxRecord;

impl Sandboxes {
    /// Takes down every sandbox whose directory or netns pin has no record.
    pub(super) async fn sweep_orphans(&self) {
        let known = self.records.ids();
        let mut ids = std::collections::BTreeSet::new();
        for sub in ["sandboxes", "netns", "userns"] {
            let Ok(entries) = std::fs::read_dir(self.opts.state_dir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) && !known.contains(&name) {
                    ids.insert(name);
                }
            }
        }
        for id in ids {
            tracing::warn!(sandbox = %id, "taking down a sandbox a crash left half-made");
            self.take_down_orphan(&id).await;
        }
    }

    async fn take_down_orphan(&self, id: &str) {
        let dir = self.dir(id);
        let intent: Option<SandboxRecord> = std::fs::read(dir.join(INTENT))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|r: &SandboxRecord| r.id == id);
        let netns = self.netns_path(id);
        let userns = self.userns_path(id);
        let Some(mut rec) = intent else {
            // Died before anything but the directory existed (no network was set up).
            let _ = self.driver.unmount(&dir.join("shm"));
            let _ = self.driver.remove_netns(&netns);
            let _ = self.driver.remove_netns(&userns);
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        if netns.exists() {
            rec.netns = Some(netns);
        }
        if userns.exists() {
            rec.userns = Some(userns);
        }
        rec.cgroup_dirs = self.driver.cgroup_dirs(&rec.cgroup);
        if let Err(e) = self.release(&rec).await {
            tracing::warn!(sandbox = %id, error = %e, "releasing a half-made sandbox");
        }
        if let Err(e) = self.purge(&rec) {
            tracing::warn!(sandbox = %id, error = %e, "removing a half-made sandbox");
        }
    }
}
