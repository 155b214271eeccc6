use berth_proto as pb;

use crate::cri::stats;
use crate::daemon::Daemon;
use crate::error::Result;

/// `ListMetricDescriptors`: the cAdvisor-named metrics `ListPodSandboxMetrics` returns, with
/// their label keys (container, id, image, name, namespace, pod, then one of interface,
/// device or failure_type).
pub async fn list_metric_descriptors(
    _d: &Daemon,
    _req: pb::ListMetricDescriptorsRequest,
) -> Result<pb::ListMetricDescriptorsResponse> {
    Ok(pb::ListMetricDescriptorsResponse {
        descriptors: stats::descriptors(),
    })
}
