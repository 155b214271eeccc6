//! Containers: the domain model, the OCI spec Berth generates for them, their root
//! filesystem, and their lifecycle through a per-container shim.

pub mod lifecycle;
pub mod model;
mod mounts;
mod orphans;
pub(crate) mod resources;
pub mod rootfs;
mod security;
pub mod spec;
mod spec_input;
mod user;
pub mod validate;
