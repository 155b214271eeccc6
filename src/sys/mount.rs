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

/// Mounts an overlay filesystem at `target`: `lower` top-most first, plus a writable
/// `upper` and its `work` dir.
pub fn overlay(target: &Path, lower: &[std::path::PathBuf], upper: &Path, work: &Path) -> io::Result<()> {
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    for p in lowers
        .iter()
        .chain([upper.display().to_string(), work.display().to_string()].iter())
    {
        if p.contains([',', ':']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("overlay path {p:?} holds ',' or ':'"),
            ));
        }
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    // The kernel reads at most one page of mount options.
    if data.len() >= 4000 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} layers make the overlay mount options too long ({} bytes)",
                lower.len(),
                data.len()
            ),
        ));
    }
    let data = std::ffi::CString::new(data).map_err(io::Error::other)?;
    mount("overlay", target, "overlay", MountFlags::empty(), Some(data.as_c_str()))?;
    Ok(())
}
