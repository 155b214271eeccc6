//! Tripwires for hostile-input tests: a [`Canary`] directory outside berthd's root whose
//! every byte, mode and xattr is checked afterwards, and [`store_leftovers`], what a failed
//! pull left in berthd's content store and snapshot directories.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A directory under `/tmp` (outside any berthd root) holding `victim` (a file) and `sub/`
/// (a directory). [`Canary::assert_untouched`] compares a full listing with the one taken at
/// creation. Removed on drop.
pub struct Canary {
    dir: tempfile::TempDir,
    before: Vec<String>,
}

impl Canary {
    pub fn new() -> Canary {
        let dir = tempfile::Builder::new()
            .prefix("berth-canary-")
            .tempdir_in("/tmp")
            .expect("canary dir");
        std::fs::write(dir.path().join("victim"), b"original\n").expect("victim");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        let before = listing(dir.path());
        Canary { dir, before }
    }

    /// The directory (absolute).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The directory without its leading `/`, for `../../..`-style names.
    pub fn rel(&self) -> String {
        self.path().to_string_lossy().trim_start_matches('/').to_string()
    }

    /// Panics (naming `what`) if anything in the directory changed.
    pub fn assert_untouched(&self, what: &str) {
        let now = listing(self.path());
        assert_eq!(
            now, self.before,
            "{what}: the canary directory outside the store changed"
        );
    }
}

impl Default for Canary {
    fn default() -> Self {
        Canary::new()
    }
}

/// `name type mode uid gid size rdev content xattrs` of the directory itself and each entry.
fn listing(dir: &Path) -> Vec<String> {
    let mut paths = vec![dir.to_path_buf()];
    let mut out = Vec::new();
    while let Some(p) = paths.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
        let content = if m.is_file() {
            String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned()
        } else {
            String::new()
        };
        let xattrs = crate::sys::xattr_names(&p);
        out.push(format!(
            "{} {:o} {} {} {} {} {content:?} {xattrs:?}",
            p.display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.rdev()
        ));
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                let mut children: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                children.sort();
                paths.extend(children);
            }
        }
    }
    out.sort();
    out
}

/// Everything in the image store (blobs, snapshots, ingests), sorted: two listings are
/// equal when the store holds the same (content-addressed) things.
pub fn store_listing(root: &Path) -> Vec<String> {
    let mut all = store_leftovers(root, &[]);
    all.sort();
    all
}

/// What sits in berthd's store beyond `allowed_blobs`: every entry of `snapshots/` (its
/// `.ingest` scratch directory included) and `content/ingest/`, and every blob whose digest is
/// not in `allowed_blobs` (`sha256:<hex>`). Empty after a failed pull that cleaned up.
pub fn store_leftovers(root: &Path, allowed_blobs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let ls = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| rd.flatten().map(|e| e.path().display().to_string()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let snaps = root.join("snapshots");
    out.extend(ls(&snaps).into_iter().filter(|p| !p.ends_with("/.ingest")));
    out.extend(ls(&snaps.join(".ingest")));
    out.extend(ls(&root.join("content/ingest")));
    for blob in ls(&root.join("content/blobs/sha256")) {
        let name = blob.rsplit('/').next().unwrap_or_default();
        if !allowed_blobs.iter().any(|d| d.strip_prefix("sha256:") == Some(name)) {
            out.push(blob);
        }
    }
    out
}
