use berth_proto as pb;

use crate::cri::runtime::list_pod_sandbox;
use crate::daemon::Daemon;
use crate::error::Result;

const PAGE: usize = 100;

/// `StreamPodSandboxes`: `ListPodSandbox`'s answer in pages.
pub async fn stream_pod_sandboxes(
    d: &Daemon,
    req: pb::StreamPodSandboxesRequest,
) -> Result<Vec<pb::StreamPodSandboxesResponse>> {
    let items = list_pod_sandbox::matching(d, req.filter.as_ref());
    Ok(crate::cri::pages(&items, PAGE, |page| pb::StreamPodSandboxesResponse {
        pod_sandboxes: page,
    }))
}
