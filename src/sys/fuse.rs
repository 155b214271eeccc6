//! FUSE mounts: the `/dev/fuse` channel a filesystem served by Berth answers on, mounted
//! read-only, nosuid and nodev, open to every user with the kernel checking the modes
//! served (`default_permissions`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::MountFlags;

/// Opens `/dev/fuse` and mounts it at `target` as `fuse.berth` with `source` shown as the
/// mount's source; the fd returned is the channel the requests come on.
pub fn mount(target: &Path, source: &str) -> io::Result<OwnedFd> {
    let fd = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    let data = std::ffi::CString::new(format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions",
        fd.as_raw_fd()
    ))
    .map_err(io::Error::other)?;
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
    rustix::mount::mount(source, target, "fuse.berth", flags, Some(data.as_c_str()))?;
    Ok(fd)
}

/// What reading the channel gave.
pub enum Received {
    /// A request of this many bytes is at the start of the buffer.
    Request(usize),
    /// The filesystem was unmounted: the session is over.
    Unmounted,
}

/// Reads the next request; interrupted reads and requests the kernel withdrew are retried.
pub fn receive(fd: impl AsFd, buf: &mut [u8]) -> io::Result<Received> {
    loop {
        match rustix::io::read(fd.as_fd(), &mut *buf) {
            Ok(n) => return Ok(Received::Request(n)),
            Err(Errno::INTR | Errno::AGAIN | Errno::NOENT) => continue,
            Err(Errno::NODEV) => return Ok(Received::Unmounted),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes one reply; it must go in a single write. A reply to a request the kernel
/// withdrew (ENOENT) is dropped.
pub fn reply(fd: impl AsFd, bytes: &[u8]) -> io::Result<()> {
    match rustix::io::write(fd.as_fd(), bytes) {
        Ok(_) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
