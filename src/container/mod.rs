//! Containers: the domain model, the OCI spec Berth generates for them, their root
//! filesystem, and their lifecycle through a per-container shim.

pub mod model;
pub mod rootfs;
