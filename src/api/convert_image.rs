use berth_proto::berth::v1 as pb;

use super::convert;
use crate::cri::instrument;
use crate::error::{Error, Result};
use crate::image::Images;

/// `ConvertImage`: the image rewritten with eStargz layers, under a new name.
pub async fn convert_image(images: &Images, req: pb::ConvertImageRequest) -> Result<pb::ConvertImageResponse> {
    let source = convert::name("source", &req.source)?;
    let target = convert::name("target", &req.target)?;
    if !matches!(req.format.as_str(), "" | "estargz") {
        return Err(Error::InvalidArgument(format!(
            "unknown layer format {:?} (known: estargz)",
            req.format
        )));
    }
    instrument::record_id(source);
    let (record, tag) = images.convert_estargz(source, Some(target)).await?;
    Ok(pb::ConvertImageResponse {
        id: record.id,
        tag: tag.unwrap_or_default(),
    })
}
