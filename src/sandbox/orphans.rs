//! Sandboxes a crash left half-made. A sandbox is recorded only once `run` finished, so a
//! berthd killed in the middle of it leaves a netns, a /dev/shm mount, a cgroup, an infra
//! process and a CNI attachment that no record names. `run` therefore writes what it is
//! about to make to `<state>/sandboxes/<id>/intent.json` first (and again once the infra
//! process is up), and the start-up sweep takes down every sandbox directory or netns pin
//! that has no record.

use std::path::Path;

use super::infra;
use super::lifecycle::Sandboxes;
use super::SandboxRecord;
use crate::cgroup;

const INTENT: &str = "intent.json";

/// Records `rec` as being set up in its directory `dir`.
pub(super) fn write_intent(dir: &Path, rec: &SandboxRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(INTENT), json)
}

/// Adds the infra process to the intent, so a sweep can stop it. Best effort: a failure
/// here only narrows what a sweep after a crash can find.
pub(super) fn write_infra(dir: &Path, rec: &SandboxRecord, pid: u32) {
    let mut rec = rec.clone();
    rec.infra_pid = Some(pid);
    rec.infra_start = infra::start_time(pid).unwrap_or(0);
    if let Err(e) = write_intent(dir, &rec) {
        tracing::warn!(sandbox = %rec.id, error = %e, "recording the infra process");
    }
}

impl Sandboxes {
    /// Takes down every sandbox whose directory or netns pin has no record.
    pub(super) async fn sweep_orphans(&self) {
        let known: std::collections::HashSet<String> = self
            .records
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        for sub in ["sandboxes", "netns"] {
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
        let Some(mut rec) = intent else {
            // Died before anything but the directory existed (no network was set up).
            let _ = crate::sys::mount::unmount(&dir.join("shm"));
            let _ = crate::sys::ns::remove_netns(&netns);
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        if netns.exists() {
            rec.netns = Some(netns);
        }
        if let Some(h) = &self.cgroups {
            rec.cgroup_dirs = cgroup::leaf_dirs(h, &rec.cgroup);
        }
        if let Err(e) = self.release(&rec).await {
            tracing::warn!(sandbox = %id, error = %e, "releasing a half-made sandbox");
        }
        if let Err(e) = self.purge(&rec) {
            tracing::warn!(sandbox = %id, error = %e, "removing a half-made sandbox");
        }
    }
}
