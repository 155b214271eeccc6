use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_proto::berth::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Status;

use super::convert::{self, Throttle};
use crate::cri::BoxStream;
use crate::error::Error;
use crate::image::progress::ProgressFn;
use crate::image::reference::{Digest, Reference};
use crate::image::{ImageError, Images};

/// How often a layer's byte count goes out while it downloads.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// `PullImage`: pulls like the CRI call (same checks, same records) and streams each
/// layer's progress, then the pulled image. The pull runs to its end even if the client
/// goes away, as a CRI pull would.
pub async fn pull_image(
    images: Arc<Images>,
    req: pb::PullImageRequest,
) -> Result<BoxStream<pb::PullImageEvent>, Error> {
    let image = convert::name("image", &req.image)?.to_string();
    let reference = Reference::parse(&image).map_err(ImageError::from)?;
    let auth = req.auth.as_ref().map(convert::auth);
    let (tx, rx) = mpsc::unbounded_channel::<Result<pb::PullImageEvent, Status>>();
    let throttle = Throttle::new(PROGRESS_INTERVAL);
    let events = tx.clone();
    let hook: ProgressFn = Arc::new(move |p| {
        if throttle.admit(&p, Instant::now()) {
            let _ = events.send(Ok(convert::progress(&p)));
        }
    });
    tokio::spawn(async move {
        let result = images.pull_with_progress(&image, auth.as_ref(), Some(hook)).await;
        let message = match result {
            Ok(record) => {
                let repo_digest = Digest::parse(&record.target)
                    .map(|d| reference.with_digest(&d))
                    .unwrap_or_default();
                Ok(pb::PullImageEvent {
                    event: Some(pb::pull_image_event::Event::Done(pb::PulledImage {
                        id: record.id.clone(),
                        reference: reference.to_string(),
                        repo_digest,
                        size: record.size,
                        layers: record.layers.len() as u32,
                    })),
                })
            }
            Err(e) => {
                let status = Status::from(Error::from(e));
                tracing::warn!(image = %reference, code = ?status.code(), error = status.message(), "pull failed");
                Err(status)
            }
        };
        let _ = tx.send(message);
    });
    Ok(Box::pin(UnboundedReceiverStream::new(rx)))
}
