//! Talking to per-container shims (starting `berth-shim`, calling its API) and running
//! interactive execs through the OCI runtime.

pub mod exec;
pub mod features;
pub mod gvisor;
pub mod handler;
pub mod shim;
