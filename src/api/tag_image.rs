use berth_proto::berth::v1 as pb;

use super::convert;
use crate::cri::instrument;
use crate::error::Result;
use crate::image::Images;

/// `TagImage`: names an existing image; the tag moves off any image that held it.
pub async fn tag_image(images: &Images, req: pb::TagImageRequest) -> Result<pb::TagImageResponse> {
    let source = convert::name("source", &req.source)?;
    let target = convert::name("target", &req.target)?;
    instrument::record_id(source);
    let (record, tag) = images.tag(source, target).await?;
    Ok(pb::TagImageResponse { id: record.id, tag })
}
