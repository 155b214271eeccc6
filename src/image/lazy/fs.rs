//! An eStargz layer's tree served as a read-only filesystem: metadata from the TOC, file
//! contents chunk by chunk from a [`ChunkSource`] (the registry, or a blob at hand), each
//! chunk verified by the source before it is served and kept in a bounded cache. A chunk
//! that cannot be had is EIO to the reader, never a hang.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::fuse::{Attr, DirEntry, Errno, Filesystem};
use crate::image::estargz::{self, Chunk, Kind, Node, Tree, ROOT};

/// Where verified chunk contents come from.
pub trait ChunkSource: Send + Sync {
    fn fetch(&self, chunk: &Chunk, name: &str) -> Result<Vec<u8>, String>;
}

/// A whole blob in memory: chunks are cut from it and checked against the TOC.
pub struct BlobSource(pub Vec<u8>);

impl ChunkSource for BlobSource {
    fn fetch(&self, chunk: &Chunk, name: &str) -> Result<Vec<u8>, String> {
        let member = self
            .0
            .get(chunk.member.start as usize..chunk.member.end as usize)
            .ok_or_else(|| format!("{name}: the chunk lies past the blob"))?;
        estargz::inflate(member, chunk, name).map_err(|e| e.to_string())
    }
}

/// Chunks kept in memory, the oldest dropped first past this many bytes.
const CACHE_BYTES: usize = 64 << 20;

#[derive(Default)]
struct Cache {
    chunks: HashMap<u64, Arc<Vec<u8>>>,
    order: VecDeque<u64>,
    bytes: usize,
}

pub struct TreeFs {
    tree: Arc<Tree>,
    source: Box<dyn ChunkSource>,
    cache: Mutex<Cache>,
}

fn type_bits(kind: &Kind) -> u32 {
    match kind {
        Kind::Dir(_) => libc::S_IFDIR,
        Kind::File { .. } => libc::S_IFREG,
        Kind::Symlink(_) => libc::S_IFLNK,
        Kind::Char { .. } => libc::S_IFCHR,
        Kind::Block { .. } => libc::S_IFBLK,
        Kind::Fifo => libc::S_IFIFO,
    }
}

impl TreeFs {
    pub fn new(tree: Arc<Tree>, source: Box<dyn ChunkSource>) -> TreeFs {
        TreeFs {
            tree,
            source,
            cache: Mutex::default(),
        }
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.tree.node(ino).ok_or(libc::ENOENT)
    }

    fn chunk(&self, ino: u64, chunk: &Chunk) -> Result<Arc<Vec<u8>>, Errno> {
        let key = chunk.member.start;
        if let Some(data) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).chunks.get(&key) {
            return Ok(data.clone());
        }
        let name = format!("inode {ino}");
        let data = Arc::new(self.source.fetch(chunk, &name).map_err(|e| {
            tracing::warn!(%name, offset = chunk.offset, error = %e, "a lazily read chunk failed");
            libc::EIO
        })?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.chunks.insert(key, data.clone()).is_none() {
            cache.order.push_back(key);
            cache.bytes += data.len();
        }
        while cache.bytes > CACHE_BYTES {
            let Some(old) = cache.order.pop_front() else { break };
            if let Some(gone) = cache.chunks.remove(&old) {
                cache.bytes -= gone.len();
            }
        }
        Ok(data)
    }
}

impl Filesystem for TreeFs {
    fn getattr(&self, ino: u64) -> Result<Attr, Errno> {
        let n = self.node(ino)?;
        let (size, nlink, (major, minor)) = match &n.kind {
            Kind::Dir(entries) => {
                let subdirs = entries
                    .values()
                    .filter(|c| matches!(self.tree.node(**c).map(|c| &c.kind), Some(Kind::Dir(_))))
                    .count();
                (4096, 2 + subdirs as u32, (0, 0))
            }
            Kind::File { size, .. } => (*size, n.nlink, (0, 0)),
            Kind::Symlink(target) => (target.len() as u64, n.nlink, (0, 0)),
            Kind::Char { major, minor } | Kind::Block { major, minor } => (0, n.nlink, (*major, *minor)),
            Kind::Fifo => (0, n.nlink, (0, 0)),
        };
        Ok(Attr {
            ino,
            size,
            mode: type_bits(&n.kind) | n.mode,
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev_major: major,
            rdev_minor: minor,
            mtime: n.mtime,
        })
    }

    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, Errno> {
        match &self.node(parent)?.kind {
            Kind::Dir(entries) => self.getattr(*entries.get(name).ok_or(libc::ENOENT)?),
            _ => Err(libc::ENOTDIR),
        }
    }

    fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        match &self.node(ino)?.kind {
            Kind::Symlink(target) => Ok(target.clone()),
            _ => Err(libc::EINVAL),
        }
    }

    fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let Kind::File {
            size: file_size,
            chunks,
        } = &self.node(ino)?.kind
        else {
            return Err(libc::EISDIR);
        };
        let end = offset.saturating_add(size.into()).min(*file_size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let first = chunks.partition_point(|c| c.offset + c.len <= offset);
        for c in chunks[first..].iter().take_while(|c| c.offset < end) {
            let data = self.chunk(ino, c)?;
            let from = offset.max(c.offset) - c.offset;
            let to = end.min(c.offset + c.len) - c.offset;
            out.extend_from_slice(&data[from as usize..to as usize]);
        }
        Ok(out)
    }

    fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>, Errno> {
        let Kind::Dir(entries) = &self.node(ino)?.kind else {
            return Err(libc::ENOTDIR);
        };
        let dot = |name: &[u8]| DirEntry {
            ino: if name == b"." { ino } else { ROOT },
            name: name.to_vec(),
            kind: libc::S_IFDIR,
        };
        let mut out = vec![dot(b"."), dot(b"..")];
        for (name, child) in entries {
            let kind = self.tree.node(*child).map_or(libc::S_IFREG, |n| type_bits(&n.kind));
            out.push(DirEntry {
                ino: *child,
                name: name.clone(),
                kind,
            });
        }
        Ok(out)
    }

    fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, Errno> {
        self.node(ino)?.xattrs.get(name).cloned().ok_or(libc::ENODATA)
    }

    fn listxattr(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        for name in self.node(ino)?.xattrs.keys() {
            out.extend(name);
            out.push(0);
        }
        Ok(out)
    }
}
