//! The file tree of an eStargz layer, built from its TOC alone: what a lazy mount serves
//! before the blob is here. Names are taken as the unpacker takes them (relative, no `..`,
//! no NUL, missing parents made 0755, a later entry replacing an earlier one), OCI
//! whiteouts become what overlayfs reads in a lower layer (a 0/0 character device, the
//! `trusted.overlay.opaque` xattr), the TOC and landmark entries are hidden, and each
//! regular file's chunks must cover it exactly, each in a gzip member before the TOC.
//!
//! Where the unpacker would follow a symlink the layer planted in a parent path, the tree
//! refuses the TOC: such a layer is pulled whole instead.

use std::collections::BTreeMap;
use std::ops::Range;

use base64::Engine;

use super::read::{TocError, MAX_CHUNK};
use super::{Toc, TocEntry, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_NAME};
use crate::image::unpack::forged_overlay_xattr;
use crate::image::unpack::path::components;

/// The root directory's inode number.
pub const ROOT: u64 = 1;

/// The xattr overlayfs reads to know a lower directory hides what is beneath it.
pub const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits, set-id and sticky bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub nlink: u32,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Dir(BTreeMap<Vec<u8>, u64>),
    File { size: u64, chunks: Vec<Chunk> },
    Symlink(Vec<u8>),
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
}

/// A piece of a regular file and where its compressed bytes are in the blob.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Offset in the file.
    pub offset: u64,
    pub len: u64,
    /// The gzip member holding it: from its start to the next member's.
    pub member: Range<u64>,
    pub digest: String,
}

#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// The tree of `toc`, whose member starts at `toc_offset` in the blob.
    pub fn build(toc: &Toc, toc_offset: u64) -> Result<Tree, TocError> {
        let mut b = Builder {
            nodes: vec![dir(0o755)],
            whiteouts: Vec::new(),
            open_file: None,
        };
        for entry in &toc.entries {
            b.entry(entry).map_err(|why| malformed(&entry.name, why))?;
        }
        b.finish(toc_offset)
    }

    pub fn node(&self, ino: u64) -> Option<&Node> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.nodes.get(i)
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Option<u64> {
        match &self.node(parent)?.kind {
            Kind::Dir(entries) => entries.get(name).copied(),
            _ => None,
        }
    }

    /// The inode at `path` (relative to the root), symlinks not followed.
    pub fn resolve(&self, path: &str) -> Option<u64> {
        path.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .try_fold(ROOT, |ino, c| self.lookup(ino, c.as_bytes()))
    }

    /// Every regular file's chunks, in blob order: what a full fetch reads.
    pub fn chunks(&self) -> Vec<(u64, &Chunk)> {
        let mut all: Vec<(u64, &Chunk)> = (ROOT..)
            .zip(&self.nodes)
            .flat_map(|(ino, n)| match &n.kind {
                Kind::File { chunks, .. } => chunks.iter().map(|c| (ino, c)).collect(),
                _ => Vec::new(),
            })
            .collect();
        all.sort_by_key(|(_, c)| c.member.start);
        all.dedup_by_key(|(_, c)| c.member.start);
        all
    }
}

fn dir(mode: u32) -> Node {
    Node {
        kind: Kind::Dir(BTreeMap::new()),
        mode,
        uid: 0,
        gid: 0,
        mtime: 0,
        nlink: 1,
        xattrs: BTreeMap::new(),
    }
}

fn malformed(name: &str, why: String) -> TocError {
    TocError::Malformed(format!("{name:?}: {why}"))
}

struct Builder {
    nodes: Vec<Node>,
    /// (directory, name) of each whiteout: made at the end unless the layer has the name.
    whiteouts: Vec<(u64, Vec<u8>)>,
    /// The regular file whose `chunk` entries may follow: its inode and TOC name.
    open_file: Option<(u64, String)>,
}

impl Builder {
    fn node(&mut self, ino: u64) -> &mut Node {
        &mut self.nodes[(ino - 1) as usize]
    }

    fn children(&mut self, ino: u64) -> &mut BTreeMap<Vec<u8>, u64> {
        match &mut self.node(ino).kind {
            Kind::Dir(entries) => entries,
            _ => unreachable!("only directories are walked into"),
        }
    }

    fn add(&mut self, node: Node) -> u64 {
        self.nodes.push(node);
        self.nodes.len() as u64
    }

