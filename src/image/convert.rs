//! `ConvertImage`: an image rewritten with eStargz layers under a new name. Each layer is
//! read from the content store, decompressed and rewritten (its entries unchanged, a
//! landmark and the TOC added), then stored and unpacked through the same verified path
//! as a pull's. The new manifest is OCI, each layer annotated with its TOC digest and
//! uncompressed size, so it can be pushed and pulled lazily by readers that know eStargz
//! and fully by any other runtime. Layers that are eStargz already are kept. The config
//! keeps its dates, so converting the same image again gives the same image id. On
//! failure nothing of the new image stays.

use std::io::{self, BufReader, BufWriter};

use serde_json::{json, Value};

use super::commit::internal;
use super::estargz::{self, TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION};
use super::layer;
use super::manifest::{layer_compression, Compression, ImageConfig, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use super::reference::{Digest, Reference};
use super::{ImageError, ImageRecord, Images, MadeHere};

/// The uncompressed tar of a stored layer blob (zstd windows bounded as in a pull).
fn decompressed(file: std::fs::File, compression: Compression) -> io::Result<Box<dyn io::Read + Send>> {
    let file = BufReader::new(file);
    Ok(match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(file)?;
            dec.window_log_max(layer::MAX_ZSTD_WINDOW_LOG)?;
            Box::new(dec)
        }
    })
}

impl Images {
    /// Converts `source` to eStargz and names the result `target` (none: unnamed).
    /// Returns the new image and its normalised name.
    pub async fn convert_estargz(
        &self,
        source: &str,
        target: Option<&str>,
    ) -> Result<(ImageRecord, Option<String>), ImageError> {
        let tag = match target {
            Some(target) => {
                let reference = Reference::parse(target)?;
                if reference.digest.is_some() {
                    return Err(ImageError::Invalid(format!(
                        "cannot convert to {target:?}: a name may not carry a digest"
                    )));
                }
                Some(
                    reference
                        .tagged()
                        .ok_or_else(|| ImageError::Invalid(format!("{target:?} names no tag")))?,
                )
            }
            None => None,
        };
        let no_gc = self.gc_lock.read().await;
        let result = self.convert_locked(source, tag.as_slice()).await;
        drop(no_gc);
        if result.is_err() {
            if let Err(e) = self.collect_garbage().await {
                tracing::warn!(error = %e, "cleaning up after a failed conversion");
            }
        }
        Ok((result?, tag))
    }

    async fn convert_locked(&self, source: &str, tags: &[String]) -> Result<ImageRecord, ImageError> {
        let base = self
            .resolve(source)
            .ok_or_else(|| ImageError::NotFound(source.to_string()))?;
        let manifest: Value = serde_json::from_slice(&self.content.read(&Digest::parse(&base.manifest)?)?)
            .map_err(internal("the stored manifest"))?;
        let mut config: Value = serde_json::from_slice(&self.content.read(&Digest::parse(&base.id)?)?)
            .map_err(internal("the stored config"))?;
        let old_layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        if old_layers.len() != base.diff_ids.len() {
            return Err(ImageError::Internal(format!(
                "{}: {} layers in the manifest, {} diff ids",
                base.id,
                old_layers.len(),
                base.diff_ids.len()
            )));
        }
        let mut diff_ids: Vec<Digest> = Vec::new();
        let mut layers = Vec::new();
        let mut blob_sizes = 0u64;
        for (old, diff_id) in old_layers.iter().zip(&base.diff_ids) {
            let annotated = old["annotations"][TOC_DIGEST_ANNOTATION].is_string();
            let desc = if annotated {
                diff_ids.push(Digest::parse(diff_id)?);
                old.clone()
            } else {
                let (desc, diff_id) = self.convert_layer(old, &diff_ids).await?;
                diff_ids.push(diff_id);
                desc
            };
            blob_sizes += desc["size"].as_u64().unwrap_or(0);
            layers.push(desc);
        }

        config["rootfs"] =
            json!({"type": "layers", "diff_ids": diff_ids.iter().map(Digest::to_string).collect::<Vec<_>>()});
        let config_bytes = serde_json::to_vec(&config).map_err(internal("encoding the config"))?;
        let config_digest = Digest::of(&config_bytes);
        let parsed: ImageConfig = serde_json::from_slice(&config_bytes).map_err(internal("the new config"))?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(internal("encoding the manifest"))?;
        let manifest_digest = Digest::of(&manifest_bytes);
        self.content.put(&config_digest, &config_bytes)?;
        self.content.put(&manifest_digest, &manifest_bytes)?;
        let record = ImageRecord::made_here(MadeHere {
            config: (&config_digest, &parsed),
            manifest: &manifest_digest,
            size: blob_sizes + config_bytes.len() as u64 + manifest_bytes.len() as u64,
            layers: layers
                .iter()
                .map(|l| l["digest"].as_str().unwrap_or_default().to_string())
                .collect(),
            diff_ids: &diff_ids,
            build_cache: String::new(),
        });
        self.record_named(record, tags, &[])
    }

    /// Rewrites the layer `old` (a manifest descriptor) as eStargz over the layers `below`
    /// and stores it; returns its descriptor and diff id.
    async fn convert_layer(&self, old: &Value, below: &[Digest]) -> Result<(Value, Digest), ImageError> {
        let digest = Digest::parse(old["digest"].as_str().unwrap_or_default())?;
        let compression =
            layer_compression(old["mediaType"].as_str().unwrap_or_default()).map_err(ImageError::Invalid)?;
        let blob = std::fs::File::open(self.content.path(&digest))
            .map_err(|e| ImageError::Internal(format!("layer {digest}: {e}")))?;
        let spool = self.content.spool()?;
        let out = spool
            .reopen()
            .map_err(|e| ImageError::Internal(format!("spool: {e}")))?;
        let converted = tokio::task::spawn_blocking(move || {
            let (out, converted) = estargz::write(decompressed(blob, compression)?, BufWriter::new(out), 0)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_data()?;
            Ok::<_, io::Error>(converted)
        })
        .await
        .map_err(|e| ImageError::Internal(format!("conversion task: {e}")))?
        .map_err(|e| ImageError::Invalid(format!("layer {digest} cannot be converted to eStargz: {e}")))?;
        self.ingest_spooled(
            &spool,
            (&converted.digest, converted.size, Compression::Gzip),
            &converted.diff_id,
            below,
        )
        .await?;
        let desc = json!({
            "mediaType": OCI_LAYER_GZIP,
            "digest": converted.digest.to_string(),
            "size": converted.size,
            "annotations": {
                TOC_DIGEST_ANNOTATION: converted.toc_digest.to_string(),
                UNCOMPRESSED_SIZE_ANNOTATION: converted.uncompressed_size.to_string(),
            },
        });
        Ok((desc, converted.diff_id))
    }
}
