//! Thin, safe wrappers over the `*at` family of Linux filesystem syscalls.
//!
//! Every function here works relative to a directory file descriptor and
//! takes single path components or paths as raw bytes, so callers never hand
//! the kernel a path that could be resolved outside of a directory they
//! control. Nothing in this module follows a symlink in the final path
//! component unless its documentation says so.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

/// What kind of node [`lstat_at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory (never a symlink to one).
    Dir,
    /// Anything else, including symlinks.
    Other,
}

/// Special file kinds that [`mknod_at`] can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKind {
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
}

/// Opens `path` as an `O_PATH` directory handle, to be used as the anchor of
/// later `*at` calls.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `path` (relative to `root`, `.` for `root` itself) with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
///
/// Symlinks inside the path are followed only while they stay beneath
/// `root`; an absolute symlink or one that climbs out with `..` fails with
/// `EXDEV`. A symlink as the final component is followed the same way
/// unless `flags` has `O_NOFOLLOW`. `EAGAIN` (a concurrent rename raced the
/// lookup) is retried.
pub fn open_beneath(root: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match rfs::openat2(root, path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 16 => tries += 1,
            other => return Ok(other?),
        }
    }
}

/// Opens the directory `name` in `dir` for reading (`O_NOFOLLOW`), giving a
/// descriptor that `fchown`/`fchmod`/`fsetxattr`/`futimens` accept.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(dir, name, flags, Mode::empty())?)
}

/// Creates a new regular file `name` in `dir` (`O_CREAT | O_EXCL |
/// O_NOFOLLOW`), open for writing.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    Ok(rfs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
}

/// `symlinkat(target, dir, name)`; `target` is stored verbatim.
pub fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(rfs::symlinkat(target, dir, name)?)
}

/// `linkat(old_dir, old_name, new_dir, new_name, 0)`: a symlink as the old
/// name is linked itself, never followed.
pub fn hardlink_at(
    old_dir: BorrowedFd<'_>,
    old_name: &[u8],
    new_dir: BorrowedFd<'_>,
    new_name: &[u8],
) -> io::Result<()> {
    Ok(rfs::linkat(old_dir, old_name, new_dir, new_name, AtFlags::empty())?)
}

/// `mknodat(dir, name, kind | mode, makedev(major, minor))`.
pub fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    kind: SpecialKind,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let file_type = match kind {
        SpecialKind::Char => FileType::CharacterDevice,
        SpecialKind::Block => FileType::BlockDevice,
        SpecialKind::Fifo => FileType::Fifo,
    };
    let dev = rfs::makedev(major, minor);
    Ok(rfs::mknodat(dir, name, file_type, Mode::from_raw_mode(mode), dev)?)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`, reduced to what kind of node
/// is there; `None` if nothing is.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<NodeKind>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(match FileType::from_raw_mode(st.st_mode as rfs::RawMode) {
            FileType::Directory => NodeKind::Dir,
            _ => NodeKind::Other,
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the non-directory `name` from `dir`.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(rfs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes the directory `name` from `dir` together with everything in it.
///
/// Works only through descriptors (`O_NOFOLLOW` opens, `unlinkat`), so a
/// symlink inside the tree is removed, never followed. Holds one descriptor
/// per level of nesting.
pub fn remove_tree_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let fd = open_dir_at(dir, name)?;
    let mut children = Vec::new();
    {
        let mut entries = Dir::read_from(&fd)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let child = entry.file_name().to_bytes();
            if child != b"." && child != b".." {
                children.push(child.to_vec());
            }
        }
    }
    for child in &children {
        match rfs::unlinkat(&fd, child.as_slice(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) => remove_tree_at(fd.as_fd(), child)?,
            Err(e) => return Err(e.into()),
        }
    }
    drop(fd);
    Ok(rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`; with an empty
/// `name` it changes `dir` itself (`AT_EMPTY_PATH`).
pub fn chown_at(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let mut flags = AtFlags::SYMLINK_NOFOLLOW;
    if name.is_empty() {
        flags |= AtFlags::EMPTY_PATH;
    }
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    Ok(rfs::chownat(dir, name, Some(uid), Some(gid), flags)?)
}

