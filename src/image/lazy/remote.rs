//! One layer in its registry, read by byte ranges.

use std::sync::Arc;

use crate::digest::Digest;
use crate::image::estargz::{self, Chunk, TocError, Tree, FOOTER_SIZE, MAX_TOC};
use crate::image::reference::Reference;
use crate::image::registry::{PullAuth, RegistryClient, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum LazyError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("layer {digest}: {source}")]
    Toc {
        digest: String,
        #[source]
        source: TocError,
    },
}

/// The most bytes fetched for a chunk of `len` bytes: its deflate stream (at worst
/// stored blocks, 5 bytes per 64 KiB) and a gzip header with room for its optional fields;
/// the member can run on far past the chunk (the next entries' tar headers).
fn fetch_bound(len: u64) -> u64 {
    len + len / 64 + (64 << 10)
}

pub struct RemoteLayer {
    registry: Arc<RegistryClient>,
    reference: Reference,
    auth: PullAuth,
    digest: Digest,
    size: u64,
    tree: Arc<Tree>,
}

impl RemoteLayer {
    /// Fetches the footer and the TOC of the blob `digest` (`size` bytes) and builds its
    /// tree; `toc_digest` is the layer's TOC digest annotation.
    pub async fn open(
        registry: Arc<RegistryClient>,
        reference: Reference,
        auth: PullAuth,
        digest: Digest,
        size: u64,
        toc_digest: &Digest,
    ) -> Result<RemoteLayer, LazyError> {
        let toc_err = |source| LazyError::Toc {
            digest: digest.to_string(),
            source,
        };
        let footer_at = size
            .checked_sub(FOOTER_SIZE as u64)
            .ok_or_else(|| toc_err(TocError::NotEstargz(format!("a blob of {size} bytes"))))?;
        let footer = registry
            .get_blob_range(&reference, &auth, &digest, size, footer_at..size)
            .await?;
        let toc_offset = estargz::footer_offset(&footer).map_err(toc_err)?;
        if toc_offset >= footer_at || footer_at - toc_offset > MAX_TOC + (1 << 20) {
            return Err(toc_err(TocError::Malformed(format!(
                "the TOC at {toc_offset} of a {size}-byte blob"
            ))));
        }
        let member = registry
            .get_blob_range(&reference, &auth, &digest, size, toc_offset..footer_at)
            .await?;
        let toc = estargz::read_toc(&member, toc_digest).map_err(toc_err)?;
        let tree = Tree::build(&toc, toc_offset).map_err(toc_err)?;
        Ok(RemoteLayer {
            registry,
            reference,
            auth,
            digest,
            size,
            tree: Arc::new(tree),
        })
    }

    pub fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    /// The bytes of `chunk` (of the file `name`, for errors), fetched and verified.
    pub async fn read(&self, chunk: &Chunk, name: &str) -> Result<Vec<u8>, LazyError> {
        let end = chunk
            .member
            .end
            .min(chunk.member.start.saturating_add(fetch_bound(chunk.len)));
        let member = self
            .registry
            .get_blob_range(
                &self.reference,
                &self.auth,
                &self.digest,
                self.size,
                chunk.member.start..end,
            )
            .await?;
        estargz::inflate(&member, chunk, name).map_err(|source| LazyError::Toc {
            digest: self.digest.to_string(),
            source,
        })
    }
}

/// How long one chunk may take before the reader gets EIO.
const CHUNK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A remote layer as the chunk source of a mount: FUSE threads block on the fetch on the
/// given runtime.
pub struct RemoteSource {
    pub layer: Arc<RemoteLayer>,
    pub runtime: tokio::runtime::Handle,
}

impl super::ChunkSource for RemoteSource {
    fn fetch(&self, chunk: &Chunk, name: &str) -> Result<Vec<u8>, String> {
        // The timer is made inside the runtime: FUSE threads are not its own.
        let read = async { tokio::time::timeout(CHUNK_TIMEOUT, self.layer.read(chunk, name)).await };
        match self.runtime.block_on(read) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("{name}: no answer from the registry in {CHUNK_TIMEOUT:?}")),
        }
    }
}
