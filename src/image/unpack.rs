//! Unpacking of OCI image layers into overlayfs lower directories.
//!
//! [`unpack_layer`] reads an already-decompressed layer tar and recreates it
//! in an empty directory, turning OCI whiteouts into their overlayfs form.
//! Layers are untrusted input, so the unpacker never builds host paths:
//!
//! * `dest` is opened once; every later operation is an `*at` call relative
//!   to a directory descriptor under it.
//! * Entry paths must be relative and free of `..`. The parent directory of
//!   an entry is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`:
//!   symlinks planted by the layer are followed only while they stay inside
//!   `dest`; a path that crosses an absolute symlink, or one that climbs out
//!   with `..`, is refused with [`UnpackError::Escape`]. (So an absolute
//!   symlink such as `var/run -> /run` cannot be used as a parent by later
//!   entries of the same layer; that is deliberate.)
//! * The final component is created with `O_CREAT|O_EXCL|O_NOFOLLOW`,
//!   `mkdirat`, `symlinkat`, `mknodat` or `linkat` (without
//!   `AT_SYMLINK_FOLLOW`) and never followed afterwards.
//! * A later entry replaces an earlier one with the same name; a directory
//!   replaced by a non-directory is removed recursively through descriptors.
//!
//! On error the directory is left half-written: the caller must remove it.

#![deny(unsafe_code)]

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::OFlags;

use crate::sys::fs as fs_sys;

/// Bounds on what one layer may contain, as a guard against decompression
/// bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Most tar entries (of any type) the layer may have.
    pub max_entries: u64,
    /// Most bytes of entry content (sum of the entry sizes in the tar).
    pub max_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_bytes: 64 << 30,
        }
    }
}

/// What an unpack created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Inodes created (files, directories, symlinks, devices, whiteouts;
    /// hard links create none).
    pub inodes: u64,
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A hostile entry: it would reach outside the destination.
    #[error("refusing layer entry {path:?}: {reason}")]
    Escape {
        /// Entry path as written in the tar.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The layer has too many entries or too much content.
    #[error("layer exceeds unpack limits: {0}")]
    Limit(String),
    /// A filesystem operation for an entry failed.
    #[error("unpacking layer entry {path:?}: {source}")]
    Io {
        /// Entry path as written in the tar (or the destination).
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The tar stream is malformed or could not be read.
    #[error("malformed layer tar: {0}")]
    Tar(#[source] io::Error),
    /// An entry type that layers must not use.
    #[error("layer entry {path:?} has unsupported type {kind}")]
    Unsupported {
        /// Entry path as written in the tar.
        path: String,
        /// The entry type.
        kind: String,
    },
    /// A hard link whose target was not unpacked before it.
    #[error("hard link {path:?} points to {target:?}, which does not exist earlier in the layer")]
    MissingLinkTarget {
        /// Entry path as written in the tar.
        path: String,
        /// Link target as written in the tar.
        target: String,
    },
}

impl UnpackError {
    /// True for hostile entries that were rejected (path escapes).
    pub fn is_escape(&self) -> bool {
        matches!(self, UnpackError::Escape { .. })
    }
}

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
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Unpacker<'a> {
    root: OwnedFd,
    limits: UnpackLimits,
    consumed: &'a Cell<u64>,
    cap: u64,
    stats: UnpackStats,
    entries: u64,
    declared: u64,
    /// Directories whose mtime is applied at the end, in entry order.
    dir_times: Vec<(Vec<u8>, (i64, u32))>,
    buf: Vec<u8>,
}

fn escape(path: &str, reason: &'static str) -> UnpackError {
    UnpackError::Escape {
        path: path.to_owned(),
        reason,
    }
}

fn io_err(path: &str) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_owned(),
        source,
    }
}

fn tar_err(path: &str, what: &str, e: io::Error) -> UnpackError {
    UnpackError::Tar(io::Error::new(e.kind(), format!("entry {path:?}: {what}: {e}")))
}

