//! Containers a crash left half-made. A container is recorded only once CreateContainer
//! finished, so a berthd killed in the middle of it leaves a bundle, an overlay mount, maybe
//! a shim and a created runtime container that no record names. The start-up sweep takes
//! down every container on disk without a record, under every runtime handler (the
//! handler it was created with is not known).

use super::lifecycle::Containers;

impl Containers {
    /// Tears down every container with something on disk but no record.
    pub async fn sweep_orphans(&self) {
        let known = self.records.ids();
        for id in self.driver.on_disk() {
            if known.contains(&id) {
                continue;
            }
            tracing::warn!(container = %id, "taking down a container a crash left half-made");
            self.driver.teardown(&id, None).await;
        }
    }
}
