//! The only place Berth makes raw syscalls and the only module allowed `unsafe` (each use
//! a single call with its SAFETY note): `*at` filesystem calls relative to a directory fd,
//! namespace pinning and entry, user namespaces and idmapped mounts, pseudo-terminals, device
//! numbers, inherited fds (NRI plugins), paths resolved inside a root filesystem, and the
//! `/dev/fuse` channel.

pub mod dev;
pub mod fdpass;
pub mod fs;
pub mod fuse;
pub mod inroot;
pub mod mount;
pub mod ns;
pub mod pty;
pub mod userns;
