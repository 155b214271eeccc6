use std::sync::Arc;

use berth_proto::berth::v1 as pb;

use super::chunks::stream_from_writer;
use super::convert;
use crate::cri::BoxStream;
use crate::error::Result;
use crate::image::archive::write_archive;
use crate::image::Images;

/// `ExportImage`: plans the archive (every image resolved, every blob opened) and then
/// streams the tar as it is written, a chunk at a time.
pub async fn export_image(images: Arc<Images>, req: pb::ExportImageRequest) -> Result<BoxStream<pb::ExportImageChunk>> {
    let format = convert::format(req.format)?;
    let names: Vec<String> = req
        .images
        .iter()
        .map(|n| convert::name("image", n).map(str::to_string))
        .collect::<Result<_>>()?;
    let plan = images.export_plan(&names, format).await?;
    tracing::debug!(images = names.len(), bytes = plan.data_bytes(), "exporting");
    Ok(stream_from_writer(
        "writing the archive",
        |data| pb::ExportImageChunk { data },
        move |out| write_archive(plan, out).map(drop),
    ))
}
