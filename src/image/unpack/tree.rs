//! Nodes in the destination tree: parents opened beneath the root, names cleared for
//! new entries, hard links, metadata applied, and directory mtimes set last.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::OFlags;

use super::path::{components, join};
use super::unpacker::{Meta, Unpacker};
use super::{escape, io_err, UnpackError};
use crate::sys::fs as fs_sys;

impl Unpacker<'_> {
    /// Opens the parent directory `dirs` (relative to the root), creating
    /// missing directories (0755, root-owned) on the way.
    pub(super) fn parent(&mut self, dirs: &[&[u8]], shown: &str) -> Result<OwnedFd, UnpackError> {
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
    pub(super) fn clear(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        keep_dir: bool,
        shown: &str,
    ) -> Result<bool, UnpackError> {
        let fail = io_err(shown);
        match fs_sys::lstat_at(parent, name).map_err(io_err(shown))? {
            None => Ok(false),
            Some(fs_sys::NodeKind::Dir) if keep_dir => Ok(true),
            Some(fs_sys::NodeKind::Dir) => fs_sys::remove_tree_at(parent, name).map(|_| false).map_err(fail),
            Some(fs_sys::NodeKind::Other) => fs_sys::unlink_at(parent, name).map(|_| false).map_err(fail),
        }
    }

    pub(super) fn hardlink(
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

    /// chown, chmod (after chown, which clears setuid) and xattrs through a
    /// descriptor of the node itself.
    pub(super) fn apply_fd(&self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        fs_sys::fchown(fd, meta.uid, meta.gid).map_err(io_err(shown))?;
        fs_sys::fchmod(fd, meta.mode).map_err(io_err(shown))?;
        for (key, value) in &meta.xattrs {
            skip_unsupported(fs_sys::fsetxattr(fd, key, value)).map_err(io_err(shown))?;
        }
        Ok(())
    }

    /// The same for symlinks and special files, by name in `parent`, then
    /// the mtime.
    pub(super) fn apply_at(
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
    pub(super) fn finish(&mut self) -> Result<(), UnpackError> {
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
