//! The image service: what is on the node, how names resolve to images, removal with
//! garbage collection, and filesystem usage. Pulling lives in `pull.rs`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::content::{ContentError, ContentStore};
use super::layer::LayerError;
use super::reference::{Digest, Reference, ReferenceError};
use super::registry::{RegistryClient, RegistryError};
use super::unpack::UnpackLimits;
use super::ImageRecord;
use crate::config::Limits;
use crate::locks::KeyedLocks;
use crate::snapshot::{SnapshotError, Snapshotter};
use crate::store::{MetaStore, StoreError, Table};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::digest::InvalidDigest> for ImageError {
    fn from(e: crate::digest::InvalidDigest) -> ImageError {
        ImageError::Reference(e.into())
    }
}

pub struct ImagesOptions {
    pub limits: Limits,
    pub max_concurrent_downloads: usize,
    pub auth_file: PathBuf,
}

pub struct Images {
    pub(super) content: ContentStore,
    pub(super) snapshots: Arc<dyn Snapshotter>,
    pub(super) registry: RegistryClient,
    pub(super) meta: Arc<MetaStore>,
    pub(super) options: ImagesOptions,
    /// Images by id; the persistent copy is the metadata store's `images` table.
    pub(super) index: RwLock<HashMap<String, ImageRecord>>,
    /// One pull per reference and one ingest per layer at a time; latecomers wait and
    /// then find the work done.
    pub(super) pull_locks: KeyedLocks,
    pub(super) layer_locks: KeyedLocks,
    /// Pulls hold it shared; garbage collection holds it exclusively, so it never deletes
    /// blobs or snapshots that a running pull has not yet recorded.
    pub(super) gc_lock: tokio::sync::RwLock<()>,
}

/// Filesystem usage of the image store.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsUsage {
    pub bytes: u64,
    pub inodes: u64,
}

impl Images {
    pub fn open(
        content: ContentStore,
        snapshots: Arc<dyn Snapshotter>,
        registry: RegistryClient,
        meta: Arc<MetaStore>,
        options: ImagesOptions,
    ) -> Result<Images, ImageError> {
        let mut index = HashMap::new();
        for (id, record) in meta.load_all::<ImageRecord>(Table::Images)? {
            index.insert(id, record);
        }
        let images = Images {
            content,
            snapshots,
            registry,
            meta,
            options,
            index: RwLock::new(index),
            pull_locks: KeyedLocks::default(),
            layer_locks: KeyedLocks::default(),
            gc_lock: tokio::sync::RwLock::new(()),
        };
        Ok(images)
    }

    pub(super) fn unpack_limits(&self) -> UnpackLimits {
        UnpackLimits {
            max_entries: self.options.limits.max_layer_entries,
            max_bytes: self.options.limits.max_layer_bytes,
        }
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<ImageRecord> = index.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Finds an image by id (full, or a unique prefix of at least 3 hex digits), by
    /// `name:tag` or by `name@digest`, in any form users write (normalised like Docker).
    pub fn resolve(&self, name: &str) -> Option<ImageRecord> {
        self.lookup(name).map(|(r, _)| r)
    }

    /// Like [`Images::resolve`], also telling whether `name` was a reference (tag or
    /// digest) rather than an id.
    fn lookup(&self, name: &str) -> Option<(ImageRecord, Option<Reference>)> {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let name = name.trim();
        if let Some(r) = index.get(name) {
            return Some((r.clone(), None));
        }
        let bare_hex = name.strip_prefix("sha256:").unwrap_or(name);
        let is_hex = !bare_hex.is_empty()
            && bare_hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if is_hex && bare_hex.len() == 64 {
            return index.get(&format!("sha256:{bare_hex}")).map(|r| (r.clone(), None));
        }
        if let Ok(reference) = Reference::parse(name) {
            let found = index.values().find(|r| match (&reference.digest, reference.tagged()) {
                (Some(d), _) => r.repo_digests.contains(&reference.with_digest(d)),
                (None, Some(tagged)) => r.repo_tags.contains(&tagged),
                (None, None) => false,
            });
            if let Some(r) = found {
                return Some((r.clone(), Some(reference)));
            }
        }
        if is_hex && bare_hex.len() >= 3 {
            let mut matches = index
                .values()
                .filter(|r| r.id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(bare_hex)));
            if let (Some(only), None) = (matches.next(), matches.next()) {
                return Some((only.clone(), None));
            }
        }
        None
    }

