//! Talking to per-container shims: starting `berth-shim` and calling its API.

pub mod shim;
