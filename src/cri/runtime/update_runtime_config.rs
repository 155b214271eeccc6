use berth_proto as pb;

use crate::daemon::Daemon;
use crate::error::Result;

/// `UpdateRuntimeConfig`: the node's pod CIDR, substituted into a CNI config that asks for
/// it (`{{pod_cidr}}`). An empty CIDR changes nothing.
pub async fn update_runtime_config(
    d: &Daemon,
    req: pb::UpdateRuntimeConfigRequest,
) -> Result<pb::UpdateRuntimeConfigResponse> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    if !cidr.trim().is_empty() {
        d.sandboxes.network().update_pod_cidr(cidr.trim());
    }
    Ok(pb::UpdateRuntimeConfigResponse {})
}