    fn entry(&mut self, e: &TocEntry) -> Result<(), String> {
        if e.kind == "chunk" {
            return self.chunk(e);
        }
        self.open_file = None;
        let comps = components(e.name.as_bytes(), &e.name, false).map_err(|err| err.to_string())?;
        let Some((name, dirs)) = comps.split_last() else {
            return match e.kind.as_str() {
                "dir" => self.relist(ROOT, e),
                other => Err(format!("the root is a {other}")),
            };
        };
        if dirs.is_empty() && [TOC_NAME, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK].contains(&e.name.as_str()) {
            return Ok(());
        }
        let parent = self.parents(dirs)?;
        if let Some(rest) = name.strip_prefix(b".wh.") {
            if rest == b".wh..opq" {
                self.node(parent).xattrs.insert(OPAQUE_XATTR.to_vec(), b"y".to_vec());
            } else if rest.is_empty() {
                return Err("a whiteout that names no file".into());
            } else if !rest.starts_with(b".wh.") {
                self.whiteouts.push((parent, rest.to_vec()));
            }
            return Ok(());
        }
        let ino = match e.kind.as_str() {
            "hardlink" => {
                let target = components(e.link_name.as_bytes(), &e.name, true).map_err(|err| err.to_string())?;
                let ino = self
                    .walk(&target)?
                    .ok_or_else(|| format!("hard link to {:?}, which is not earlier in the layer", e.link_name))?;
                if matches!(self.node(ino).kind, Kind::Dir(_)) {
                    return Err("a hard link to a directory".into());
                }
                self.node(ino).nlink += 1;
                ino
            }
            "dir" => match self.children(parent).get(*name).copied() {
                // A directory again: its metadata changes, its entries stay.
                Some(old) if matches!(self.node(old).kind, Kind::Dir(_)) => return self.relist(old, e),
                _ => {
                    let node = self.metadata(e, Kind::Dir(BTreeMap::new()))?;
                    self.add(node)
                }
            },
            "reg" => {
                let node = self.metadata(
                    e,
                    Kind::File {
                        size: e.size,
                        chunks: Vec::new(),
                    },
                )?;
                let ino = self.add(node);
                if e.size > 0 {
                    self.open_file = Some((ino, e.name.clone()));
                    self.chunk(e)?;
                }
                ino
            }
            "symlink" => {
                let node = self.metadata(e, Kind::Symlink(e.link_name.as_bytes().to_vec()))?;
                self.add(node)
            }
            "char" | "block" => {
                let (major, minor) = (device(e.dev_major)?, device(e.dev_minor)?);
                let kind = if e.kind == "char" {
                    Kind::Char { major, minor }
                } else {
                    Kind::Block { major, minor }
                };
                let node = self.metadata(e, kind)?;
                self.add(node)
            }
            "fifo" => {
                let node = self.metadata(e, Kind::Fifo)?;
                self.add(node)
            }
            other => return Err(format!("unknown entry type {other:?}")),
        };
        if let Some(old) = self.children(parent).insert(name.to_vec(), ino) {
            let old = self.node(old);
            old.nlink = old.nlink.saturating_sub(1);
        }
        Ok(())
    }

    /// A directory listed again (or the root listed at all): as the unpacker does, its
    /// owner, mode and mtime change, its xattrs are set over the ones it has (an opaque
    /// marker stays), its entries stay.
    fn relist(&mut self, ino: u64, e: &TocEntry) -> Result<(), String> {
        let node = self.metadata(e, Kind::Dir(BTreeMap::new()))?;
        let dir = self.node(ino);
        (dir.mode, dir.uid, dir.gid, dir.mtime) = (node.mode, node.uid, node.gid, node.mtime);
        dir.xattrs.extend(node.xattrs);
        Ok(())
    }

    /// The directory `dirs` names, made 0755 where missing.
    fn parents(&mut self, dirs: &[&[u8]]) -> Result<u64, String> {
        let mut ino = ROOT;
        for d in dirs {
            ino = match self.children(ino).get(*d).copied() {
                Some(child) => match self.node(child).kind {
                    Kind::Dir(_) => child,
                    Kind::Symlink(_) => return Err("its path goes through a symlink".into()),
                    _ => return Err("a parent is not a directory".into()),
                },
                None => {
                    let child = self.add(dir(0o755));
                    self.children(ino).insert(d.to_vec(), child);
                    child
                }
            };
        }
        Ok(ino)
    }

