use berth_proto as pb;

use crate::cri::convert;
use crate::daemon::Daemon;
use crate::error::Result;

/// `ListPodSandbox`: every sandbox, filtered by id (or id prefix), state and labels.
pub async fn list_pod_sandbox(d: &Daemon, req: pb::ListPodSandboxRequest) -> Result<pb::ListPodSandboxResponse> {
    Ok(pb::ListPodSandboxResponse {
        items: matching(d, req.filter.as_ref()),
    })
}

pub fn matching(d: &Daemon, filter: Option<&pb::PodSandboxFilter>) -> Vec<pb::PodSandbox> {
    let filter = convert::sandbox_filter(filter);
    d.sandboxes.list(&filter).iter().map(convert::sandbox).collect()
}
