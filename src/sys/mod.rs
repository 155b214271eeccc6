//! The only place Berth talks to the kernel's filesystem calls directly: safe wrappers
//! (through rustix, no `unsafe`) over the `*at` syscalls, each relative to a directory fd.

pub mod fs;
