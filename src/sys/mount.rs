//! Mounts Berth makes itself: the per-pod /dev/shm tmpfs.

use std::io;
use std::path::Path;

use rustix::mount::{mount, unmount as umount2, MountFlags, UnmountFlags};

/// Mounts a tmpfs of `size` bytes with `mode` at `target` (nosuid, nodev, noexec).
pub fn tmpfs(target: &Path, size: u64, mode: u32) -> io::Result<()> {
    let data = std::ffi::CString::new(format!("mode={mode:o},size={size}")).map_err(io::Error::other)?;
    mount(
        "shm",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(data.as_c_str()),
    )?;
    Ok(())
}

/// Unmounts `target` (lazily); not mounted or missing is not an error.
pub fn unmount(target: &Path) -> io::Result<()> {
    match umount2(target, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => Ok(()),
        Err(e) => Err(e.into()),
    }
}