/// `fchmodat(dir, name, mode, 0)`.
///
/// Linux cannot refuse to follow a final symlink here, so call it only on a
/// name the caller has just created as a non-symlink in a directory nobody
/// else writes to.
pub fn chmod_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    Ok(rfs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())?)
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    Ok(rfs::fchown(fd, Some(uid), Some(gid))?)
}

/// `fchmod(fd, mode)`, setuid/setgid/sticky bits included.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rfs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// `fsetxattr(fd, key, value, 0)`.
pub fn fsetxattr(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    Ok(rfs::fsetxattr(fd, key, value, XattrFlags::empty())?)
}

/// `lsetxattr` on `name` inside `dir`, through `/proc/self/fd/<dir>/<name>`:
/// the directory is reached through its descriptor and the final component
/// is not followed. Needs `/proc` mounted.
pub fn lsetxattr_at(dir: BorrowedFd<'_>, name: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    Ok(rfs::lsetxattr(path, key, value, XattrFlags::empty())?)
}

/// `lgetxattr(path, key)`: the value, or `None` when the file has no such attribute (or
/// the filesystem has no attributes). The final component is not followed.
pub fn lgetxattr(path: &Path, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rfs::lgetxattr(path, key, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA) | Err(Errno::NOTSUP) => return Ok(None),
            Err(Errno::RANGE) if buf.len() < 64 * 1024 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e.into()),
        }
    }
}

fn timestamps(sec: i64, nsec: u32) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Sets access and modification time of `fd` to `sec.nsec`.
pub fn futimes(fd: BorrowedFd<'_>, sec: i64, nsec: u32) -> io::Result<()> {
    Ok(rfs::futimens(fd, &timestamps(sec, nsec))?)
}

/// Sets access and modification time of `name` in `dir` to `sec.nsec`
/// without following a final symlink.
pub fn utimes_at(dir: BorrowedFd<'_>, name: &[u8], sec: i64, nsec: u32) -> io::Result<()> {
    Ok(rfs::utimensat(
        dir,
        name,
        &timestamps(sec, nsec),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Size and inodes of the filesystem holding a path (`statvfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsSpace {
    pub bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

pub fn space(path: &Path) -> io::Result<FsSpace> {
    let st = rfs::statvfs(path)?;
    Ok(FsSpace {
        bytes: st.f_blocks.saturating_mul(st.f_frsize),
        inodes: st.f_files,
        inodes_free: st.f_ffree,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_beneath_refuses_escaping_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root_path = tmp.path().join("root");
        std::fs::create_dir_all(root_path.join("d")).expect("mkdir");
        std::os::unix::fs::symlink("/", root_path.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../..", root_path.join("d/up")).expect("symlink");
        std::os::unix::fs::symlink("../d", root_path.join("d/inside")).expect("symlink");
        let root = open_dir_path(&root_path).expect("open root");
        let dir = OFlags::PATH | OFlags::DIRECTORY;
        for path in [&b"abs"[..], b"abs/tmp", b"d/up", b"d/up/root", b".."] {
            let err = open_beneath(root.as_fd(), path, dir).expect_err("escape");
            assert_eq!(err.kind(), io::ErrorKind::CrossesDevices, "{path:?}");
        }
        open_beneath(root.as_fd(), b"d/inside/inside", dir).expect("symlink inside root");
        let err = open_beneath(root.as_fd(), b"d/inside", dir | OFlags::NOFOLLOW).expect_err("nofollow");
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let keep = tmp.path().join("keep");
        std::fs::create_dir(&keep).expect("mkdir");
        std::fs::write(keep.join("f"), b"x").expect("write");
        let tree = tmp.path().join("tree/a/b");
        std::fs::create_dir_all(&tree).expect("mkdir");
        std::fs::write(tree.join("file"), b"x").expect("write");
        std::os::unix::fs::symlink(&keep, tree.join("link")).expect("symlink");
        std::os::unix::fs::symlink(&keep, tmp.path().join("tree/a/link")).expect("symlink");
        let top = open_dir_path(tmp.path()).expect("open");
        remove_tree_at(top.as_fd(), b"tree").expect("remove");
        assert!(!tmp.path().join("tree").exists());
        assert_eq!(std::fs::read(keep.join("f")).expect("kept"), b"x");
        assert_eq!(lstat_at(top.as_fd(), b"keep").expect("stat"), Some(NodeKind::Dir));
        assert_eq!(lstat_at(top.as_fd(), b"tree").expect("stat"), None);
    }
}