    /// Removes `name`. A tag or digest reference is untagged first; the image itself goes
    /// when it was named by id or no tag is left. Unreferenced blobs and snapshots are then
    /// collected. Removing what is not there succeeds (the CRI call is idempotent).
    pub async fn remove(&self, name: &str) -> Result<bool, ImageError> {
        let _gc = self.gc_lock.write().await;
        let Some((record, reference)) = self.lookup(name) else {
            return Ok(false);
        };
        let mut updated = record.clone();
        let by_id = reference.is_none();
        if let Some(reference) = &reference {
            if let Some(t) = reference.tagged().filter(|_| reference.digest.is_none()) {
                updated.repo_tags.retain(|x| *x != t);
            }
            if let Some(d) = &reference.digest {
                let named = reference.with_digest(d);
                updated.repo_digests.retain(|x| *x != named);
            }
        }
        if !by_id && !updated.repo_tags.is_empty() {
            self.meta.put(Table::Images, &updated.id, &updated)?;
            self.write_index(|index| {
                index.insert(updated.id.clone(), updated.clone());
            });
            return Ok(true);
        }
        self.meta.delete(Table::Images, &record.id)?;
        self.write_index(|index| {
            index.remove(&record.id);
        });
        self.collect_garbage_locked()?;
        Ok(true)
    }

    /// Stores `record`, keeping the names and pin of an earlier record of the same image,
    /// adding `tags` (each moved off any other image that held it) and `repo_digests`.
    pub(super) fn record_named(
        &self,
        mut record: ImageRecord,
        tags: &[String],
        repo_digests: &[String],
    ) -> Result<ImageRecord, ImageError> {
        let mut changed = Vec::new();
        {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            if let Some(existing) = index.get(&record.id) {
                record.repo_tags = existing.repo_tags.clone();
                record.repo_digests = existing.repo_digests.clone();
                record.pinned = existing.pinned;
            }
            for other in index
                .values()
                .filter(|o| o.id != record.id && o.repo_tags.iter().any(|t| tags.contains(t)))
            {
                let mut o = other.clone();
                o.repo_tags.retain(|t| !tags.contains(t));
                changed.push(o);
            }
        }
        for tag in tags {
            if !record.repo_tags.contains(tag) {
                record.repo_tags.push(tag.clone());
            }
        }
        for d in repo_digests {
            if !record.repo_digests.contains(d) {
                record.repo_digests.push(d.clone());
            }
        }
        for o in &changed {
            self.meta.put(Table::Images, &o.id, o)?;
        }
        self.meta.put(Table::Images, &record.id, &record)?;
        self.write_index(|index| {
            for o in changed {
                index.insert(o.id.clone(), o);
            }
            index.insert(record.id.clone(), record.clone());
        });
        Ok(record)
    }

    pub(super) fn write_index(&self, f: impl FnOnce(&mut HashMap<String, ImageRecord>)) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        f(&mut index);
    }

    /// Deletes every blob and snapshot no image refers to. Also run at start-up, so what
    /// a crash left behind is reclaimed.
    pub async fn collect_garbage(&self) -> Result<(usize, usize), ImageError> {
        let _gc = self.gc_lock.write().await;
        self.collect_garbage_locked()
    }

    fn collect_garbage_locked(&self) -> Result<(usize, usize), ImageError> {
        let (blobs, chains) = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            let mut blobs = HashSet::new();
            let mut chains = HashSet::new();
            for r in index.values() {
                blobs.insert(r.target.clone());
                blobs.insert(r.manifest.clone());
                blobs.insert(r.id.clone());
                blobs.extend(r.layers.iter().cloned());
                chains.extend(r.chain_ids.iter().cloned());
            }
            (blobs, chains)
        };
        let mut removed_blobs = 0;
        for d in self.content.list()? {
            if !blobs.contains(d.as_str()) {
                self.content.remove(&d)?;
                removed_blobs += 1;
            }
        }
        let mut removed_snaps = 0;
        for c in self.snapshots.list()? {
            if !chains.contains(c.as_str()) {
                self.snapshots.remove(&c)?;
                removed_snaps += 1;
            }
        }
        crate::metrics::global().gc_run((removed_blobs + removed_snaps) as u64);
        if removed_blobs + removed_snaps > 0 {
            tracing::info!(blobs = removed_blobs, snapshots = removed_snaps, "garbage collected");
        }
        Ok((removed_blobs, removed_snaps))
    }

    /// Disk used by images: unpacked snapshots plus stored blobs.
    pub fn fs_usage(&self) -> FsUsage {
        let mut usage = FsUsage::default();
        if let Ok(chains) = self.snapshots.list() {
            for c in chains {
                let u = self.snapshots.usage(&c);
                usage.bytes += u.bytes;
                usage.inodes += u.inodes;
            }
        }
        let (bytes, inodes) = self.content.usage();
        usage.bytes += bytes;
        usage.inodes += inodes;
        usage
    }

    /// Where the image filesystem lives (reported to kubelet for eviction decisions).
    pub fn fs_mountpoint(&self) -> PathBuf {
        self.snapshots.root()
    }

    /// The stored config blob of an image, for verbose status.
    pub fn config_json(&self, record: &ImageRecord) -> Option<serde_json::Value> {
        let digest = Digest::parse(&record.id).ok()?;
        serde_json::from_slice(&self.content.read(&digest).ok()?).ok()
    }
}
