use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `PullImage`: pulls the image with the given credentials and returns its id, the same
/// value `ImageStatus` and `ListImages` report as `id`. Pulling an image already present
/// re-resolves the reference (a tag may have moved) and reuses every layer on disk.
pub async fn pull_image(d: &Daemon, req: pb::PullImageRequest) -> Result<pb::PullImageResponse> {
    let name = convert::image_name(req.image.as_ref())?;
    instrument::record_id(name);
    let auth = req.auth.as_ref().map(convert::auth);
    let record = d.images.pull(name, auth.as_ref()).await?;
    Ok(pb::PullImageResponse { image_ref: record.id })
}
