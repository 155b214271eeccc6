//! One layer, streamed: the registry's bytes are hashed and written to the content store
//! and, in the same pass, decompressed, hashed again (the diff id) and unpacked into a new
//! snapshot. Nothing is held in memory beyond a few chunks; nothing becomes visible until
//! both digests match.

use std::io::{self, Read, Write};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::content::{ContentStore, Writer};
use super::manifest::Compression;
use super::reference::Digest;
use super::unpack::{unpack_layer, UnpackError, UnpackLimits, UnpackStats};
use crate::snapshot::{Prepared, Snapshotter, Usage};

/// What can go wrong with a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {digest}: {source}")]
    Unpack { digest: String, source: UnpackError },
    #[error("layer {digest}: uncompressed content hashes to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("layer {digest}: {message}")]
    Stream { digest: String, message: String },
    #[error("layer {digest}: the registry stopped sending after {received} of {size} bytes (registry_timeout_secs)")]
    Stalled { digest: String, received: u64, size: u64 },
    #[error(transparent)]
    Content(#[from] super::content::ContentError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}

/// The layer being ingested.
pub struct LayerJob {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    pub diff_id: Digest,
    pub chain_id: Digest,
    pub limits: UnpackLimits,
}

/// Feeds chunks from the async side to the blocking unpacker.
pub struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
}

impl ChunkSender {
    /// Returns false when the unpacker has stopped (it failed): stop sending then.
    pub async fn send(&self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }
}

/// Starts the blocking half of a streamed layer ingest and returns the sender for the
/// compressed bytes plus the handle that yields the result once the sender is dropped.
pub fn start_streamed(
    job: LayerJob,
    content: ContentStore,
    snapshots: std::sync::Arc<dyn Snapshotter>,
) -> Result<(ChunkSender, tokio::task::JoinHandle<Result<Usage, LayerError>>), LayerError> {
    let writer = content.writer(job.digest.clone(), Some(job.size))?;
    let prepared = snapshots.prepare()?;
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    let handle = tokio::task::spawn_blocking(move || {
        let source = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        ingest(job, TeeReader { inner: source, writer }, prepared)
    });
    Ok((ChunkSender { tx }, handle))
}

/// Ingests a layer read from `reader` (blocking): its bytes are stored under `job.digest`
/// and unpacked in one pass, with the same digest and diff id checks as a pull's.
pub fn ingest_reader<R: Read>(
    job: LayerJob,
    reader: R,
    content: &ContentStore,
    snapshots: &dyn Snapshotter,
) -> Result<Usage, LayerError> {
    let writer = content.writer(job.digest.clone(), Some(job.size))?;
    let prepared = snapshots.prepare()?;
    ingest(job, TeeReader { inner: reader, writer }, prepared)
}

/// Unpacks a layer whose blob is already in the content store.
pub fn unpack_stored(job: LayerJob, content: &ContentStore, snapshots: &dyn Snapshotter) -> Result<Usage, LayerError> {
    let path = content.path(&job.digest);
    let file = std::fs::File::open(&path).map_err(|e| LayerError::Stream {
        digest: job.digest.to_string(),
        message: format!("{}: {e}", path.display()),
    })?;
    let prepared = snapshots.prepare()?;
    ingest(job, NoTee(file), prepared)
}

/// A reader over the compressed stream that can be told to finish (drain and commit).
trait Source: Read {
    fn finish(self) -> Result<(), LayerError>;

    /// After the unpacker refused the stream: whether the blob's bytes were corrupt rather
    /// than the layer malformed, i.e. a digest mismatch of the whole blob, when at most
    /// [`BLAME_DRAIN_MAX`] bytes are left to read. Nothing is published.
    fn corrupt(self) -> Option<LayerError>;
}

/// The most bytes read past a refused stream to tell corrupt bytes from a malformed layer.
const BLAME_DRAIN_MAX: u64 = 64 << 20;

struct NoTee(std::fs::File);

impl Read for NoTee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Source for NoTee {
    fn finish(self) -> Result<(), LayerError> {
        Ok(())
    }

    /// A stored blob was verified when it was stored.
    fn corrupt(self) -> Option<LayerError> {
        None
    }
}

