use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `StopPodSandbox`: kills the pod's running containers, tears the pod network down (CNI
/// DEL) and ends the infra process. Idempotent: a stopped or unknown sandbox is not an error.
pub async fn stop_pod_sandbox(d: &Daemon, req: pb::StopPodSandboxRequest) -> Result<pb::StopPodSandboxResponse> {
    let id = convert::required_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    instrument::record_id(id);
    d.pods().stop(id).await?;
    Ok(pb::StopPodSandboxResponse {})
}
