use berth_proto as pb;

use crate::cri::image::list_images;
use crate::daemon::Daemon;
use crate::error::Result;

/// Images per streamed message, so a node with many images never builds one huge message.
const PAGE: usize = 100;

/// `StreamImages`: the same answer as `ListImages`, in pages.
pub async fn stream_images(d: &Daemon, req: pb::StreamImagesRequest) -> Result<Vec<pb::StreamImagesResponse>> {
    let images = list_images::matching(d, req.filter.as_ref());
    Ok(crate::cri::pages(&images, PAGE, |page| pb::StreamImagesResponse {
        images: page,
    }))
}
