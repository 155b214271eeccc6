//! RuntimeService RPCs, one file each. RPCs of later milestones (sandboxes, containers,
//! streaming, stats) answer `Unimplemented` from the router until they land.

pub mod runtime_config;
pub mod status;
pub mod version;
