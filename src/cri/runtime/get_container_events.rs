use std::sync::Arc;

use berth_proto as pb;
use tokio::sync::broadcast::error::RecvError;

use crate::container::lifecycle::ContainerFilter;
use crate::cri::{convert, BoxStream};
use crate::daemon::Daemon;
use crate::error::Result;
use crate::events::{Event, EventKind};

/// `GetContainerEvents`: a stream of CREATED/STARTED/STOPPED/DELETED events of containers
/// and sandboxes from now on, each with the pod's sandbox status and container statuses
/// (kubelet's evented PLEG). A subscriber that falls far behind loses the oldest events (it
/// relists then, as kubelet does on gaps) and never slows the runtime down.
pub async fn get_container_events(
    d: &Arc<Daemon>,
    _req: pb::GetEventsRequest,
) -> Result<BoxStream<pb::ContainerEventResponse>> {
    let rx = d.events.subscribe();
    let d = Arc::clone(d);
    let stream = futures_util::stream::unfold((rx, d), |(mut rx, d)| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let response = response(&d, event);
                    return Some((Ok(response), (rx, d)));
                }
                Err(RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "a GetContainerEvents subscriber fell behind; events dropped")
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Box::pin(stream))
}

fn event_type(kind: EventKind) -> pb::ContainerEventType {
    match kind {
        EventKind::Created => pb::ContainerEventType::ContainerCreatedEvent,
        EventKind::Started => pb::ContainerEventType::ContainerStartedEvent,
        EventKind::Stopped => pb::ContainerEventType::ContainerStoppedEvent,
        EventKind::Deleted => pb::ContainerEventType::ContainerDeletedEvent,
    }
}

fn response(d: &Daemon, e: Event) -> pb::ContainerEventResponse {
    let containers = e.containers.unwrap_or_else(|| {
        d.containers.records(&ContainerFilter {
            sandbox_id: Some(e.sandbox_id.clone()),
            ..Default::default()
        })
    });
    pb::ContainerEventResponse {
        container_id: e.container_id,
        container_event_type: event_type(e.kind) as i32,
        created_at: e.at,
        pod_sandbox_status: e.sandbox.as_ref().map(convert::sandbox_status),
        containers_statuses: containers.iter().map(convert::container_status).collect(),
    }
}
