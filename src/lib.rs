//! Berth: a Kubernetes CRI container runtime.
//!
//! `berthd` (src/main.rs) serves the CRI over a unix socket; this library holds the daemon.
//! Wire types stay in `cri/`; everything else works on domain types.

#![deny(unsafe_code)]

pub mod api;
pub mod build;
pub mod cdi;
pub mod cgroup;
pub mod clock;
pub mod config;
pub mod container;
pub mod cri;
pub mod daemon;
pub mod digest;
pub mod error;
pub mod events;
pub mod fuse;
pub mod image;
pub mod locks;
pub mod metrics;
pub mod network;
pub mod nri;
pub mod pod;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod stream;
pub mod sys;
pub mod volume;
