use std::time::Duration;

use berth_proto::berth::v1 as pb;

use crate::container::lifecycle::Containers;
use crate::cri::{convert, instrument};
use crate::error::Result;

/// `RestartContainer`: a new attempt of a `berthctl run` container, the old one removed.
pub async fn restart_container(
    containers: &std::sync::Arc<Containers>,
    req: pb::RestartContainerRequest,
) -> Result<pb::RestartContainerResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    let timeout = Duration::from_secs(req.timeout.max(0) as u64);
    let restarted = containers.restart(id, timeout).await?;
    Ok(pb::RestartContainerResponse {
        container_id: restarted.id,
        attempt: restarted.attempt,
    })
}
