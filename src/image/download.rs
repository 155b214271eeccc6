//! Downloading one layer blob into the streamed ingest. A connection that drops part-way
//! is resumed from the bytes already received (an HTTP Range request; a registry that
//! ignores the range has the received prefix skipped), so a big layer is not fetched from
//! the start again. A registry that stops sending for the registry timeout ends the pull
//! with `LayerError::Stalled` (DeadlineExceeded).

use super::layer::{ChunkSender, LayerError};
use super::progress::{LayerState, Reporter};
use super::reference::{Digest, Reference};
use super::registry::PullAuth;
use super::service::Images;

/// Resumes allowed per layer; each must come after some progress.
const MAX_RESUMES: usize = 5;

/// What is being downloaded and where its bytes go.
pub(super) struct LayerDownload<'a> {
    pub reference: &'a Reference,
    pub auth: &'a PullAuth,
    pub digest: &'a Digest,
    /// The size the manifest gives the blob.
    pub size: u64,
    pub progress: &'a Reporter,
}

/// How a download ended when it did not end with every byte sent.
pub(super) enum Ended {
    /// The unpacker stopped taking bytes: its own error is the one to report.
    UnpackerStopped,
    Failed(LayerError),
}

impl Images {
    /// Streams the blob into `sender`: Ok once all `size` bytes were sent.
    pub(super) async fn download_layer(
        &self,
        d: &LayerDownload<'_>,
        mut response: reqwest::Response,
        sender: &ChunkSender,
    ) -> Result<(), Ended> {
        let digest = d.digest.to_string();
        let stream_error = |message: String| {
            Ended::Failed(LayerError::Stream {
                digest: digest.clone(),
                message,
            })
        };
        let key = d.digest.as_str();
        d.progress.report(key, d.size, 0, LayerState::Downloading);
        let mut received: u64 = 0;
        // Bytes to drop from the start of the current response (a resume the registry
        // answered from the beginning).
        let mut skip: u64 = 0;
        let mut resumes = 0;
        let mut progress_at_last_resume = 0;
        loop {
            let url = response.url().to_string();
            let mut short = false;
            let failure = match response.chunk().await {
                Ok(Some(mut chunk)) => {
                    if skip > 0 {
                        let n = skip.min(chunk.len() as u64);
                        skip -= n;
                        chunk = chunk.slice(n as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    received += chunk.len() as u64;
                    crate::metrics::global().pulled_bytes(chunk.len() as u64);
                    if received > d.size {
                        return Err(stream_error(format!(
                            "registry sent more than the {} bytes the manifest declares",
                            d.size
                        )));
                    }
                    d.progress.report(key, d.size, received, LayerState::Downloading);
                    if !sender.send(chunk).await {
                        return Err(Ended::UnpackerStopped);
                    }
                    continue;
                }
                Ok(None) if received >= d.size => return Ok(()),
                Ok(None) => {
                    short = true;
                    format!("{url}: the body ended after {received} of {} bytes", d.size)
                }
                Err(e) if e.is_timeout() => {
                    return Err(Ended::Failed(LayerError::Stalled {
                        digest: digest.clone(),
                        received,
                        size: d.size,
                    }))
                }
                Err(e) => format!("{url}: {}", super::registry::error_chain(&e)),
            };
            if resumes >= MAX_RESUMES || (resumes > 0 && received == progress_at_last_resume) {
                // A body that keeps ending short is a blob shorter than its descriptor:
                // the ingest's size check reports that (DataLoss), not the transport.
                return if short { Ok(()) } else { Err(stream_error(failure)) };
            }
            resumes += 1;
            progress_at_last_resume = received;
            tracing::info!(layer = %digest, received, size = d.size, error = %failure, "connection dropped; resuming the download");
            let fetched = self
                .registry
                .get_range(d.reference, d.auth, &format!("blobs/{}", d.digest), received)
                .await
                .map_err(|e| stream_error(format!("{failure}; resuming: {e}")))?;
            response = fetched.response;
            skip = resumed_skip(&response, received).map_err(stream_error)?;
        }
    }
}

/// How many bytes of a resumed response to drop: none when the registry honoured the range
/// (206 from `received`), `received` when it sent the whole blob again (200).
fn resumed_skip(response: &reqwest::Response, received: u64) -> Result<u64, String> {
    if response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        return Ok(received);
    }
    let range = response
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match super::registry::ContentRange::parse(range) {
        Some(r) if r.start == received => Ok(0),
        _ => Err(format!(
            "asked to resume at byte {received}, the registry answered Content-Range {range:?}"
        )),
    }
}