struct TeeReader<R> {
    inner: R,
    writer: Writer,
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl<R: Read> Source for TeeReader<R> {
    /// Reads what the decompressor left (trailers, padding) so the whole blob is hashed,
    /// then verifies and publishes the blob.
    fn finish(mut self) -> Result<(), LayerError> {
        let mut sink = [0u8; 64 << 10];
        loop {
            match self.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(LayerError::Stream {
                        digest: String::new(),
                        message: e.to_string(),
                    })
                }
            }
        }
        self.writer.commit()?;
        Ok(())
    }

    fn corrupt(mut self) -> Option<LayerError> {
        let size = self.writer.expected_size()?;
        let left = size.saturating_sub(self.writer.written());
        if left > BLAME_DRAIN_MAX {
            return None;
        }
        io::copy(&mut (&mut self).take(left + 1), &mut io::sink()).ok()?;
        if self.writer.written() != size {
            return None;
        }
        self.writer.matches_digest().err().map(LayerError::Content)
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// A zstd frame asking for a window over 128 MiB is refused (decompression bomb).
pub(super) const MAX_ZSTD_WINDOW_LOG: u32 = 27;

/// Hashes what passes through (the uncompressed tar, for the diff id).
struct HashReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn ingest<S: Source>(job: LayerJob, source: S, prepared: Box<dyn Prepared>) -> Result<Usage, LayerError> {
    let digest = job.digest.to_string();
    let stream_err = |e: io::Error| LayerError::Stream {
        digest: digest.clone(),
        message: e.to_string(),
    };
    let dir = prepared.dir();
    let (stats, actual_diff, source) = match job.compression {
        Compression::Gzip => {
            let mut dec = flate2::read::MultiGzDecoder::new(source);
            match unpack_hashed(&mut dec, &dir, &job.limits, &digest) {
                Ok((stats, diff)) => (stats, diff, dec.into_inner()),
                Err(e) => return Err(blame(e, dec.into_inner())),
            }
        }
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::new(source).map_err(stream_err)?;
            dec.window_log_max(MAX_ZSTD_WINDOW_LOG).map_err(stream_err)?;
            match unpack_hashed(&mut dec, &dir, &job.limits, &digest) {
                Ok((stats, diff)) => (stats, diff, dec.finish().into_inner()),
                Err(e) => return Err(blame(e, dec.finish().into_inner())),
            }
        }
        Compression::None => {
            let mut plain = source;
            match unpack_hashed(&mut plain, &dir, &job.limits, &digest) {
                Ok((stats, diff)) => (stats, diff, plain),
                Err(e) => return Err(blame(e, plain)),
            }
        }
    };
    source.finish().map_err(|e| match e {
        LayerError::Stream { message, .. } => LayerError::Stream {
            digest: digest.clone(),
            message,
        },
        other => other,
    })?;
    if actual_diff != job.diff_id {
        return Err(LayerError::DiffIdMismatch {
            digest,
            expected: job.diff_id.to_string(),
            actual: actual_diff.to_string(),
        });
    }
    let usage = Usage {
        bytes: stats.bytes,
        inodes: stats.inodes,
    };
    prepared.commit(&job.chain_id, usage)?;
    Ok(usage)
}

/// The unpacker's error, or the digest mismatch that caused it: a flipped byte in transit
/// makes a gzip or tar error first, and the registry's fault is the truer answer.
fn blame<S: Source>(unpack: LayerError, source: S) -> LayerError {
    source.corrupt().unwrap_or(unpack)
}

/// Unpacks from `reader` and returns the stats plus the digest of every byte the
/// decompressor produced, including what follows the tar's end-of-archive blocks.
fn unpack_hashed<R: Read>(
    reader: &mut R,
    dir: &std::path::Path,
    limits: &UnpackLimits,
    digest: &str,
) -> Result<(UnpackStats, Digest), LayerError> {
    let mut hashed = HashReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let stats = unpack_layer(&mut hashed, dir, limits).map_err(|source| LayerError::Unpack {
        digest: digest.to_string(),
        source,
    })?;
    // What follows the end-of-archive blocks (padding, normally a few KiB) is hashed too,
    // and counts against the same byte limit: a few compressed bytes can inflate to GiBs.
    let allowed = limits.max_bytes.saturating_sub(stats.bytes);
    let trailing = io::copy(&mut (&mut hashed).take(allowed.saturating_add(1)), &mut io::sink()).map_err(|e| {
        LayerError::Stream {
            digest: digest.to_string(),
            message: e.to_string(),
        }
    })?;
    if trailing > allowed {
        return Err(LayerError::Unpack {
            digest: digest.to_string(),
            source: UnpackError::Limit(format!(
                "more than {allowed} bytes follow the end of the tar archive (layer limit {} bytes)",
                limits.max_bytes
            )),
        });
    }
    Ok((stats, Digest::from_sha256(hashed.hasher.finalize().into())))
}

#[cfg(test)]
mod tests {
    use super::super::content::ContentError;
    use super::*;
    use crate::snapshot::overlay::OverlaySnapshotter;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut enc, data).expect("gzip");
        enc.finish().expect("gzip")
    }

    fn job(blob: &[u8], diff_id: Digest) -> LayerJob {
        LayerJob {
            digest: Digest::of(blob),
            size: blob.len() as u64,
            compression: Compression::Gzip,
            chain_id: diff_id.clone(),
            diff_id,
            limits: UnpackLimits::default(),
        }
    }

    fn ingest_bytes(job: LayerJob, bytes: &[u8]) -> (LayerError, ContentStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let content = ContentStore::open(&dir.path().join("content")).expect("content store");
        let snaps = OverlaySnapshotter::open(&dir.path().join("snapshots")).expect("snapshots");
        let err = ingest_reader(job, bytes, &content, &snaps).expect_err("refused");
        assert!(content.list().expect("list").is_empty(), "nothing published");
        (err, content)
    }

    #[test]
    fn corrupt_bytes_are_blamed_on_the_digest_and_a_malformed_layer_on_itself() {
        let mut tar = tar::Builder::new(Vec::new());
        let data = vec![7u8; 300_000];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "f", &data[..]).expect("tar");
        let tar = tar.into_inner().expect("tar");
        let blob = gzip(&tar);

        // A byte flipped in transit: the gzip stream breaks first, the digest is the cause.
        let mut bad = blob.clone();
        let mid = bad.len() / 3;
        bad[mid] ^= 0xff;
        let (err, _) = ingest_bytes(job(&blob, Digest::of(&tar)), &bad);
        assert!(
            matches!(err, LayerError::Content(ContentError::DigestMismatch { .. })),
            "{err}"
        );

        // Honest bytes of a layer that is no tar: the layer's own fault.
        let junk = gzip(&[0x5a; 4096]);
        let (err, _) = ingest_bytes(job(&junk, Digest::of(&[0x5a; 4096])), &junk);
        assert!(matches!(err, LayerError::Unpack { .. }), "{err}");
    }
}
