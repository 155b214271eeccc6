//! Network namespaces pinned by a bind mount, so they outlive every process in them:
//! a short-lived thread unshares a new network namespace and bind-mounts its
//! `/proc/thread-self/ns/net` onto a file; removing the mount frees the namespace.

#![allow(unsafe_code)]

use std::io;
use std::path::Path;

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::UnshareFlags;

/// Creates a new network namespace pinned at `path` (the file is created).
pub fn create_netns(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    let target = path.to_path_buf();
    let result = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: only CLONE_NEWNET is unshared, and only for this thread, which does
        // nothing but the bind mount below and then exits; no fd table is split.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }?;
        mount_bind("/proc/thread-self/ns/net", &target)?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?;
    if let Err(e) = result {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Unmounts and deletes a pinned namespace. A missing file or mount is not an error.
pub fn remove_netns(path: &Path) -> io::Result<()> {
    match unmount(path, UnmountFlags::DETACH) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether `path` is a pinned network namespace (an nsfs mount).
pub fn is_netns(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(pinned), Ok(parent)) = (
        std::fs::metadata(path),
        std::fs::metadata(path.parent().unwrap_or(Path::new("/"))),
    ) else {
        return false;
    };
    pinned.dev() != parent.dev()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_and_remove() {
        if !rustix::process::geteuid().is_root() {
            panic!("this test needs root (it creates a network namespace)");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ns1");
        create_netns(&path).expect("create");
        assert!(is_netns(&path));
        let own = std::fs::read_link("/proc/self/ns/net").expect("own ns");
        let file = std::fs::File::open(&path).expect("open pinned");
        let ino = std::os::unix::fs::MetadataExt::ino(&file.metadata().expect("stat"));
        assert!(
            !own.to_string_lossy().contains(&ino.to_string()),
            "a new namespace, not ours"
        );
        drop(file);
        assert!(create_netns(&path).is_err(), "an existing pin is not overwritten");
        remove_netns(&path).expect("remove");
        assert!(!path.exists());
        remove_netns(&path).expect("idempotent");
    }
}
