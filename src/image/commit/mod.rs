//! A new image from an image and a directory of changes to it (a container's writable
//! layer): the directory becomes one gzip layer on top of the image's, the config carries
//! the given run settings with Dockerfile-style changes, and the layer is ingested through
//! the same verified path as a pull's (stored under its digest, unpacked into a snapshot,
//! its diff id checked), so the result is an ordinary image that can be run, saved and
//! pushed. On failure nothing of it stays: what was stored is collected again.

pub mod changes;
pub mod diff;
mod documents;
mod spec;

pub(in crate::image) use documents::internal;
pub use documents::{host_architecture, now_rfc3339};
pub use spec::CommitSpec;
use spec::Written;

use std::io::{self, Write};

use flate2::write::GzEncoder;

use super::layer::{self, LayerJob};
use super::manifest::{Compression, ImageConfig};
use super::reference::{Digest, Reference};
use super::{ImageError, ImageRecord, Images, MadeHere};
use crate::digest::Hashing;
use crate::snapshot::chain_ids;
use changes::Change;
use documents::{new_config, new_manifest};

/// Writes the layer of `upper` into `file`, gzip- or zstd-compressed.
fn write_compressed(upper: &std::path::Path, file: &std::fs::File, zstd: bool) -> io::Result<Written> {
    let blob = Hashing::new(io::BufWriter::new(file));
    let (mut blob, digest, size, diff_id) = if zstd {
        let z = zstd::stream::write::Encoder::new(blob, 3)?;
        let (z, diff_id, _) = diff::write_layer(upper, Hashing::new(z))?.finish();
        let (blob, digest, size) = z.finish()?.finish();
        (blob, digest, size, diff_id)
    } else {
        let gz = GzEncoder::new(blob, flate2::Compression::fast());
        let (gz, diff_id, _) = diff::write_layer(upper, Hashing::new(gz))?.finish();
        let (blob, digest, size) = gz.finish()?.finish();
        (blob, digest, size, diff_id)
    };
    blob.flush()?;
    Ok(Written {
        digest,
        size,
        diff_id,
        zstd,
    })
}

impl Images {
    /// Commits `spec` as a new image and returns its record.
    pub async fn commit(&self, spec: CommitSpec) -> Result<ImageRecord, ImageError> {
        let changes: Vec<Change> = spec
            .changes
            .iter()
            .map(|c| changes::parse(c).map_err(ImageError::Invalid))
            .collect::<Result<_, _>>()?;
        let mut tags = Vec::new();
        if !spec.reference.is_empty() {
            let reference = Reference::parse(&spec.reference)?;
            if reference.digest.is_some() {
                return Err(ImageError::Invalid(format!(
                    "cannot commit as {:?}: a name may not carry a digest",
                    spec.reference
                )));
            }
            tags.extend(reference.tagged());
        }
        let no_gc = self.gc_lock.read().await;
        let result = self.commit_locked(&spec, &changes, &tags).await;
        drop(no_gc);
        if result.is_err() {
            if let Err(e) = self.collect_garbage().await {
                tracing::warn!(error = %e, "cleaning up after a failed commit");
            }
        }
        result
    }

