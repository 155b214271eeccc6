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

/// Connects to `port` on the loopback (127.0.0.1, then ::1) of the network namespace
/// pinned at `netns`. A fresh thread enters the namespace, makes the connection and exits:
/// the socket stays in the namespace it was made in, no pooled thread is ever moved.
pub async fn connect_loopback_in(
    netns: &Path,
    port: u16,
    timeout: std::time::Duration,
) -> io::Result<std::net::TcpStream> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(netns)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-connect".into())
        .spawn(move || {
            let result =
                rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
                    .map_err(io::Error::from)
                    .and_then(|()| {
                        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                        TcpStream::connect_timeout(&v4, timeout).or_else(|e| {
                            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                            TcpStream::connect_timeout(&v6, timeout).map_err(|_| e)
                        })
                    });
            let _ = tx.send(result);
        })?;
    rx.await
        .map_err(|_| io::Error::other("netns connect thread ended without an answer"))?
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

    #[tokio::test]
    async fn connects_inside_the_namespace_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ns2");
        create_netns(&path).expect("create");
        // A listener on the host's loopback is not reachable from the new namespace (whose
        // loopback is even down).
        let host = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = host.local_addr().expect("addr").port();
        let r = connect_loopback_in(&path, port, std::time::Duration::from_secs(1)).await;
        assert!(r.is_err(), "reached the host from inside a pod namespace");
        remove_netns(&path).expect("remove");
        assert!(connect_loopback_in(&path, port, std::time::Duration::from_secs(1))
            .await
            .is_err());
    }
}
