//! The tar stream, bounded, and each entry dispatched by type.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::OFlags;

use super::path::components;
use super::{escape, io_err, tar_err, UnpackError, UnpackLimits, UnpackStats};
use crate::sys::fs as fs_sys;

/// Unpack a decompressed layer tar into `dest` (an existing, empty directory).
///
/// Ownership, modes (setuid/setgid/sticky included), PAX `SCHILY.xattr.*`
/// records and mtimes are applied. Xattrs in the `trusted.overlay.` and
/// `user.overlay.` namespaces are ignored, so a layer cannot forge overlayfs
/// metadata; an xattr the filesystem does not support is skipped. OCI
/// whiteouts become 0:0 character devices and `trusted.overlay.opaque=y`.
/// On error `dest` holds a partial layer and must be removed by the caller.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path, limits: &UnpackLimits) -> Result<UnpackStats, UnpackError> {
    let root = fs_sys::open_dir_path(dest).map_err(|source| UnpackError::Io {
        path: dest.display().to_string(),
        source,
    })?;
    // Extension headers (PAX, GNU long names) are buffered by the tar crate
    // before we see an entry; capping the raw stream bounds them too.
    let cap = limits
        .max_bytes
        .saturating_add(limits.max_entries.saturating_mul(4096))
        .saturating_add(1 << 20);
    let consumed = Cell::new(0);
    let stream = Capped {
        inner: reader,
        consumed: &consumed,
        cap,
    };
    let mut u = Unpacker {
        root,
        limits: *limits,
        consumed: &consumed,
        cap,
        stats: UnpackStats::default(),
        entries: 0,
        declared: 0,
        dir_times: Vec::new(),
        buf: vec![0; 128 * 1024],
    };
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(|e| u.read_err(e))? {
        let mut entry = entry.map_err(|e| u.read_err(e))?;
        u.entry(&mut entry)?;
    }
    u.finish()?;
    Ok(u.stats)
}

/// Counts the raw bytes read and fails once more than `cap` were read.
struct Capped<'a, R> {
    inner: R,
    consumed: &'a Cell<u64>,
    cap: u64,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.consumed.get() > self.cap {
            return Err(io::Error::other("layer stream over limit"));
        }
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

/// Ownership, mode, xattrs and mtime of an entry.
pub(super) struct Meta {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) mtime: (i64, u32),
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One layer being unpacked; its node operations live in `tree.rs` and `whiteout.rs`.
pub(super) struct Unpacker<'a> {
    pub(super) root: OwnedFd,
    limits: UnpackLimits,
    consumed: &'a Cell<u64>,
    cap: u64,
    pub(super) stats: UnpackStats,
    entries: u64,
    declared: u64,
    /// Directories whose mtime is applied at the end, in entry order.
    pub(super) dir_times: Vec<(Vec<u8>, (i64, u32))>,
    buf: Vec<u8>,
}

/// Parses a PAX time (`secs[.fraction]`, possibly negative).
fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let v = std::str::from_utf8(v).ok()?;
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let mut sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut nsec: u32 = digits.parse().ok()?;
    if secs.starts_with('-') && nsec > 0 {
        sec = sec.checked_sub(1)?;
        nsec = 1_000_000_000 - nsec;
    }
    Some((sec, nsec))
}

