//! The only place Berth makes raw syscalls and the only module allowed `unsafe` (each use
//! a single call with its SAFETY note): `*at` filesystem calls relative to a directory fd,
//! and namespace pinning.

pub mod fs;
pub mod mount;
pub mod ns;
