use berth_proto::berth::v1 as pb;
use tokio::io::AsyncWriteExt as _;
use tonic::Streaming;

use crate::error::{Error, Result};
use crate::image::Images;

/// `ImportImage`: spools the streamed tar to a temporary file under berthd's root (never
/// memory), then imports it with every blob, diff id and path checked. The spool file is
/// removed whatever happens; a failed import leaves no blob or snapshot behind.
pub async fn import_image(
    images: &Images,
    mut stream: Streaming<pb::ImportImageChunk>,
) -> Result<pb::ImportImageResponse> {
    let spool = images.spool_file()?;
    let file = spool
        .as_file()
        .try_clone()
        .map_err(|e| Error::Internal(format!("spool file: {e}")))?;
    let mut out = tokio::fs::File::from_std(file);
    let mut received: u64 = 0;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| Error::InvalidArgument(format!("archive stream: {}", s.message())))?
    {
        received += chunk.data.len() as u64;
        out.write_all(&chunk.data)
            .await
            .map_err(|e| Error::Internal(format!("spooling the archive: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| Error::Internal(format!("spooling the archive: {e}")))?;
    drop(out);
    if received == 0 {
        return Err(Error::InvalidArgument("the archive is empty".into()));
    }
    tracing::debug!(bytes = received, "archive received");
    let records = images.import_archive(spool.path()).await?;
    Ok(pb::ImportImageResponse {
        images: records
            .into_iter()
            .map(|r| pb::ImportedImage {
                id: r.id,
                repo_tags: r.repo_tags,
            })
            .collect(),
    })
}