    async fn commit_locked(
        &self,
        spec: &CommitSpec,
        changes: &[Change],
        tags: &[String],
    ) -> Result<ImageRecord, ImageError> {
        let base = if spec.base.is_empty() {
            None
        } else {
            Some(
                self.resolve(&spec.base)
                    .ok_or_else(|| ImageError::NotFound(spec.base.clone()))?,
            )
        };
        let (base_config, base_manifest) = match &base {
            Some(base) => (
                self.content.read(&Digest::parse(&base.id)?)?,
                self.content.read(&Digest::parse(&base.manifest)?)?,
            ),
            None => documents::scratch(),
        };
        let mut diff_ids: Vec<Digest> = base
            .iter()
            .flat_map(|b| b.diff_ids.iter())
            .map(|d| Digest::parse(d))
            .collect::<Result<_, _>>()?;
        let written = match &spec.upper {
            Some(upper) => {
                let written = self.store_layer(upper, &diff_ids, spec.zstd).await?;
                diff_ids.push(written.diff_id.clone());
                Some(written)
            }
            None => None,
        };

        let config = new_config(&base_config, spec, changes, written.as_ref().map(|w| &w.diff_id))?;
        let config_bytes = serde_json::to_vec(&config).map_err(internal("encoding the config"))?;
        let config_digest = Digest::of(&config_bytes);
        let parsed: ImageConfig = serde_json::from_slice(&config_bytes).map_err(internal("the new config"))?;
        let manifest = new_manifest(&base_manifest, (&config_digest, config_bytes.len()), written.as_ref())?;
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(internal("encoding the manifest"))?;
        let manifest_digest = Digest::of(&manifest_bytes);
        self.content.put(&config_digest, &config_bytes)?;
        self.content.put(&manifest_digest, &manifest_bytes)?;

        let mut layers: Vec<String> = base.iter().flat_map(|b| b.layers.iter().cloned()).collect();
        layers.extend(written.as_ref().map(|w| w.digest.to_string()));
        let base_layers = base.as_ref().map_or(0, |b| {
            b.size.saturating_sub((base_config.len() + base_manifest.len()) as u64)
        });
        let record = ImageRecord::made_here(MadeHere {
            config: (&config_digest, &parsed),
            manifest: &manifest_digest,
            size: base_layers
                + written.as_ref().map_or(0, |w| w.size)
                + config_bytes.len() as u64
                + manifest_bytes.len() as u64,
            layers,
            diff_ids: &diff_ids,
            build_cache: spec.cache_key.clone(),
        });
        self.record_named(record, tags, &[])
    }

    /// Writes the layer of `upper` and ingests it over the layers `below` (diff ids).
    async fn store_layer(&self, upper: &std::path::Path, below: &[Digest], zstd: bool) -> Result<Written, ImageError> {
        let spool = self.content.spool()?;
        let reopen = || spool.reopen().map_err(|e| ImageError::Internal(format!("spool: {e}")));
        let (upper, file) = (upper.to_path_buf(), reopen()?);
        let written = tokio::task::spawn_blocking(move || write_compressed(&upper, &file, zstd))
            .await
            .map_err(|e| ImageError::Internal(format!("layer task: {e}")))?
            .map_err(|e| ImageError::Invalid(format!("the changes cannot be archived: {e}")))?;
        let compression = if written.zstd {
            Compression::Zstd
        } else {
            Compression::Gzip
        };
        self.ingest_spooled(
            &spool,
            (&written.digest, written.size, compression),
            &written.diff_id,
            below,
        )
        .await?;
        Ok(written)
    }

    /// Stores and unpacks the layer blob written to `spool` (`blob`: its digest, size and
    /// compression) over the layers `below`, checking that it unpacks to `diff_id`.
    pub(in crate::image) async fn ingest_spooled(
        &self,
        spool: &tempfile::NamedTempFile,
        blob: (&Digest, u64, Compression),
        diff_id: &Digest,
        below: &[Digest],
    ) -> Result<(), ImageError> {
        let mut diff_ids = below.to_vec();
        diff_ids.push(diff_id.clone());
        let chain_id = chain_ids(&diff_ids).pop().expect("at least the new layer");
        let _one_ingest = self.layer_locks.lock(chain_id.as_str()).await;
        let job = LayerJob {
            digest: blob.0.clone(),
            size: blob.1,
            compression: blob.2,
            diff_id: diff_id.clone(),
            chain_id,
            limits: self.unpack_limits(),
        };
        let file = spool
            .reopen()
            .map_err(|e| ImageError::Internal(format!("spool: {e}")))?;
        let (content, snapshots) = (self.content.clone(), self.snapshots.clone());
        tokio::task::spawn_blocking(move || {
            layer::ingest_reader(job, io::BufReader::new(file), &content, snapshots.as_ref())
        })
        .await
        .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))??;
        Ok(())
    }
}
