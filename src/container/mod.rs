//! Containers: the domain model, the OCI spec Berth generates for them, their root
//! filesystem, and their lifecycle, carried out by a driver (a per-container shim).

pub mod commit;
mod copy_up;
mod create;
pub mod driver;
pub mod error;
pub mod files;
pub mod hooks;
mod image_volume;
pub mod lifecycle;
pub mod model;
mod mounts;
mod ops;
mod orphans;
pub mod policy;
pub(crate) mod resources;
pub mod restart;
pub mod rootfs;
mod security;
pub mod shim_driver;
pub mod spec;
mod spec_input;
mod supervise;
pub(crate) mod user;
mod userns;
pub mod validate;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod testing;
