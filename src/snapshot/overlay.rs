//! The overlayfs snapshotter: `root/<chain-hex>/fs` holds a layer's files with whiteouts
//! already in overlayfs form, `root/<chain-hex>/usage.json` what it uses on disk.
//! Snapshots are filled under `root/.ingest/` and renamed into place when complete.

use std::path::{Path, PathBuf};

use super::{Prepared, SnapshotError, Snapshotter, Usage};
use crate::digest::Digest;

#[derive(Debug, Clone)]
pub struct OverlaySnapshotter {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl OverlaySnapshotter {
    /// Opens the store, removing snapshots left half-filled by a crash.
    pub fn open(root: &Path) -> Result<OverlaySnapshotter, SnapshotError> {
        let ingest = root.join(".ingest");
        if ingest.exists() {
            std::fs::remove_dir_all(&ingest).map_err(io_err(&ingest))?;
        }
        std::fs::create_dir_all(&ingest).map_err(io_err(&ingest))?;
        Ok(OverlaySnapshotter {
            root: root.to_path_buf(),
        })
    }

    fn dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(chain.hex())
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn exists(&self, chain: &Digest) -> bool {
        self.dir(chain).join("fs").is_dir()
    }

    fn prepare(&self) -> Result<Box<dyn Prepared>, SnapshotError> {
        let ingest = self.root.join(".ingest");
        let tmp = tempfile::Builder::new()
            .prefix("snap-")
            .tempdir_in(&ingest)
            .map_err(io_err(&ingest))?;
        let fs = tmp.path().join("fs");
        std::fs::create_dir(&fs).map_err(io_err(&fs))?;
        Ok(Box::new(OverlayPrepared {
            tmp: Some(tmp),
            root: self.root.clone(),
        }))
    }

    fn remove(&self, chain: &Digest) -> Result<(), SnapshotError> {
        let dir = self.dir(chain);
        if !dir.exists() {
            return Ok(());
        }
        // Rename first so a crash mid-delete never leaves a half snapshot under its name.
        let doomed = self.root.join(".ingest").join(format!("rm-{}", chain.hex()));
        std::fs::rename(&dir, &doomed).map_err(io_err(&dir))?;
        std::fs::remove_dir_all(&doomed).map_err(io_err(&doomed))
    }

    fn list(&self) -> Result<Vec<Digest>, SnapshotError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    fn lower_dir(&self, chain: &Digest) -> PathBuf {
        self.dir(chain).join("fs")
    }

    fn usage(&self, chain: &Digest) -> Usage {
        std::fs::read(self.dir(chain).join("usage.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn root(&self) -> PathBuf {
        self.root.clone()
    }
}

struct OverlayPrepared {
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl Prepared for OverlayPrepared {
    fn dir(&self) -> PathBuf {
        self.tmp.as_ref().map(|t| t.path().join("fs")).unwrap_or_default()
    }

    fn commit(mut self: Box<Self>, chain: &Digest, usage: Usage) -> Result<(), SnapshotError> {
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        let usage_file = tmp.path().join("usage.json");
        std::fs::write(&usage_file, serde_json::to_vec(&usage).unwrap_or_default()).map_err(io_err(&usage_file))?;
        let dest = self.root.join(chain.hex());
        let src = tmp.keep();
        match std::fs::rename(&src, &dest) {
            Ok(()) => Ok(()),
            // Someone else committed the same layer first: theirs is as good as ours.
            Err(e) if dest.join("fs").is_dir() => {
                tracing::debug!(chain = %chain, error = %e, "snapshot already committed");
                std::fs::remove_dir_all(&src).map_err(io_err(&src))
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&src);
                Err(SnapshotError::Io { path: dest, source: e })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_commit_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snaps = OverlaySnapshotter::open(dir.path()).expect("open");
        let chain = Digest::of(b"layer");
        let p = snaps.prepare().expect("prepare");
        std::fs::write(p.dir().join("hello"), b"hi").expect("write");
        assert!(!snaps.exists(&chain));
        p.commit(&chain, Usage { bytes: 2, inodes: 1 }).expect("commit");
        assert!(snaps.exists(&chain));
        assert_eq!(
            std::fs::read(snaps.lower_dir(&chain).join("hello")).expect("read"),
            b"hi"
        );
        assert_eq!(snaps.usage(&chain), Usage { bytes: 2, inodes: 1 });
        assert_eq!(snaps.list().expect("list"), vec![chain.clone()]);

        // A second commit of the same chain is dropped quietly.
        let p = snaps.prepare().expect("prepare");
        p.commit(&chain, Usage::default()).expect("second commit");
        assert_eq!(snaps.usage(&chain), Usage { bytes: 2, inodes: 1 });

        // A dropped preparation leaves nothing behind.
        let p = snaps.prepare().expect("prepare");
        drop(p);
        assert_eq!(std::fs::read_dir(dir.path().join(".ingest")).expect("ls").count(), 0);

        snaps.remove(&chain).expect("remove");
        snaps.remove(&chain).expect("idempotent");
        assert!(snaps.list().expect("list").is_empty());
    }
}