    /// The inode at `path`, if the layer has it so far (no symlinks followed).
    fn walk(&mut self, path: &[&[u8]]) -> Result<Option<u64>, String> {
        let mut ino = ROOT;
        for c in path {
            match &self.node(ino).kind {
                Kind::Dir(entries) => match entries.get(*c) {
                    Some(child) => ino = *child,
                    None => return Ok(None),
                },
                Kind::Symlink(_) => return Err("a hard link through a symlink".into()),
                _ => return Ok(None),
            }
        }
        Ok(Some(ino))
    }

    fn metadata(&self, e: &TocEntry, kind: Kind) -> Result<Node, String> {
        let id = |v: u64| u32::try_from(v).map_err(|_| format!("owner id {v} is out of range"));
        let mut xattrs = BTreeMap::new();
        for (k, v) in &e.xattrs {
            // Overlay metadata a layer brings is forged: dropped, as the unpacker drops it.
            if forged_overlay_xattr(k.as_bytes()) {
                continue;
            }
            let value = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|err| format!("xattr {k}: {err}"))?;
            xattrs.insert(k.as_bytes().to_vec(), value);
        }
        Ok(Node {
            kind,
            mode: e.mode & 0o7777,
            uid: id(e.uid)?,
            gid: id(e.gid)?,
            mtime: berth_shim::timefmt::parse_rfc3339(&e.modtime).map_or(0, |ns| ns.div_euclid(1_000_000_000)),
            nlink: 1,
            xattrs,
        })
    }

    /// A chunk of the open regular file: the `reg` entry's own or a `chunk` entry after it.
    fn chunk(&mut self, e: &TocEntry) -> Result<(), String> {
        let Some((ino, name)) = self.open_file.clone() else {
            return Err("a chunk entry that follows no regular file".into());
        };
        if name != e.name {
            return Err(format!("a chunk entry after {name:?}"));
        }
        let Kind::File { size, chunks } = &mut self.node(ino).kind else {
            unreachable!("open_file is a regular file");
        };
        let covered = chunks.last().map_or(0, |c| c.offset + c.len);
        if e.chunk_offset != covered {
            return Err(format!("a chunk at {} where {covered} was expected", e.chunk_offset));
        }
        let len = match e.chunk_size {
            0 => *size - covered,
            n => n,
        };
        if len == 0 || len > MAX_CHUNK || covered + len > *size {
            return Err(format!("a chunk of {len} bytes at {covered} in a {size}-byte file"));
        }
        if e.offset == 0 || !e.chunk_digest.starts_with("sha256:") {
            return Err("a chunk without its offset or digest".into());
        }
        chunks.push(Chunk {
            offset: covered,
            len,
            member: e.offset..e.offset,
            digest: e.chunk_digest.clone(),
        });
        Ok(())
    }

    fn finish(mut self, toc_offset: u64) -> Result<Tree, TocError> {
        let mut starts = Vec::new();
        for node in &self.nodes {
            if let Kind::File { size, chunks } = &node.kind {
                if chunks.last().map_or(0, |c| c.offset + c.len) != *size {
                    return Err(TocError::Malformed(format!(
                        "a {size}-byte file whose chunks do not cover it"
                    )));
                }
                starts.extend(chunks.iter().map(|c| c.member.start));
            }
        }
        if starts.iter().any(|s| *s >= toc_offset) {
            return Err(TocError::Malformed("a chunk at or after the TOC".into()));
        }
        starts.push(toc_offset);
        starts.sort_unstable();
        starts.dedup();
        for node in &mut self.nodes {
            if let Kind::File { chunks, .. } = &mut node.kind {
                for c in chunks {
                    let next = starts.partition_point(|s| *s <= c.member.start);
                    c.member.end = starts[next];
                }
            }
        }
        for (parent, name) in std::mem::take(&mut self.whiteouts) {
            if !self.children(parent).contains_key(&name) {
                let mut node = dir(0);
                node.kind = Kind::Char { major: 0, minor: 0 };
                let ino = self.add(node);
                self.children(parent).insert(name, ino);
            }
        }
        Ok(Tree { nodes: self.nodes })
    }
}

fn device(v: u64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("device number {v} is out of range"))
}
