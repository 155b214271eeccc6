use std::sync::Arc;

use berth_proto::berth::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Status;

use super::convert;
use crate::cri::BoxStream;
use crate::error::Error;
use crate::image::push::{BlobState, PushEvent, PushFn};
use crate::image::reference::Reference;
use crate::image::{ImageError, Images};

/// `PushImage`: pushes the image named in the request to its registry, streaming each
/// blob's progress (byte counts per uploaded chunk), then the digest the tag points to.
/// Like a pull, the push runs to its end even if the client goes away.
pub async fn push_image(
    images: Arc<Images>,
    req: pb::PushImageRequest,
) -> Result<BoxStream<pb::PushImageEvent>, Error> {
    let image = convert::name("image", &req.image)?.to_string();
    let reference = Reference::parse(&image).map_err(ImageError::from)?;
    let auth = req.auth.as_ref().map(convert::auth);
    let (tx, rx) = mpsc::unbounded_channel::<Result<pb::PushImageEvent, Status>>();
    let events = tx.clone();
    let hook: PushFn = Arc::new(move |e| {
        let _ = events.send(Ok(event(e)));
    });
    tokio::spawn(async move {
        let result = images.push(&image, auth.as_ref(), Some(hook)).await;
        let message = match result {
            Ok(pushed) => Ok(pb::PushImageEvent {
                event: Some(pb::push_image_event::Event::Done(pb::PushedImage {
                    reference: pushed.reference,
                    tag: pushed.tag,
                    digest: pushed.digest.to_string(),
                    size: pushed.size,
                })),
            }),
            Err(e) => {
                let status = Status::from(Error::from(e));
                tracing::warn!(image = %reference, code = ?status.code(), error = status.message(), "push failed");
                Err(status)
            }
        };
        let _ = tx.send(message);
    });
    Ok(Box::pin(UnboundedReceiverStream::new(rx)))
}

fn event(e: PushEvent) -> pb::PushImageEvent {
    let event = match e {
        PushEvent::Blob {
            digest,
            total,
            done,
            state,
            from,
        } => pb::push_image_event::Event::Blob(pb::BlobPushProgress {
            digest,
            total_bytes: total,
            done_bytes: done,
            state: blob_state(state) as i32,
            mounted_from: from.unwrap_or_default(),
        }),
        PushEvent::Notice(text) => pb::push_image_event::Event::Notice(text),
    };
    pb::PushImageEvent { event: Some(event) }
}

fn blob_state(s: BlobState) -> pb::BlobPushState {
    match s {
        BlobState::Waiting => pb::BlobPushState::Waiting,
        BlobState::Pushing => pb::BlobPushState::Pushing,
        BlobState::Pushed => pb::BlobPushState::Pushed,
        BlobState::Exists => pb::BlobPushState::Exists,
        BlobState::Mounted => pb::BlobPushState::Mounted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_on_the_wire() {
        let e = event(PushEvent::Blob {
            digest: "sha256:aa".into(),
            total: 10,
            done: 4,
            state: BlobState::Mounted,
            from: Some("base/img".into()),
        });
        let Some(pb::push_image_event::Event::Blob(b)) = e.event else {
            panic!("a blob event")
        };
        assert_eq!((b.total_bytes, b.done_bytes), (10, 4));
        assert_eq!(b.state, pb::BlobPushState::Mounted as i32);
        assert_eq!(b.mounted_from, "base/img");
        let e = event(PushEvent::Notice("hi".into()));
        assert_eq!(e.event, Some(pb::push_image_event::Event::Notice("hi".into())));
    }
}
