//! RuntimeService RPCs, one file each. RPCs of later milestones (streaming, stats,
//! events, checkpoints) answer `Unimplemented` from the router until they land.

pub mod attach;
pub mod container_status;
pub mod create_container;
pub mod exec;
pub mod exec_sync;
pub mod list_containers;
pub mod list_pod_sandbox;
pub mod pod_sandbox_status;
pub mod port_forward;
pub mod remove_container;
pub mod remove_pod_sandbox;
pub mod reopen_container_log;
pub mod run_pod_sandbox;
pub mod runtime_config;
pub mod start_container;
pub mod status;
pub mod stop_container;
pub mod stop_pod_sandbox;
pub mod stream_containers;
pub mod stream_pod_sandboxes;
pub mod update_container_resources;
pub mod update_pod_sandbox_resources;
pub mod update_runtime_config;
pub mod version;
