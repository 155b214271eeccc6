use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `UpdatePodSandboxResources`: records the pod-level resources kubelet computed (overhead
/// and resources) on the sandbox. Unknown sandboxes are NotFound.
pub async fn update_pod_sandbox_resources(
    d: &Daemon,
    req: pb::UpdatePodSandboxResourcesRequest,
) -> Result<pb::UpdatePodSandboxResourcesResponse> {
    let id = convert::required_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    instrument::record_id(id);
    let resources = serde_json::json!({
        "overhead": req.overhead.as_ref().map(convert::resources_json),
        "resources": req.resources.as_ref().map(convert::resources_json),
    });
    d.sandboxes.update_resources(id, resources).await?;
    Ok(pb::UpdatePodSandboxResourcesResponse {})
}
