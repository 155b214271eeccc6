//! The content store: blobs by digest under `root/content/blobs/sha256/<hex>`.
//!
//! A blob is written to `root/content/ingest/<random>` while it is hashed and only renamed
//! into place once its size and digest match, so a mismatch, a truncated download or a
//! crash never leaves a blob under a name it does not deserve. Leftover ingest files are
//! swept at start-up.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::reference::Digest;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("digest mismatch for {expected}: the content hashes to {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: String, expected: u64, actual: u64 },
    #[error("content store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContentError + '_ {
    move |source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the store under `root` and removes interrupted ingests.
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        if ingest.exists() {
            std::fs::remove_dir_all(&ingest).map_err(io_err(&ingest))?;
        }
        std::fs::create_dir_all(&ingest).map_err(io_err(&ingest))?;
        Ok(ContentStore { blobs, ingest })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest);
        std::fs::read(&path).map_err(io_err(&path))
    }

    /// Size on disk of a stored blob.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        std::fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    /// Checks a stored blob against the size a descriptor gives it: a manifest that names a
    /// blob this store holds must also state its true size, whether or not it is downloaded.
    pub fn check_size(&self, digest: &Digest, size: u64) -> Result<(), ContentError> {
        match self.size(digest) {
            Some(stored) if stored != size => Err(ContentError::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: stored,
            }),
            _ => Ok(()),
        }
    }

    /// Stores a small blob already in memory, after checking its digest.
    pub fn put(&self, expected: &Digest, data: &[u8]) -> Result<(), ContentError> {
        let mut w = self.writer(expected.clone(), Some(data.len() as u64))?;
        w.write_all(data).map_err(io_err(&self.ingest))?;
        w.commit()
    }

    /// Starts writing a blob; nothing is visible until [`Writer::commit`].
    pub fn writer(&self, expected: Digest, size: Option<u64>) -> Result<Writer, ContentError> {
        let tmp = tempfile::Builder::new()
            .prefix(expected.hex())
            .tempfile_in(&self.ingest)
            .map_err(io_err(&self.ingest))?;
        Ok(Writer {
            tmp,
            hasher: Sha256::new(),
            written: 0,
            expected,
            size,
            target: self.blobs.clone(),
        })
    }

    /// A temporary file in the ingest area (swept at start-up, removed when dropped), for
    /// spooling an incoming archive.
    pub fn spool(&self) -> Result<tempfile::NamedTempFile, ContentError> {
        tempfile::Builder::new()
            .prefix("spool-")
            .tempfile_in(&self.ingest)
            .map_err(io_err(&self.ingest))
    }

    /// Removes a blob; a missing one is not an error.
    pub fn remove(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ContentError::Io { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Every stored digest.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.blobs).map_err(io_err(&self.blobs))? {
            let entry = entry.map_err(io_err(&self.blobs))?;
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Bytes used by the stored blobs.
    pub fn usage(&self) -> (u64, u64) {
        let mut bytes = 0;
        let mut inodes = 0;
        if let Ok(dir) = std::fs::read_dir(&self.blobs) {
            for entry in dir.flatten() {
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                inodes += 1;
            }
        }
        (bytes, inodes)
    }
}

/// A blob being written. Dropping it without `commit` deletes the temp file.
pub struct Writer {
    tmp: tempfile::NamedTempFile,
    hasher: Sha256,
    written: u64,
    expected: Digest,
    size: Option<u64>,
    target: PathBuf,
}

impl Writer {
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The size the blob must have, when it was given.
    pub fn expected_size(&self) -> Option<u64> {
        self.size
    }

    /// Whether what was written hashes to the expected digest; the temp file goes.
    pub fn matches_digest(self) -> Result<(), ContentError> {
        let actual = Digest::from_sha256(self.hasher.finalize().into());
        if actual != self.expected {
            return Err(ContentError::DigestMismatch {
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Verifies size and digest, then renames the blob into place.
    pub fn commit(mut self) -> Result<(), ContentError> {
        self.tmp.flush().map_err(io_err(self.tmp.path()))?;
        if let Some(size) = self.size {
            if size != self.written {
                return Err(ContentError::SizeMismatch {
                    digest: self.expected.to_string(),
                    expected: size,
                    actual: self.written,
                });
            }
        }
        let actual = Digest::from_sha256(self.hasher.finalize().into());
        if actual != self.expected {
            return Err(ContentError::DigestMismatch {
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            });
        }
        let dest = self.target.join(self.expected.hex());
        self.tmp.as_file().sync_data().map_err(io_err(&dest))?;
        self.tmp.persist(&dest).map_err(|e| ContentError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// The temp file, for readers that want to re-read what was written.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tmp.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_only_on_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path()).expect("open");
        let data = b"hello berth";
        let good = Digest::of(data);
        store.put(&good, data).expect("put");
        assert!(store.contains(&good));
        assert_eq!(store.read(&good).expect("read"), data);

        let other = Digest::of(b"something else");
        let err = store.put(&other, data).expect_err("mismatch");
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(!store.contains(&other));

        let mut w = store.writer(Digest::of(b"abc"), Some(5)).expect("writer");
        w.write_all(b"abc").expect("write");
        assert!(matches!(w.commit(), Err(ContentError::SizeMismatch { .. })));
        // Nothing half-written remains in the ingest area.
        assert_eq!(std::fs::read_dir(dir.path().join("ingest")).expect("ls").count(), 0);
        assert_eq!(store.list().expect("list"), vec![good.clone()]);
        store.check_size(&good, data.len() as u64).expect("true size");
        let lie = store.check_size(&good, 3).expect_err("wrong size");
        assert!(
            matches!(
                lie,
                ContentError::SizeMismatch {
                    expected: 3,
                    actual: 11,
                    ..
                }
            ),
            "{lie}"
        );
        store.check_size(&other, 3).expect("not stored: nothing to check");
        store.remove(&good).expect("remove");
        store.remove(&good).expect("idempotent remove");
        assert!(store.list().expect("list").is_empty());
    }

    #[test]
    fn dropped_writer_leaves_nothing_and_open_sweeps_ingest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path()).expect("open");
        {
            let mut w = store.writer(Digest::of(b"x"), None).expect("writer");
            w.write_all(b"partial").expect("write");
        }
        assert_eq!(std::fs::read_dir(dir.path().join("ingest")).expect("ls").count(), 0);
        std::fs::write(dir.path().join("ingest/leftover"), b"crash").expect("write");
        ContentStore::open(dir.path()).expect("reopen");
        assert_eq!(std::fs::read_dir(dir.path().join("ingest")).expect("ls").count(), 0);
    }
}
