//! Mounts Berth makes itself: the per-pod /dev/shm tmpfs, container root filesystems and
//! read-only views of images (image volumes).

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

/// Mounts a tmpfs volume at `target` with `options` (size=, mode=, ...; nosuid, nodev).
pub fn tmpfs_volume(target: &Path, options: &str) -> io::Result<()> {
    let data = std::ffi::CString::new(options).map_err(io::Error::other)?;
    mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(data.as_c_str()),
    )?;
    Ok(())
}

/// Binds the directory `source` at `target` (recursively), read-only if asked.
pub fn bind(source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
    rustix::mount::mount_bind_recursive(source, target)?;
    if readonly {
        let flags = MountFlags::BIND | MountFlags::RDONLY;
        if let Err(e) = rustix::mount::mount_remount(target, flags, "") {
            let _ = unmount(target);
            return Err(e.into());
        }
    }
    Ok(())
}

/// Whether something is mounted at `path` (compared with `/proc/self/mountinfo`).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
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
    let data = overlay_options(lower, Some((upper, work)))?;
    mount("overlay", target, "overlay", MountFlags::empty(), Some(data.as_c_str()))?;
    Ok(())
}

/// Mounts a read-only view of `lower` (top-most first) at `target`: a read-only bind mount
/// of a single layer (overlayfs wants two lower layers without an upper one), else a
/// read-only overlay of the layers.
pub fn read_only_layers(target: &Path, lower: &[std::path::PathBuf]) -> io::Result<()> {
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
    match lower {
        [] => Err(io::Error::new(io::ErrorKind::InvalidInput, "image has no layers")),
        [only] => {
            rustix::mount::mount_bind(only, target)?;
            if let Err(e) = rustix::mount::mount_remount(target, flags | MountFlags::BIND, "") {
                let _ = unmount(target);
                return Err(e.into());
            }
            Ok(())
        }
        _ => {
            let data = overlay_options(lower, None)?;
            mount("overlay", target, "overlay", flags, Some(data.as_c_str()))?;
            Ok(())
        }
    }
}

/// Overlay mount options: the lower layers, and the upper and work dirs when writable.
fn overlay_options(lower: &[std::path::PathBuf], upper_work: Option<(&Path, &Path)>) -> io::Result<std::ffi::CString> {
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let upper_work = upper_work.map(|(u, w)| (u.display().to_string(), w.display().to_string()));
    for p in lowers.iter().chain(upper_work.iter().flat_map(|(u, w)| [u, w])) {
        if p.contains([',', ':']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("overlay path {p:?} holds ',' or ':'"),
            ));
        }
    }
    let mut data = format!("lowerdir={}", lowers.join(":"));
    if let Some((upper, work)) = &upper_work {
        data.push_str(&format!(",upperdir={upper},workdir={work}"));
    }
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
    std::ffi::CString::new(data).map_err(io::Error::other)
}
