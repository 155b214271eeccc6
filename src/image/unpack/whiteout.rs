//! OCI whiteouts turned into their overlayfs form.

use std::os::fd::AsFd;

use rustix::fs::OFlags;

use super::path::join;
use super::unpacker::Unpacker;
use super::{escape, io_err, UnpackError};
use crate::sys::fs as fs_sys;

impl Unpacker<'_> {
    /// Turns an OCI whiteout (`dirs/.wh.<rest>`) into its overlayfs form.
    pub(super) fn whiteout(&mut self, dirs: &[&[u8]], rest: &[u8], shown: &str) -> Result<(), UnpackError> {
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
}
