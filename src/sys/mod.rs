//! The only place Berth makes raw syscalls and the only module allowed `unsafe` (each use
//! a single call with its SAFETY note): `*at` filesystem calls relative to a directory fd,
//! namespace pinning and entry, and pseudo-terminals.

pub mod fs;
pub mod mount;
pub mod ns;
pub mod pty;
