use berth_proto as pb;

use crate::cri::convert;
use crate::daemon::Daemon;
use crate::error::Result;

/// `ListImages`: every image, or with a filter the one image its spec names (by id, tag
/// or digest).
pub async fn list_images(d: &Daemon, req: pb::ListImagesRequest) -> Result<pb::ListImagesResponse> {
    Ok(pb::ListImagesResponse {
        images: matching(d, req.filter.as_ref()),
    })
}

pub fn matching(d: &Daemon, filter: Option<&pb::ImageFilter>) -> Vec<pb::Image> {
    match filter
        .and_then(|f| f.image.as_ref())
        .map(|s| s.image.trim())
        .filter(|s| !s.is_empty())
    {
        Some(name) => d.images.resolve(name).iter().map(convert::image).collect(),
        None => d.images.list().iter().map(convert::image).collect(),
    }
}
