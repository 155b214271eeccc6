//! `berth-shim` as a library: the wire types of the shim API ([`api`]) and a small async
//! client ([`client`]) for berthd. The shim process itself lives in the binary.

pub mod api;
pub mod b64;
pub mod client;
