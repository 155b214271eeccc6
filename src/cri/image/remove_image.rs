use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `RemoveImage`: by id removes the image; by tag or digest removes that name, and the
/// image too once no tag is left. Blobs and snapshots no image uses are collected. The call
/// is idempotent: removing an image that is not there succeeds.
pub async fn remove_image(d: &Daemon, req: pb::RemoveImageRequest) -> Result<pb::RemoveImageResponse> {
    let name = convert::image_name(req.image.as_ref())?;
    instrument::record_id(name);
    d.images.remove(name).await?;
    Ok(pb::RemoveImageResponse {})
}
