//! A read-only FUSE filesystem server: the kernel's requests read from the `/dev/fuse`
//! channel (`crate::sys::fuse`), decoded, answered from a [`Filesystem`]. Nothing can be
//! written (the mount is read-only and write requests get EROFS); inode numbers are stable
//! for the mount's life, so entries and attributes are cached by the kernel for long and
//! lookups need no counting.

mod proto;
mod reply;

#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// An errno to answer with.
pub type Errno = i32;

/// What `stat` shows of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    /// The type bits (`S_IF*`) and the permission bits.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
}

/// One directory entry as `readdir` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub name: Vec<u8>,
    /// The type bits of its mode (`S_IF*`).
    pub kind: u32,
}

/// A read-only filesystem. Every method may be called from several threads at once.
pub trait Filesystem: Send + Sync {
    fn getattr(&self, ino: u64) -> Result<Attr, Errno>;
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, Errno>;
    fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno>;
    /// Up to `size` bytes of the regular file `ino` from `offset` (fewer only at its end).
    fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno>;
    /// The entries of the directory `ino`, `.` and `..` first.
    fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>, Errno>;
    fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, Errno>;
    /// The xattr names, each NUL-terminated.
    fn listxattr(&self, ino: u64) -> Result<Vec<u8>, Errno>;
}

/// Serves `fs` on the mounted channel `fd` with `threads` threads until the filesystem is
/// unmounted; the threads are returned to be joined.
pub fn serve(fd: OwnedFd, fs: Arc<dyn Filesystem>, threads: usize) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let fd = Arc::new(fd);
    (0..threads.max(1))
        .map(|i| {
            let (fd, fs) = (fd.clone(), fs.clone());
            std::thread::Builder::new().name(format!("fuse-{i}")).spawn(move || {
                if let Err(e) = proto::session(&fd, fs.as_ref()) {
                    tracing::warn!(error = %e, "FUSE session ended with an error");
                }
            })
        })
        .collect()
}
