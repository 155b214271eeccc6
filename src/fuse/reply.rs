//! Replies as the kernel reads them: the out header, then the opcode's structure.

use super::{Attr, DirEntry, Errno};

/// How long the kernel may keep entries and attributes: the tree never changes.
const VALID_SECS: u64 = 3600;
const KEEP_CACHE: u32 = 1 << 1;
const CACHE_DIR: u32 = 1 << 3;

pub(super) struct Reply {
    error: Errno,
    body: Vec<u8>,
}

impl Reply {
    pub fn error(errno: Errno) -> Reply {
        Reply {
            error: errno,
            body: Vec::new(),
        }
    }

    pub fn empty() -> Reply {
        Reply::data(Vec::new())
    }

    pub fn data(body: Vec<u8>) -> Reply {
        Reply { error: 0, body }
    }

    /// The bytes to write: `len`, `-errno`, `unique`, and the body unless it failed.
    pub fn finish(self, unique: u64) -> Vec<u8> {
        let body = if self.error == 0 { self.body } else { Vec::new() };
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend(((16 + body.len()) as u32).to_le_bytes());
        out.extend((-self.error).to_le_bytes());
        out.extend(unique.to_le_bytes());
        out.extend(body);
        out
    }
}

/// `fuse_attr`: 88 bytes.
fn push_attr(out: &mut Vec<u8>, a: &Attr) {
    let mtime = a.mtime.max(0) as u64;
    for v in [a.ino, a.size, a.size.div_ceil(512), mtime, mtime, mtime] {
        out.extend(v.to_le_bytes());
    }
    // The kernel's "new" device encoding: minor's low byte, major, minor's high bits.
    let rdev = (a.rdev_minor & 0xff) | (a.rdev_major << 8) | ((a.rdev_minor & !0xff) << 12);
    for v in [0, 0, 0, a.mode, a.nlink, a.uid, a.gid, rdev, 4096, 0] {
        out.extend(u32::to_le_bytes(v));
    }
}

/// `fuse_entry_out`: node id, generation, entry and attr validity, the attributes.
pub fn entry(a: &Attr) -> Reply {
    let mut out = Vec::with_capacity(128);
    for v in [a.ino, 0, VALID_SECS, VALID_SECS] {
        out.extend(v.to_le_bytes());
    }
    out.extend([0u8; 8]);
    push_attr(&mut out, a);
    Reply::data(out)
}

/// `fuse_attr_out`: validity, padding, the attributes.
pub fn attr(a: &Attr) -> Reply {
    let mut out = Vec::with_capacity(104);
    out.extend(VALID_SECS.to_le_bytes());
    out.extend([0u8; 8]);
    push_attr(&mut out, a);
    Reply::data(out)
}

/// `fuse_open_out`: no file handle needed; the page cache is kept between opens.
pub fn open() -> Reply {
    let mut out = vec![0u8; 16];
    out[8..12].copy_from_slice(&(KEEP_CACHE | CACHE_DIR).to_le_bytes());
    Reply::data(out)
}

/// `fuse_dirent`s from the `offset`-th entry on, as many as fit in `size` bytes; each
/// entry's `off` is the index of the one after it.
pub fn dirents(entries: &[DirEntry], offset: u64, size: u32) -> Reply {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate().skip(offset as usize) {
        let len = (24 + e.name.len()).next_multiple_of(8);
        if out.len() + len > size as usize {
            break;
        }
        out.extend(e.ino.to_le_bytes());
        out.extend((i as u64 + 1).to_le_bytes());
        out.extend((e.name.len() as u32).to_le_bytes());
        out.extend(((e.kind >> 12) & 0xf).to_le_bytes());
        out.extend(&e.name);
        out.resize(out.len().next_multiple_of(8), 0);
    }
    Reply::data(out)
}

/// An xattr value or name list: its size when asked with 0, ERANGE when it does not fit.
pub fn sized(value: Vec<u8>, size: u32) -> Result<Reply, Errno> {
    if size == 0 {
        let mut out = (value.len() as u32).to_le_bytes().to_vec();
        out.extend([0u8; 4]);
        return Ok(Reply::data(out));
    }
    if value.len() > size as usize {
        return Err(libc::ERANGE);
    }
    Ok(Reply::data(value))
}

/// `fuse_kstatfs`: nothing free, 4 KiB blocks, 255-byte names.
pub fn statfs() -> Reply {
    let mut out = vec![0u8; 80];
    out[40..44].copy_from_slice(&4096u32.to_le_bytes());
    out[44..48].copy_from_slice(&255u32.to_le_bytes());
    out[48..52].copy_from_slice(&4096u32.to_le_bytes());
    Reply::data(out)
}

/// `fuse_init_out` (64 bytes for 7.23 and later).
pub fn init(major: u32, minor: u32, max_readahead: u32, flags: u32, max_write: u32) -> Reply {
    let mut out = Vec::with_capacity(64);
    for v in [major, minor, max_readahead, flags] {
        out.extend(v.to_le_bytes());
    }
    out.extend(16u16.to_le_bytes()); // max_background
    out.extend(12u16.to_le_bytes()); // congestion_threshold
    out.extend(max_write.to_le_bytes());
    out.extend(1u32.to_le_bytes()); // time_gran: 1 ns
    out.resize(64, 0);
    Reply::data(out)
}
