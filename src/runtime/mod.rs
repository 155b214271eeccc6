//! Talking to per-container shims (starting `berth-shim`, calling its API), running
//! interactive execs through the OCI runtime, and the Events service of shim v2 handlers.

pub mod events;
pub mod exec;
pub mod features;
pub mod gvisor;
pub mod handler;
pub mod shim;