impl Unpacker<'_> {
    fn read_err(&self, e: io::Error) -> UnpackError {
        if self.consumed.get() > self.cap {
            UnpackError::Limit(format!("layer tar stream is larger than {} bytes", self.cap))
        } else if matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) {
            // The reader stores the blob as it goes: its write failed, not the tar.
            UnpackError::NoSpace(e)
        } else {
            UnpackError::Tar(e)
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let shown = shown.as_str();
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::Limit(format!(
                "more than {} entries (at {shown:?})",
                self.limits.max_entries
            )));
        }
        self.declared = self.declared.saturating_add(entry.size());
        if self.declared > self.limits.max_bytes {
            return Err(UnpackError::Limit(format!(
                "content exceeds {} bytes (at {shown:?})",
                self.limits.max_bytes
            )));
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let (meta, sparse) = self.meta(entry, shown)?;
        if kind.is_gnu_sparse() || sparse {
            return Err(UnpackError::Unsupported {
                path: shown.to_owned(),
                kind: "sparse file".to_owned(),
            });
        }
        let comps = components(&raw, shown, false)?;
        let is_dir = kind.is_dir() || (kind.is_file() && raw.ends_with(b"/"));
        let Some((&name, dirs)) = comps.split_last() else {
            if !is_dir {
                return Err(escape(shown, "entry for the layer root is not a directory"));
            }
            let fd = fs_sys::open_beneath(self.root.as_fd(), b".", OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(io_err(shown))?;
            self.apply_fd(fd.as_fd(), &meta, shown)?;
            self.dir_times.push((b".".to_vec(), meta.mtime));
            return Ok(());
        };
        if let Some(rest) = name.strip_prefix(b".wh.") {
            return self.whiteout(dirs, rest, shown);
        }
        let parent = self.parent(dirs, shown)?;
        let parent = parent.as_fd();
        let fail = io_err(shown);
        if is_dir {
            if !self.clear(parent, name, true, shown)? {
                fs_sys::mkdir_at(parent, name, 0o700).map_err(io_err(shown))?;
                self.stats.inodes += 1;
            }
            let fd = fs_sys::open_dir_at(parent, name).map_err(io_err(shown))?;
            self.apply_fd(fd.as_fd(), &meta, shown)?;
            self.dir_times.push((comps.join(&b'/'), meta.mtime));
        } else if kind.is_file() || kind.is_contiguous() {
            self.clear(parent, name, false, shown)?;
            let mut file = fs_sys::create_file_at(parent, name, 0o600).map_err(io_err(shown))?;
            self.stats.inodes += 1;
            loop {
                let n = entry.read(&mut self.buf).map_err(|e| self.read_err(e))?;
                if n == 0 {
                    break;
                }
                file.write_all(&self.buf[..n]).map_err(io_err(shown))?;
                self.stats.bytes += n as u64;
            }
            self.apply_fd(file.as_fd(), &meta, shown)?;
            fs_sys::futimes(file.as_fd(), meta.mtime.0, meta.mtime.1).map_err(fail)?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| tar_err(shown, "symlink", io::Error::other("no link target")))?;
            self.clear(parent, name, false, shown)?;
            fs_sys::symlink_at(&target, parent, name).map_err(io_err(shown))?;
            self.stats.inodes += 1;
            self.apply_at(parent, name, &meta, true, shown)?;
        } else if kind.is_hard_link() {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            self.hardlink(parent, name, &comps, &target, shown)?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let special = if kind.is_fifo() {
                fs_sys::SpecialKind::Fifo
            } else if kind.is_block_special() {
                fs_sys::SpecialKind::Block
            } else {
                fs_sys::SpecialKind::Char
            };
            let (mut major, mut minor) = (0, 0);
            if special != fs_sys::SpecialKind::Fifo {
                let h = entry.header();
                let dev = |v: io::Result<Option<u32>>| v.map(Option::unwrap_or_default);
                major = dev(h.device_major()).map_err(|e| tar_err(shown, "device major", e))?;
                minor = dev(h.device_minor()).map_err(|e| tar_err(shown, "device minor", e))?;
            }
            self.clear(parent, name, false, shown)?;
            fs_sys::mknod_at(parent, name, special, 0o600, major, minor).map_err(fail)?;
            self.stats.inodes += 1;
            self.apply_at(parent, name, &meta, false, shown)?;
        } else {
            return Err(UnpackError::Unsupported {
                path: shown.to_owned(),
                kind: format!("{kind:?}"),
            });
        }
        Ok(())
    }

    /// Reads the entry's metadata; also reports PAX sparse-file records.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<(Meta, bool), UnpackError> {
        let h = entry.header();
        let id = |v: io::Result<u64>, what| {
            v.and_then(|v| u32::try_from(v).map_err(|_| io::Error::other("out of range")))
                .map_err(|e| tar_err(shown, what, e))
        };
        let uid = id(h.uid(), "uid")?;
        let gid = id(h.gid(), "gid")?;
        let mode = h.mode().map_err(|e| tar_err(shown, "mode", e))? & 0o7777;
        let mtime = h.mtime().map_err(|e| tar_err(shown, "mtime", e))?;
        let mut meta = Meta {
            uid,
            gid,
            mode,
            mtime: (i64::try_from(mtime).unwrap_or(i64::MAX), 0),
            xattrs: Vec::new(),
        };
        let mut sparse = false;
        let pax = entry.pax_extensions().map_err(|e| tar_err(shown, "pax", e))?;
        for ext in pax.into_iter().flatten() {
            let ext = ext.map_err(|e| tar_err(shown, "pax", e))?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if !name.is_empty() && !super::forged_overlay_xattr(name) {
                    meta.xattrs.push((name.to_vec(), value.to_vec()));
                }
            } else if key == b"mtime" {
                meta.mtime = parse_pax_time(value).unwrap_or(meta.mtime);
            } else if key.starts_with(b"GNU.sparse.") {
                sparse = true;
            }
        }
        Ok((meta, sparse))
    }
}
