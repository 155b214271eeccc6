//! Bytes and inodes used by a directory tree (a container's writable layer), counted like `du -x`,
//! with a small per-path cache so repeated stats calls do not walk the tree each time.

use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Space and inodes used by a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Allocated bytes (st_blocks * 512).
    pub bytes: u64,
    /// Inodes, including the root; a hard-linked inode counts once.
    pub inodes: u64,
}

/// Walks `root` without following symlinks and without crossing onto other filesystems. Hard-linked inodes
/// count once. Entries vanishing during the walk are skipped; a missing root is `NotFound`.
pub fn usage(root: &Path) -> io::Result<Usage> {
    let meta = fs::symlink_metadata(root)?;
    let mut walk = Walk {
        dev: meta.dev(),
        seen: HashSet::new(),
        usage: Usage::default(),
    };
    walk.count(&meta);
    if !meta.is_dir() {
        return Ok(walk.usage);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        walk.visit_dir(&dir, &mut stack)?;
    }
    Ok(walk.usage)
}

/// State of one walk.
struct Walk {
    dev: u64,
    seen: HashSet<(u64, u64)>,
    usage: Usage,
}

impl Walk {
    /// Counts the entries of `dir`, pushing its subdirectories on the same filesystem onto `stack`.
    fn visit_dir(&mut self, dir: &Path, stack: &mut Vec<PathBuf>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if vanished(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(e),
            };
            // DirEntry::metadata does not follow symlinks.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(e),
            };
            if meta.dev() != self.dev {
                continue;
            }
            self.count(&meta);
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
        Ok(())
    }

    fn count(&mut self, meta: &Metadata) {
        let linked = !meta.is_dir() && meta.nlink() > 1;
        if linked && !self.seen.insert((meta.dev(), meta.ino())) {
            return;
        }
        self.usage.bytes = self.usage.bytes.saturating_add(meta.blocks().saturating_mul(512));
        self.usage.inodes += 1;
    }
}

/// Whether an error means the entry disappeared (or was replaced) while walking.
fn vanished(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// Caches usage per path for a maximum age.
#[derive(Debug)]
pub struct UsageCache {
    max_age: Duration,
    entries: Mutex<HashMap<PathBuf, (Instant, Usage)>>,
}

impl UsageCache {
    pub fn new(max_age: Duration) -> UsageCache {
        UsageCache {
            max_age,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Cached value if younger than max_age, else walks (outside the lock) and stores.
    pub fn get(&self, root: &Path) -> io::Result<Usage> {
        if let Some(usage) = self.fresh(root) {
            return Ok(usage);
        }
        let usage = usage(root)?;
        self.lock().insert(root.to_path_buf(), (Instant::now(), usage));
        Ok(usage)
    }

    pub fn forget(&self, root: &Path) {
        self.lock().remove(root);
    }

    /// Drops every cached tree not in `live`.
    pub fn retain(&self, live: &std::collections::HashSet<PathBuf>) {
        self.lock().retain(|p, _| live.contains(p));
    }

    fn fresh(&self, root: &Path) -> Option<Usage> {
        let entries = self.lock();
        let (at, usage) = entries.get(root)?;
        (at.elapsed() < self.max_age).then_some(*usage)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (Instant, Usage)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for UsageCache {
    fn default() -> UsageCache {
        UsageCache::new(Duration::from_secs(10))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::stats::testdir::TestDir;

    fn blocks_bytes(path: &Path) -> u64 {
        fs::symlink_metadata(path).unwrap().blocks() * 512
    }

    /// root/{a (10000 bytes), a-link (hard link to a), sub/{b (3000 bytes), big-link -> outside/big}}
    fn build_tree(t: &TestDir) -> PathBuf {
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("big"), vec![1u8; 1 << 20]).unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a"), vec![7u8; 10000]).unwrap();
        fs::hard_link(root.join("a"), root.join("a-link")).unwrap();
        fs::write(root.join("sub/b"), vec![7u8; 3000]).unwrap();
        std::os::unix::fs::symlink(outside.join("big"), root.join("sub/big-link")).unwrap();
        root
    }

    #[test]
    fn counts_tree() {
        let t = TestDir::new();
        let root = build_tree(&t);
        let got = usage(&root).unwrap();
        let want_bytes: u64 = ["", "a", "sub", "sub/b", "sub/big-link"]
            .iter()
            .map(|p| blocks_bytes(&root.join(p)))
            .sum();
        assert_eq!(
            got,
            Usage {
                bytes: want_bytes,
                inodes: 5
            }
        );
        assert!(got.bytes >= 13000, "{got:?}");
        assert!(got.bytes < 1 << 20, "symlink followed: {got:?}");
    }

    #[test]
    fn single_file_root() {
        let t = TestDir::new();
        let file = t.path().join("f");
        fs::write(&file, vec![0u8; 10000]).unwrap();
        let got = usage(&file).unwrap();
        assert_eq!(
            got,
            Usage {
                bytes: blocks_bytes(&file),
                inodes: 1
            }
        );
        assert!(got.bytes >= 10000);
    }

    #[test]
    fn missing_root_not_found() {
        let t = TestDir::new();
        assert_eq!(
            usage(&t.path().join("gone")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn deep_tree_is_iterative() {
        let t = TestDir::new();
        let mut path = t.path().to_path_buf();
        for _ in 0..200 {
            path.push("d");
        }
        fs::create_dir_all(&path).unwrap();
        assert_eq!(usage(t.path()).unwrap().inodes, 201);
    }

    #[test]
    fn cache_keeps_value_until_forget() {
        let t = TestDir::new();
        let root = build_tree(&t);
        let cache = UsageCache::new(Duration::from_secs(3600));
        let before = cache.get(&root).unwrap();
        fs::write(root.join("c"), vec![7u8; 50000]).unwrap();
        assert_eq!(cache.get(&root).unwrap(), before);
        cache.forget(&root);
        let after = cache.get(&root).unwrap();
        assert_eq!(after.inodes, before.inodes + 1);
        assert!(after.bytes >= before.bytes + 50000, "{before:?} {after:?}");
    }

    #[test]
    fn cache_expires() {
        let t = TestDir::new();
        let root = build_tree(&t);
        let cache = UsageCache::new(Duration::ZERO);
        let before = cache.get(&root).unwrap();
        fs::write(root.join("c"), b"x").unwrap();
        assert_eq!(cache.get(&root).unwrap().inodes, before.inodes + 1);
        assert_eq!(
            cache.get(&t.path().join("gone")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