/// Splits an entry path into components, dropping empty and `.` ones.
/// `link` selects the error texts for a hard link target.
fn components<'p>(raw: &'p [u8], shown: &str, link: bool) -> Result<Vec<&'p [u8]>, UnpackError> {
    let (absolute, dotdot, nul) = if link {
        (
            "hard link target is absolute",
            "hard link target has a '..' component",
            "hard link target contains NUL",
        )
    } else {
        (
            "path is absolute",
            "path has a '..' component",
            "path contains a NUL byte",
        )
    };
    if raw.first() == Some(&b'/') {
        return Err(escape(shown, absolute));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(escape(shown, dotdot)),
            c if c.contains(&0) => return Err(escape(shown, nul)),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
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
                let forged = name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.");
                if !name.is_empty() && !forged {
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

    /// Opens the parent directory `dirs` (relative to the root), creating
    /// missing directories (0755, root-owned) on the way.
    fn parent(&mut self, dirs: &[&[u8]], shown: &str) -> Result<OwnedFd, UnpackError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        let resolve_err = |e: io::Error| {
            if e.kind() == io::ErrorKind::CrossesDevices {
                escape(shown, "path resolves through a symlink that leads outside the layer")
            } else {
                UnpackError::Io {
                    path: shown.to_owned(),
                    source: e,
                }
            }
        };
        match fs_sys::open_beneath(self.root.as_fd(), &join(dirs), flags) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other.map_err(resolve_err),
        }
        let mut cur = fs_sys::open_beneath(self.root.as_fd(), b".", flags).map_err(io_err(shown))?;
        for i in 0..dirs.len() {
            let prefix = join(&dirs[..=i]);
            cur = match fs_sys::open_beneath(self.root.as_fd(), &prefix, flags) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs_sys::mkdir_at(cur.as_fd(), dirs[i], 0o755).map_err(io_err(shown))?;
                    fs_sys::chmod_at(cur.as_fd(), dirs[i], 0o755).map_err(io_err(shown))?;
                    self.stats.inodes += 1;
                    fs_sys::open_beneath(self.root.as_fd(), &prefix, flags).map_err(resolve_err)?
                }
                other => other.map_err(resolve_err)?,
            };
        }
        Ok(cur)
    }

    /// Makes room for a new node `name`. Returns true if an existing
    /// directory was kept (`keep_dir`), false if the name is now free.
    fn clear(&self, parent: BorrowedFd<'_>, name: &[u8], keep_dir: bool, shown: &str) -> Result<bool, UnpackError> {
        let fail = io_err(shown);
        match fs_sys::lstat_at(parent, name).map_err(io_err(shown))? {
            None => Ok(false),
            Some(fs_sys::NodeKind::Dir) if keep_dir => Ok(true),
            Some(fs_sys::NodeKind::Dir) => fs_sys::remove_tree_at(parent, name).map(|_| false).map_err(fail),
            Some(fs_sys::NodeKind::Other) => fs_sys::unlink_at(parent, name).map(|_| false).map_err(fail),
        }
    }

    fn hardlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        comps: &[&[u8]],
        target: &[u8],
        shown: &str,
    ) -> Result<(), UnpackError> {
        let tcomps = components(target, shown, true)?;
        let missing = || UnpackError::MissingLinkTarget {
            path: shown.to_owned(),
            target: String::from_utf8_lossy(target).into_owned(),
        };
        let Some((&tname, tdirs)) = tcomps.split_last() else {
            return Err(escape(shown, "hard link target is the layer root"));
        };
        if tcomps == comps {
            return Ok(());
        }
        let tparent = match fs_sys::open_beneath(self.root.as_fd(), &join(tdirs), OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                return Err(escape(shown, "hard link target resolves outside the layer"))
            }
            Err(e) => return Err(io_err(shown)(e)),
        };
        if fs_sys::lstat_at(tparent.as_fd(), tname)
            .map_err(io_err(shown))?
            .is_none()
        {
            return Err(missing());
        }
        self.clear(parent, name, false, shown)?;
        match fs_sys::hardlink_at(tparent.as_fd(), tname, parent, name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
            other => other.map_err(io_err(shown)),
        }
    }

    /// Turns an OCI whiteout (`dirs/.wh.<rest>`) into its overlayfs form.
    fn whiteout(&mut self, dirs: &[&[u8]], rest: &[u8], shown: &str) -> Result<(), UnpackError> {
        if rest == b".wh..opq" {
            self.parent(dirs, shown)?;
            let fd = fs_sys::open_beneath(self.root.as_fd(), &join(dirs), OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(io_err(shown))?;
            return fs_sys::fsetxattr(fd.as_fd(), b"trusted.overlay.opaque", b"y").map_err(io_err(shown));
        }
        if rest.starts_with(b".wh.") {
            return Ok(()); // aufs metadata (.wh..wh.plnk etc.): meaningless here
        }
        if matches!(rest, b"" | b"." | b"..") {
            return Err(escape(shown, "whiteout names no file"));
        }
        let parent = self.parent(dirs, shown)?;
        // A whiteout only hides lower layers: a file of the same name in this
        // layer wins, whichever order they come in.
        if fs_sys::lstat_at(parent.as_fd(), rest).map_err(io_err(shown))?.is_some() {
            return Ok(());
        }
        let char_dev = fs_sys::SpecialKind::Char;
        fs_sys::mknod_at(parent.as_fd(), rest, char_dev, 0, 0, 0).map_err(io_err(shown))?;
        fs_sys::chown_at(parent.as_fd(), rest, 0, 0).map_err(io_err(shown))?;
        self.stats.inodes += 1;
        Ok(())
    }

    /// chown, chmod (after chown, which clears setuid) and xattrs through a
    /// descriptor of the node itself.
    fn apply_fd(&self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        fs_sys::fchown(fd, meta.uid, meta.gid).map_err(io_err(shown))?;
        fs_sys::fchmod(fd, meta.mode).map_err(io_err(shown))?;
        for (key, value) in &meta.xattrs {
            skip_unsupported(fs_sys::fsetxattr(fd, key, value)).map_err(io_err(shown))?;
        }
        Ok(())
    }

    /// The same for symlinks and special files, by name in `parent`, then
    /// the mtime.
    fn apply_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
        symlink: bool,
        shown: &str,
    ) -> Result<(), UnpackError> {
        fs_sys::chown_at(parent, name, meta.uid, meta.gid).map_err(io_err(shown))?;
        if !symlink {
            fs_sys::chmod_at(parent, name, meta.mode).map_err(io_err(shown))?;
        }
        for (key, value) in &meta.xattrs {
            skip_unsupported(fs_sys::lsetxattr_at(parent, name, key, value)).map_err(io_err(shown))?;
        }
        let (sec, nsec) = meta.mtime;
        fs_sys::utimes_at(parent, name, sec, nsec).map_err(io_err(shown))
    }

    /// Applies directory mtimes last, since creating children changed them.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let mut done = std::collections::HashSet::new();
        for (path, (sec, nsec)) in self.dir_times.iter().rev() {
            if !done.insert(path.as_slice()) {
                continue;
            }
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
            // A failure to open means a later entry replaced the directory.
            if let Ok(fd) = fs_sys::open_beneath(self.root.as_fd(), path, flags) {
                let shown = String::from_utf8_lossy(path);
                fs_sys::futimes(fd.as_fd(), *sec, *nsec).map_err(io_err(&shown))?;
            }
        }
        Ok(())
    }
}

