//! The image service: what is on the node, how names resolve to images, removal with
//! garbage collection, and filesystem usage. Pulling lives in `pull.rs`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::content::{ContentError, ContentStore};
use super::layer::LayerError;
use super::reference::{Digest, Reference, ReferenceError};
use super::registry::{RegistryClient, RegistryError};
use super::unpack::UnpackLimits;
use super::ImageRecord;
use crate::config::Limits;
use crate::locks::KeyedLocks;
use crate::snapshot::{SnapshotError, Snapshotter};
use crate::store::{Index, MetaStore, StoreError};

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
    /// A container still uses the image.
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Internal(String),
    /// The signature policy refuses the image.
    #[error("{0}")]
    Refused(String),
    /// The signature policy cannot be read or applied.
    #[error("signature policy: {0}")]
    Policy(String),
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
    /// A containers-policy.json(5) file every pull is checked against; None: no checks.
    pub signature_policy: Option<PathBuf>,
}

pub struct Images {
    pub(super) content: ContentStore,
    pub(super) snapshots: Arc<dyn Snapshotter>,
    pub(super) registry: RegistryClient,
    pub(super) options: ImagesOptions,
    /// Images by id, written through to the metadata store's `images` table.
    pub(super) records: Index<ImageRecord>,
    /// Held while names (tags, digests) change, so a change that reads a record and
    /// writes it back, or moves a tag across images, is never interleaved with another.
    pub(super) naming: Mutex<()>,
    /// One pull per reference and one ingest per layer at a time; latecomers wait and
    /// then find the work done.
    pub(super) pull_locks: KeyedLocks,
    pub(super) layer_locks: KeyedLocks,
    /// Pulls hold it shared; garbage collection holds it exclusively, so it never deletes
    /// blobs or snapshots that a running pull has not yet recorded.
    pub(super) gc_lock: tokio::sync::RwLock<()>,
    /// The images containers use (see `leases.rs`).
    pub(super) leases: super::leases::Leases,
}

