use std::collections::HashMap;

use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;

/// `ImageStatus`: the image named by id, tag or digest. A missing image is not an error:
/// the response's `image` is unset. With `verbose`, `info["info"]` holds the image config
/// the layers' chain ids and what the signature policy decided at the pull, as JSON.
pub async fn image_status(d: &Daemon, req: pb::ImageStatusRequest) -> Result<pb::ImageStatusResponse> {
    let name = convert::image_name(req.image.as_ref())?;
    instrument::record_id(name);
    let Some(record) = d.images.resolve(name) else {
        return Ok(pb::ImageStatusResponse::default());
    };
    let mut info = HashMap::new();
    if req.verbose {
        let verbose = serde_json::json!({
            "id": record.id,
            "manifest": record.manifest,
            "target": record.target,
            "chainIDs": record.chain_ids,
            "imageSpec": d.images.config_json(&record),
            "signaturePolicy": record.trust,
        });
        info.insert("info".to_string(), verbose.to_string());
    }
    Ok(pb::ImageStatusResponse {
        image: Some(convert::image(&record)),
        info,
    })
}