fn skip_unsupported(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::PathBuf;
    use tar::{EntryType, Header};

    struct Fx {
        tmp: tempfile::TempDir,
        dest: PathBuf,
        outside: PathBuf,
    }

    fn fx() -> Fx {
        let tmp = tempfile::tempdir().expect("test setup");
        let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
        fs::create_dir(&dest).expect("test setup");
        fs::create_dir(&outside).expect("test setup");
        fs::write(outside.join("sentinel"), b"orig").expect("test setup");
        Fx { tmp, dest, outside }
    }

    impl Fx {
        fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
            unpack_layer(tar, &self.dest, &UnpackLimits::default())
        }
        /// `outside` still holds only the untouched sentinel, and nothing
        /// appeared next to `dest`.
        fn assert_outside_untouched(&self) {
            let names = |p: &Path| {
                let mut v: Vec<_> = fs::read_dir(p)
                    .expect("test setup")
                    .map(|e| e.expect("test setup").file_name())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(names(&self.outside), ["sentinel"]);
            assert_eq!(fs::read(self.outside.join("sentinel")).expect("test setup"), b"orig");
            assert_eq!(names(self.tmp.path()), ["dest", "outside"]);
        }
        /// The `outside` dir as seen from `/`, without the leading slash.
        fn outside_from_root(&self) -> String {
            self.outside
                .to_str()
                .expect("test setup")
                .trim_start_matches('/')
                .to_owned()
        }
    }

    /// A header whose name (and link name) bytes are written verbatim.
    fn raw(kind: EntryType, name: &[u8], link: &[u8], size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        h
    }

    #[derive(Default)]
    struct T(Vec<(Header, Vec<u8>)>);

    impl T {
        fn raw(mut self, kind: EntryType, name: &str, link: &str, data: &[u8]) -> Self {
            let h = raw(kind, name.as_bytes(), link.as_bytes(), data.len() as u64);
            self.0.push((h, data.to_vec()));
            self
        }
        fn file(self, name: &str, data: &[u8]) -> Self {
            self.raw(EntryType::Regular, name, "", data)
        }
        fn dir(self, name: &str) -> Self {
            self.raw(EntryType::Directory, name, "", b"")
        }
        fn link(self, kind: EntryType, name: &str, target: &str) -> Self {
            self.raw(kind, name, target, b"")
        }
        /// Changes the last header.
        fn with(mut self, f: impl FnOnce(&mut Header)) -> Self {
            let h = &mut self.0.last_mut().expect("test setup").0;
            f(h);
            h.set_cksum();
            self
        }
        fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
            let mut data = Vec::new();
            for (k, v) in records {
                let body = [b" ", k.as_bytes(), b"=", v, b"\n"].concat();
                let mut len = body.len() + 1;
                while format!("{len}").len() + body.len() != len {
                    len += 1;
                }
                data.extend_from_slice(format!("{len}").as_bytes());
                data.extend_from_slice(&body);
            }
            let mut h = Header::new_ustar();
            h.set_entry_type(EntryType::XHeader);
            h.set_size(data.len() as u64);
            h.set_cksum();
            self.0.push((h, data));
            self
        }
        fn build(self) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for (h, data) in self.0 {
                b.append(&h, data.as_slice()).expect("test setup");
            }
            b.into_inner().expect("test setup")
        }
    }

    fn meta(p: &Path) -> fs::Metadata {
        fs::symlink_metadata(p).expect("test setup")
    }

    #[test]
    fn regular_files_nested_dirs_and_stats() {
        let f = fx();
        let tar = T::default()
            .file("a.txt", b"hello")
            .file("./x//y/z/b.bin", &[7; 300_000])
            .build();
        let stats = f.unpack(&tar).expect("unpack");
        assert_eq!(fs::read(f.dest.join("a.txt")).expect("test setup"), b"hello");
        assert_eq!(
            fs::read(f.dest.join("x/y/z/b.bin")).expect("test setup"),
            vec![7; 300_000]
        );
        for d in ["x", "x/y", "x/y/z"] {
            let m = meta(&f.dest.join(d));
            assert!(m.is_dir());
            assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 0, 0));
        }
        assert_eq!(meta(&f.dest.join("a.txt")).mtime(), 1_600_000_000);
        assert_eq!(
            stats,
            UnpackStats {
                bytes: 300_005,
                inodes: 5
            }
        );
    }

    #[test]
    fn setuid_mode_and_owner_kept() {
        let f = fx();
        let tar = T::default()
            .file("bin/su", b"#!")
            .with(|h| {
                h.set_mode(0o4755);
                h.set_uid(1000);
                h.set_gid(2000);
            })
            .dir("tmp")
            .with(|h| h.set_mode(0o1777))
            .build();
        f.unpack(&tar).expect("unpack");
        let m = meta(&f.dest.join("bin/su"));
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4755, 1000, 2000));
        assert_eq!(meta(&f.dest.join("tmp")).mode() & 0o7777, 0o1777);
    }

    #[test]
    fn root_entry_sets_dest_metadata() {
        let f = fx();
        let tar = T::default()
            .dir("./")
            .with(|h| h.set_mode(0o750))
            .file("a", b"")
            .build();
        f.unpack(&tar).expect("unpack");
        let m = meta(&f.dest);
        assert_eq!((m.mode() & 0o7777, m.mtime()), (0o750, 1_600_000_000));
        let err = fx()
            .unpack(&T::default().file(".", b"x").build())
            .expect_err("must fail");
        assert!(err.is_escape(), "{err}");
    }

    #[test]
    fn symlink_stored_verbatim_and_owned() {
        let f = fx();
        let tar = T::default()
            .link(EntryType::Symlink, "etc/passwd-link", "/etc/passwd")
            .with(|h| h.set_uid(33))
            .link(EntryType::Symlink, "up", "../../..")
            .build();
        f.unpack(&tar).expect("unpack");
        let l = f.dest.join("etc/passwd-link");
        assert_eq!(fs::read_link(&l).expect("test setup"), Path::new("/etc/passwd"));
        assert_eq!((meta(&l).uid(), meta(&l).mtime()), (33, 1_600_000_000));
        assert_eq!(
            fs::read_link(f.dest.join("up")).expect("test setup"),
            Path::new("../../..")
        );
    }

    #[test]
    fn hardlink_shares_inode() {
        let f = fx();
        let tar = T::default()
            .file("a/orig", b"data")
            .link(EntryType::Link, "b/copy", "./a/orig")
            .build();
        let stats = f.unpack(&tar).expect("unpack");
        let (a, b) = (meta(&f.dest.join("a/orig")), meta(&f.dest.join("b/copy")));
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
        assert_eq!(stats.inodes, 3, "a, b, orig; the link adds no inode");
    }

    #[test]
    fn hardlink_to_symlink_links_the_symlink() {
        let f = fx();
        let out = f.outside.join("sentinel");
        let tar = T::default()
            .link(EntryType::Symlink, "s", out.to_str().expect("test setup"))
            .link(EntryType::Link, "h", "s")
            .build();
        f.unpack(&tar).expect("unpack");
        assert!(meta(&f.dest.join("h")).file_type().is_symlink());
        assert_eq!(meta(&out).nlink(), 1);
        f.assert_outside_untouched();
    }

    #[test]
    fn hardlink_missing_target() {
        let f = fx();
        let err = f
            .unpack(&T::default().link(EntryType::Link, "h", "nope").build())
            .expect_err("must fail");
        assert!(matches!(err, UnpackError::MissingLinkTarget { .. }), "{err}");
    }

    #[test]
    fn devices_and_fifo() {
        let f = fx();
        let dev = |maj, min| {
            move |h: &mut Header| {
                h.set_device_major(maj).expect("major");
                h.set_device_minor(min).expect("minor");
                h.set_mode(0o666);
            }
        };
        let tar = T::default()
            .raw(EntryType::Char, "dev/null", "", b"")
            .with(dev(1, 3))
            .raw(EntryType::Block, "dev/loop0", "", b"")
            .with(dev(7, 0))
            .raw(EntryType::Fifo, "run/fifo", "", b"")
            .build();
        f.unpack(&tar).expect("unpack");
        let null = meta(&f.dest.join("dev/null"));
        assert!(null.file_type().is_char_device());
        assert_eq!((null.rdev(), null.mode() & 0o7777), (rustix::fs::makedev(1, 3), 0o666));
        let lp = meta(&f.dest.join("dev/loop0"));
        assert!(lp.file_type().is_block_device());
        assert_eq!(lp.rdev(), rustix::fs::makedev(7, 0));
        assert!(meta(&f.dest.join("run/fifo")).file_type().is_fifo());
    }

    fn xattr(p: &Path, key: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0; 256];
        let n = rustix::fs::lgetxattr(p, key, &mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    #[test]
    fn pax_xattrs_long_names_and_mtime() {
        let f = fx();
        let long = format!("{}/file", "d".repeat(150));
        let tar = T::default()
            .pax(&[
                ("path", long.as_bytes()),
                ("mtime", b"1234567890.5"),
                ("SCHILY.xattr.user.foo", b"bar"),
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ])
            .file("short", b"x")
            .build();
        f.unpack(&tar).expect("unpack");
        let p = f.dest.join(&long);
        assert_eq!(xattr(&p, "user.foo").as_deref(), Some(&b"bar"[..]));
        assert_eq!(xattr(&p, "trusted.overlay.opaque"), None);
        assert_eq!((meta(&p).mtime(), meta(&p).mtime_nsec()), (1_234_567_890, 500_000_000));
    }

    #[test]
    fn whiteouts_become_overlay_form() {
        let f = fx();
        let tar = T::default()
            .file("etc/.wh.gone", b"")
            .with(|h| h.set_uid(5))
            .file("etc/kept", b"k")
            .file("etc/.wh.kept", b"")
            .file("var/lib/.wh..wh..opq", b"")
            .file(".wh..wh.plnk", b"")
            .build();
        let stats = f.unpack(&tar).expect("unpack");
        let w = meta(&f.dest.join("etc/gone"));
        assert!(w.file_type().is_char_device());
        assert_eq!((w.rdev(), w.uid(), w.gid()), (0, 0, 0));
        assert_eq!(fs::read(f.dest.join("etc/kept")).expect("test setup"), b"k");
        assert_eq!(
            xattr(&f.dest.join("var/lib"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        for name in ["etc/.wh.gone", "var/lib/.wh..wh..opq", ".wh..wh.plnk", "plnk"] {
            assert!(fs::symlink_metadata(f.dest.join(name)).is_err(), "{name}");
        }
        assert_eq!(stats.inodes, 5);
    }

    #[test]
    fn later_entries_replace_earlier() {
        let f = fx();
        let tar = T::default()
            .file("f", b"old")
            .file("f", b"new")
            .file("d/sub/x", b"x")
            .link(EntryType::Symlink, "d/sub/l", "../../../outside")
            .file("d", b"now a file")
            .link(EntryType::Symlink, "s", "/etc")
            .dir("s")
            .dir("keep")
            .file("keep/a", b"a")
            .dir("keep")
            .with(|h| h.set_mode(0o700))
            .build();
        f.unpack(&tar).expect("unpack");
        assert_eq!(fs::read(f.dest.join("f")).expect("test setup"), b"new");
        assert_eq!(fs::read(f.dest.join("d")).expect("test setup"), b"now a file");
        assert!(meta(&f.dest.join("s")).is_dir());
        assert_eq!(fs::read(f.dest.join("keep/a")).expect("test setup"), b"a");
        assert_eq!(meta(&f.dest.join("keep")).mode() & 0o7777, 0o700);
        f.assert_outside_untouched();
    }

    #[test]
    fn dir_mtime_preserved_after_children() {
        let f = fx();
        let tar = T::default()
            .dir("d")
            .with(|h| h.set_mtime(1_000_000))
            .file("d/a", b"a")
            .file("d/e/b", b"b")
            .build();
        f.unpack(&tar).expect("unpack");
        assert_eq!(meta(&f.dest.join("d")).mtime(), 1_000_000);
    }

    #[test]
    fn gzip_layer() {
        use flate2::{read::GzDecoder, write::GzEncoder, Compression};
        let f = fx();
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&T::default().file("z", b"zipped").build())
            .expect("test setup");
        let gz = enc.finish().expect("test setup");
        unpack_layer(GzDecoder::new(gz.as_slice()), &f.dest, &UnpackLimits::default()).expect("test setup");
        assert_eq!(fs::read(f.dest.join("z")).expect("test setup"), b"zipped");
    }

    fn assert_escape(f: &Fx, tar: Vec<u8>) {
        let err = f.unpack(&tar).expect_err("must fail");
        assert!(err.is_escape(), "expected escape, got {err}");
        f.assert_outside_untouched();
    }

    #[test]
    fn rejects_dotdot_and_absolute_paths() {
        for name in ["../evil", "a/../../evil", "ok/../x", "../outside/sentinel"] {
            let f = fx();
            assert_escape(&f, T::default().file(name, b"pwned").build());
        }
        let f = fx();
        let abs = format!("{}/evil", f.outside.display());
        assert_escape(&f, T::default().file(&abs, b"pwned").build());
        let f = fx();
        assert_escape(&f, T::default().dir("d").file("/abs/path", b"pwned").build());
    }

    #[test]
    fn rejects_write_through_absolute_symlink() {
        let f = fx();
        let through = format!("link/{}/evil", f.outside_from_root());
        let tar = T::default()
            .link(EntryType::Symlink, "link", "/")
            .file(&through, b"pwned")
            .build();
        assert_escape(&f, tar);
        let f = fx();
        let tar = T::default()
            .link(EntryType::Symlink, "evil", f.outside.to_str().expect("test setup"))
            .file("evil/pwned", b"pwned")
            .build();
        assert_escape(&f, tar);
    }

    #[test]
    fn rejects_write_through_climbing_symlink() {
        let f = fx();
        let through = format!("link/{}/x", f.outside_from_root());
        let tar = T::default()
            .link(EntryType::Symlink, "link", "../../..")
            .file(&through, b"pwned")
            .build();
        assert_escape(&f, tar);
        let f = fx();
        let tar = T::default()
            .link(EntryType::Symlink, "a/b", "../../outside")
            .dir("a/b/newdir")
            .build();
        assert_escape(&f, tar);
        // The same trick as a whiteout, an opaque marker and a hard link.
        for last in ["p/.wh.sentinel", "p/.wh..wh..opq"] {
            let f = fx();
            let tar = T::default()
                .link(EntryType::Symlink, "p", "../outside")
                .file(last, b"")
                .build();
            assert_escape(&f, tar);
        }
        let f = fx();
        let tar = T::default()
            .link(EntryType::Symlink, "p", "../outside")
            .link(EntryType::Link, "h", "p/sentinel")
            .build();
        assert_escape(&f, tar);
    }

    #[test]
    fn symlink_inside_dest_is_followed_for_parents() {
        let f = fx();
        let tar = T::default()
            .dir("usr/lib")
            .link(EntryType::Symlink, "lib", "usr/lib")
            .link(EntryType::Symlink, "usr/lib/self", "../lib")
            .file("lib/self/a", b"a")
            .build();
        f.unpack(&tar).expect("unpack");
        assert_eq!(fs::read(f.dest.join("usr/lib/a")).expect("test setup"), b"a");
        f.assert_outside_untouched();
    }

    #[test]
    fn rejects_hostile_hardlinks() {
        for target in ["../../etc/passwd", "/etc/passwd", "a/../../x", "."] {
            let f = fx();
            assert_escape(&f, T::default().link(EntryType::Link, "h", target).build());
        }
    }

    #[test]
    fn rejects_hostile_whiteouts() {
        for name in [".wh..", "d/.wh...", ".wh."] {
            let f = fx();
            assert_escape(&f, T::default().file(name, b"").build());
        }
    }

    #[test]
    fn entry_limit() {
        let f = fx();
        let tar = T::default().file("a", b"").file("b", b"").file("c", b"").build();
        let limits = UnpackLimits {
            max_entries: 2,
            ..Default::default()
        };
        let err = unpack_layer(tar.as_slice(), &f.dest, &limits).expect_err("must fail");
        assert!(matches!(err, UnpackError::Limit(_)), "{err}");
        assert!(!err.is_escape());
        f.assert_outside_untouched();
    }

    #[test]
    fn byte_limit() {
        let f = fx();
        let tar = T::default().file("a", &[0; 600]).file("b", &[0; 600]).build();
        let limits = UnpackLimits {
            max_bytes: 1000,
            ..Default::default()
        };
        let err = unpack_layer(tar.as_slice(), &f.dest, &limits).expect_err("must fail");
        assert!(matches!(err, UnpackError::Limit(_)), "{err}");
        assert!(fs::symlink_metadata(f.dest.join("b")).is_err());
        // Content hidden in extension headers counts against the stream cap.
        let tar = T::default()
            .pax(&[("comment", &vec![b'x'; 64 * 1024])])
            .file("c", b"")
            .build();
        let limits = UnpackLimits {
            max_bytes: 1000,
            max_entries: 1,
        };
        let err = unpack_layer(tar.as_slice(), &fx().dest, &limits);
        assert!(err.is_ok(), "1 MiB slack");
        let tar = T::default()
            .pax(&[("comment", &vec![b'x'; 2 << 20])])
            .file("c", b"")
            .build();
        let err = unpack_layer(tar.as_slice(), &f.dest, &limits).expect_err("must fail");
        assert!(matches!(err, UnpackError::Limit(_)), "{err}");
    }

    #[test]
    fn rejects_sparse_and_truncated() {
        let f = fx();
        let tar = T::default()
            .raw(EntryType::GNUSparse, "s", "", b"")
            .with(|h| h.as_gnu_mut().expect("test setup").set_real_size(0))
            .build();
        let err = f.unpack(&tar).expect_err("must fail");
        assert!(matches!(err, UnpackError::Unsupported { .. }), "{err}");
        let f = fx();
        let tar = T::default().pax(&[("GNU.sparse.major", b"1")]).file("s", b"").build();
        let err = f.unpack(&tar).expect_err("must fail");
        assert!(matches!(err, UnpackError::Unsupported { .. }), "{err}");
        let f = fx();
        let mut tar = T::default().file("a", &[1; 4096]).build();
        tar.truncate(1024);
        assert!(matches!(f.unpack(&tar).expect_err("must fail"), UnpackError::Tar(_)));
    }
}
