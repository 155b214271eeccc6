use berth_proto::berth::v1 as pb;
use tokio::sync::mpsc;
use tonic::Streaming;

use super::chunks::ChunkReader;
use crate::container::files;
use crate::container::lifecycle::Containers;
use crate::cri::{convert, instrument};
use crate::error::{Error, Result};

/// `CopyToContainer`: extracts the streamed tar archive into a directory of the container
/// as it arrives; nothing is created outside that directory.
pub async fn copy_to_container(
    containers: &Containers,
    mut stream: Streaming<pb::CopyToContainerChunk>,
) -> Result<pb::CopyToContainerResponse> {
    let first = stream
        .message()
        .await
        .map_err(|s| Error::InvalidArgument(format!("copy stream: {}", s.message())))?
        .ok_or_else(|| Error::InvalidArgument("the copy stream is empty".into()))?;
    let id = convert::required_id(&first.container_id, "container_id")?.to_string();
    instrument::record_id(&id);
    let view = containers.fs_view(&id).await?;
    let dir = view
        .locate(&first.dir, true)
        .map_err(|e| Error::InvalidArgument(format!("dir {:?}: {e}", first.dir)))?
        .ok_or_else(|| Error::NotFound(format!("{} does not exist in container {id}", first.dir)))?;
    let (tx, rx) = mpsc::channel(4);
    let extracting = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            rx,
            buf: first.data,
            pos: 0,
        };
        files::extract(&dir, reader)
    });
    while let Some(chunk) = stream.message().await.transpose() {
        let chunk = chunk
            .map(|c| c.data)
            .map_err(|s| std::io::Error::other(s.message().to_string()));
        if tx.send(chunk).await.is_err() {
            break;
        }
    }
    drop(tx);
    let stats = extracting
        .await
        .map_err(|e| Error::Internal(format!("extracting: {e}")))??;
    Ok(pb::CopyToContainerResponse {
        bytes: stats.bytes,
        entries: stats.inodes,
    })
}
