//! RuntimeService RPCs, one file each. RPCs of later milestones (containers, streaming,
//! stats) answer `Unimplemented` from the router until they land.

pub mod list_pod_sandbox;
pub mod pod_sandbox_status;
pub mod remove_pod_sandbox;
pub mod run_pod_sandbox;
pub mod runtime_config;
pub mod status;
pub mod stop_pod_sandbox;
pub mod stream_pod_sandboxes;
pub mod update_pod_sandbox_resources;
pub mod update_runtime_config;
pub mod version;
