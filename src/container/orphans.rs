//! Containers a crash left half-made. A container is recorded only once CreateContainer
//! finished, so a berthd killed in the middle of it leaves a bundle, an overlay mount, maybe
//! a shim and a created runtime container that no record names. The start-up sweep takes
//! down every container directory without a record, under every runtime handler (the
//! handler it was created with is not known).

use super::lifecycle::Containers;

impl Containers {
    /// Tears down every container whose bundle or root filesystem directory has no record.
    pub async fn sweep_orphans(&self) {
        let known = self.records.ids();
        let mut ids = std::collections::BTreeSet::new();
        for dir in [
            self.opts.state_dir.join("containers"),
            self.opts.root_dir.join("containers"),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) && !known.contains(&name) {
                    ids.insert(name);
                }
            }
        }
        let handlers: Vec<String> = self.opts.runtimes.keys().cloned().collect();
        for id in ids {
            tracing::warn!(container = %id, "taking down a container a crash left half-made");
            for handler in &handlers {
                self.teardown(&id, handler).await;
            }
        }
    }
}
