use std::io::{self, Write};
use std::sync::Arc;

use berth_proto::berth::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert;
use crate::cri::BoxStream;
use crate::error::{Error, Result};
use crate::image::archive::write_archive;
use crate::image::Images;

/// Bytes per streamed message.
const CHUNK: usize = 1 << 20;

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
    let (tx, rx) = mpsc::channel::<Result<pb::ExportImageChunk, Status>>(4);
    tokio::task::spawn_blocking(move || {
        let out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_archive(plan, out).and_then(|mut w| w.flush());
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::BrokenPipe {
                let _ = tx.blocking_send(Err(Status::from(Error::Internal(format!("writing the archive: {e}")))));
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Sends what is written as messages of [`CHUNK`] bytes; a gone client is a broken pipe.
struct ChunkWriter {
    tx: mpsc::Sender<Result<pb::ExportImageChunk, Status>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(pb::ExportImageChunk { data }))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