/// A listing of the store's blobs and snapshots (digest strings).
#[derive(Debug, Default, Clone)]
pub(super) struct Stored {
    blobs: HashSet<String>,
    chains: HashSet<String>,
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
        let images = Images {
            content,
            snapshots,
            registry,
            options,
            records: Index::load(meta, |_| false)?,
            naming: Mutex::new(()),
            pull_locks: KeyedLocks::default(),
            layer_locks: KeyedLocks::default(),
            gc_lock: tokio::sync::RwLock::new(()),
            leases: Default::default(),
        };
        Ok(images)
    }

    pub(super) fn unpack_limits(&self) -> UnpackLimits {
        UnpackLimits {
            max_entries: self.options.limits.max_layer_entries,
            max_bytes: self.options.limits.max_layer_bytes,
        }
    }

    /// Every image, by id.
    pub fn list(&self) -> Vec<ImageRecord> {
        let mut all = self.records.list(|_| true);
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
        let name = name.trim();
        if let Some(r) = self.records.get(name) {
            return Some((r, None));
        }
        let bare_hex = name.strip_prefix("sha256:").unwrap_or(name);
        let is_hex = !bare_hex.is_empty()
            && bare_hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if is_hex && bare_hex.len() == 64 {
            return self.records.get(&format!("sha256:{bare_hex}")).map(|r| (r, None));
        }
        if let Ok(reference) = Reference::parse(name) {
            let found = match (&reference.digest, reference.tagged()) {
                (Some(d), _) => {
                    let named = reference.with_digest(d);
                    self.records.find_by(|r| r.repo_digests.contains(&named))
                }
                (None, Some(tagged)) => self.records.find_by(|r| r.repo_tags.contains(&tagged)),
                (None, None) => None,
            };
            if let Some(r) = found {
                return Some((r, Some(reference)));
            }
        }
        if is_hex && bare_hex.len() >= 3 {
            return self.records.find(&format!("sha256:{bare_hex}")).map(|r| (r, None));
        }
        None
    }

    /// Removes `name`. A tag or digest reference is untagged first; the image itself goes
    /// when it was named by id or no tag is left. Unreferenced blobs and snapshots are then
    /// collected. Removing what is not there succeeds (the CRI call is idempotent).
    pub async fn remove(&self, name: &str) -> Result<bool, ImageError> {
        let _gc = self.gc_lock.write().await;
        let naming = self.naming.lock().unwrap_or_else(|p| p.into_inner());
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
            self.records.put(&updated)?;
            return Ok(true);
        }
        self.leases.check_unused(&record.id).map_err(ImageError::InUse)?;
        self.records.remove(&record.id)?;
        drop(naming);
        self.collect_garbage_locked()?;
        Ok(true)
    }

    /// Stores `record`, keeping the names and pin of an earlier record of the same image,
    /// adding `tags` (each moved off any other image that held it) and `repo_digests`.
    /// The image is stored before the tags are taken off the others, so a failure between
    /// the writes leaves a tag on two images, never on none.
    pub(super) fn record_named(
        &self,
        mut record: ImageRecord,
        tags: &[String],
        repo_digests: &[String],
    ) -> Result<ImageRecord, ImageError> {
        let _naming = self.naming.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.records.get(&record.id) {
            record.repo_tags = existing.repo_tags;
            record.repo_digests = existing.repo_digests;
            record.pinned = existing.pinned;
        }
        let others = self
            .records
            .list(|o| o.id != record.id && o.repo_tags.iter().any(|t| tags.contains(t)));
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
        self.records.put(&record)?;
        for mut other in others {
            other.repo_tags.retain(|t| !tags.contains(t));
            self.records.put(&other)?;
        }
        Ok(record)
    }

    /// Deletes every blob and snapshot no image refers to. Also run at start-up, so what
    /// a crash left behind is reclaimed.
    pub async fn collect_garbage(&self) -> Result<(usize, usize), ImageError> {
        let _gc = self.gc_lock.write().await;
        self.collect_garbage_locked()
    }

    fn collect_garbage_locked(&self) -> Result<(usize, usize), ImageError> {
        self.remove_unreferenced(None)
    }

    /// What the store holds now: blob digests and snapshot chain ids.
    pub(super) fn stored(&self) -> Result<Stored, ImageError> {
        Ok(Stored {
            blobs: self.content.list()?.iter().map(|d| d.to_string()).collect(),
            chains: self.snapshots.list()?.iter().map(|d| d.to_string()).collect(),
        })
    }

    /// Takes back what a failed pull stored: every blob and snapshot that is not in
    /// `before` and no image refers to. Waits for pulls in flight (they may be about to
    /// record an image that uses the same layers), so nothing another pull needs goes.
    pub(super) async fn forget_failed_pull(&self, before: &Stored) {
        let _gc = self.gc_lock.write().await;
        match self.remove_unreferenced(Some(before)) {
            Ok((0, 0)) => {}
            Ok((blobs, snapshots)) => tracing::info!(blobs, snapshots, "removed what a failed pull stored"),
            Err(e) => tracing::warn!(error = %e, "removing what a failed pull stored"),
        }
    }

    /// Deletes blobs and snapshots no image refers to, leaving alone those in `keep`.
    fn remove_unreferenced(&self, keep: Option<&Stored>) -> Result<(usize, usize), ImageError> {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        for r in self.records.list(|_| true) {
            blobs.insert(r.target);
            blobs.insert(r.manifest);
            blobs.insert(r.id);
            blobs.extend(r.layers);
            chains.extend(r.chain_ids);
        }
        if let Some(keep) = keep {
            blobs.extend(keep.blobs.iter().cloned());
            chains.extend(keep.chains.iter().cloned());
        }
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
        if keep.is_none() {
            crate::metrics::global().gc_run((removed_blobs + removed_snaps) as u64);
            if removed_blobs + removed_snaps > 0 {
                tracing::info!(blobs = removed_blobs, snapshots = removed_snaps, "garbage collected");
            }
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

    /// Resolves `name` (as [`Images::resolve`]) and leases the image to `holder` (see
    /// `leases.rs`); under the naming lock, so a removal racing it sees the lease.
    pub fn lease(&self, holder: &str, name: &str) -> Option<ImageRecord> {
        let _naming = self.naming.lock().unwrap_or_else(|p| p.into_inner());
        let record = self.resolve(name)?;
        self.leases.add(holder, &record.id);
        Some(record)
    }

    /// Ends every lease of `holder`.
    pub fn release(&self, holder: &str) {
        self.leases.release(holder);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::hosts::HostsConfig;
    use crate::snapshot::overlay::OverlaySnapshotter;

    const TAG: &str = "docker.io/library/app:v1";

    fn open(dir: &std::path::Path) -> Images {
        let content = ContentStore::open(&dir.join("content")).expect("content");
        let snapshots = Arc::new(OverlaySnapshotter::open(&dir.join("snapshots")).expect("snapshots"));
        let meta = Arc::new(MetaStore::open(&dir.join("meta.redb")).expect("store"));
        let registry = RegistryClient::new(HostsConfig::default(), std::time::Duration::from_secs(5));
        let options = ImagesOptions {
            limits: Default::default(),
            max_concurrent_downloads: 1,
            auth_file: dir.join("config.json"),
            signature_policy: None,
        };
        Images::open(content, snapshots, registry, meta, options).expect("open")
    }

    /// An image whose id is `sha256:` and `hex` padded with zeros.
    fn image(hex: &str, pulled_at: i64) -> ImageRecord {
        ImageRecord {
            pulled_at,
            ..ImageRecord::bare(&format!("sha256:{hex:0<64}"))
        }
    }

    fn id_of(found: Option<ImageRecord>) -> Option<String> {
        found.map(|r| r.id)
    }

    #[test]
    fn images_resolve_by_id_prefix_tag_and_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = open(dir.path());
        let digest = format!("docker.io/library/app@sha256:{}", "d".repeat(64));
        let a = images
            .record_named(image("abc1", 2), &[TAG.into()], std::slice::from_ref(&digest))
            .expect("record");
        let b = images.record_named(image("abc2", 1), &[], &[]).expect("record");
        assert_eq!(id_of(images.resolve(&a.id)), Some(a.id.clone()));
        assert_eq!(id_of(images.resolve(&a.id["sha256:".len()..])), Some(a.id.clone()));
        assert_eq!(id_of(images.resolve("abc1")), Some(a.id.clone()));
        assert_eq!(id_of(images.resolve("sha256:abc2")), Some(b.id.clone()));
        assert_eq!(id_of(images.resolve("abc")), None, "ambiguous prefix");
        assert_eq!(id_of(images.resolve("sha")), None, "not a prefix of the hex");
        assert_eq!(id_of(images.resolve("app:v1")), Some(a.id.clone()));
        assert_eq!(id_of(images.resolve(&digest)), Some(a.id.clone()));
        assert_eq!(id_of(images.resolve("app:v2")), None);
        let listed: Vec<String> = images.list().into_iter().map(|r| r.id).collect();
        assert_eq!(listed, [a.id, b.id], "listed by id");
    }

    #[tokio::test]
    async fn an_image_a_container_holds_is_not_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = open(dir.path());
        let a = images
            .record_named(image("abc1", 1), &[TAG.into(), "docker.io/library/app:v2".into()], &[])
            .expect("record");
        assert_eq!(id_of(images.lease("c1", "app:v1")), Some(a.id.clone()));
        assert_eq!(id_of(images.lease("c2", &a.id)), Some(a.id.clone()));
        assert!(images.lease("c3", "app:nope").is_none(), "nothing to lease");
        assert!(images.remove("app:v2").await.expect("untag"), "a tag can go");
        for name in [a.id.as_str(), "app:v1"] {
            let err = images.remove(name).await.expect_err("in use");
            assert!(
                matches!(&err, ImageError::InUse(m) if m.contains("container c1 and 1 more")),
                "{err}"
            );
        }
        images.release("c1");
        let err = images.remove(&a.id).await.expect_err("still in use");
        assert!(
            matches!(&err, ImageError::InUse(m) if m.contains("container c2;")),
            "{err}"
        );
        images.release("c2");
        assert!(images.remove(&a.id).await.expect("free now"));
        assert!(images.resolve(&a.id).is_none());
    }

    #[tokio::test]
    async fn a_moved_tag_stays_moved_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = {
            let images = open(dir.path());
            let mut pinned = image("aaa", 1);
            pinned.pinned = true;
            let old = images
                .record_named(pinned, &[TAG.into(), "docker.io/library/app:v0".into()], &[])
                .expect("record");
            let new = images
                .record_named(image("bbb", 2), &[TAG.into()], &[])
                .expect("record");
            // Naming the image again keeps its names and pin.
            let again = images
                .record_named(image("aaa", 3), &["docker.io/library/app:v2".into()], &[])
                .expect("record");
            assert!(again.pinned);
            assert_eq!(
                again.repo_tags,
                ["docker.io/library/app:v0", "docker.io/library/app:v2"]
            );
            (old.id, new.id)
        };
        let images = open(dir.path());
        assert_eq!(id_of(images.resolve("app:v1")), Some(new.clone()));
        let old_rec = images.resolve(&old).expect("the old image stays");
        assert_eq!(
            old_rec.repo_tags,
            ["docker.io/library/app:v0", "docker.io/library/app:v2"]
        );
        assert_eq!(images.resolve(&new).map(|r| r.repo_tags), Some(vec![TAG.to_string()]));
        // Untagging the last tag removes the image, durably.
        assert!(images.remove("app:v1").await.expect("remove"));
        assert!(images.remove("app:v0").await.expect("untag"));
        drop(images);
        let images = open(dir.path());
        let listed: Vec<(String, Vec<String>)> = images.list().into_iter().map(|r| (r.id, r.repo_tags)).collect();
        assert_eq!(listed, [(old, vec!["docker.io/library/app:v2".to_string()])]);
    }
}
