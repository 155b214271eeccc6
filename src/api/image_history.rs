use berth_proto::berth::v1 as pb;

use super::convert;
use crate::cri::instrument;
use crate::error::Result;
use crate::image::Images;

/// `ImageHistory`: the config's history, oldest first, each step with its layer.
pub async fn image_history(images: &Images, req: pb::ImageHistoryRequest) -> Result<pb::ImageHistoryResponse> {
    let name = convert::name("image", &req.image)?;
    instrument::record_id(name);
    let (record, entries) = images.history(name)?;
    Ok(pb::ImageHistoryResponse {
        id: record.id,
        entries: entries
            .into_iter()
            .map(|e| pb::HistoryEntry {
                created: e.created,
                created_by: e.created_by,
                size: e.size,
                empty_layer: e.empty_layer,
                comment: e.comment,
                layer_digest: e.layer.unwrap_or_default(),
                author: e.author,
            })
            .collect(),
    })
}
