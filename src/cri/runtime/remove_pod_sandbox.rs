use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `RemovePodSandbox`: removes the pod's containers (killing running ones), stops the
/// sandbox if needed and removes all its state: network
/// (CNI DEL again), netns, files, /dev/shm, cgroup and record. Idempotent: removing a
/// sandbox that is gone is not an error.
pub async fn remove_pod_sandbox(d: &Daemon, req: pb::RemovePodSandboxRequest) -> Result<pb::RemovePodSandboxResponse> {
    let id = convert::required_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    instrument::record_id(id);
    d.pods().remove(id).await?;
    Ok(pb::RemovePodSandboxResponse {})
}
