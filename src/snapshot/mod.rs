//! Snapshots: unpacked image layers keyed by chain id, each a directory ready to be an
//! overlayfs lowerdir. Backends sit behind [`Snapshotter`]; [`overlay::OverlaySnapshotter`]
//! is the one Berth ships.

pub mod overlay;

use std::path::PathBuf;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Disk used by a snapshot, counted while it was unpacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// A snapshot being filled: a directory outside the store's namespace that becomes
/// visible under its chain id only on commit. Dropping it removes the directory.
pub trait Prepared: Send {
    /// The directory to unpack into.
    fn dir(&self) -> PathBuf;
    /// Publishes the snapshot under `chain`. If another pull published it first, this
    /// one is discarded and that is not an error.
    fn commit(self: Box<Self>, chain: &Digest, usage: Usage) -> Result<(), SnapshotError>;
}

pub trait Snapshotter: Send + Sync {
    fn exists(&self, chain: &Digest) -> bool;
    fn prepare(&self) -> Result<Box<dyn Prepared>, SnapshotError>;
    fn remove(&self, chain: &Digest) -> Result<(), SnapshotError>;
    fn list(&self) -> Result<Vec<Digest>, SnapshotError>;
    /// The directory holding a committed snapshot's files.
    fn lower_dir(&self, chain: &Digest) -> PathBuf;
    fn usage(&self, chain: &Digest) -> Usage;
    /// The directory all snapshots live under (for filesystem usage reports).
    fn root(&self) -> PathBuf;
}

/// The chain ids of a layer stack: `chain[0] = diff[0]`,
/// `chain[n] = sha256(chain[n-1] + " " + diff[n])` (OCI image spec).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => Digest::of(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], Digest::of(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }
}
