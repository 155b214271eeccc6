//! Reading an archive into the node's images. Everything is checked before anything is
//! recorded: each blob's sha256 against its digest (a `docker save` has no manifest, so one
//! is built from the digests computed here), each layer's diff id against the config while
//! it is unpacked through the pull's own ingest path. On failure, what was stored on the
//! way is collected again, so a bad archive leaves nothing behind.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::index::{ArchiveIndex, Member};
use super::REF_NAME;
use super::{blob_path, DockerEntry, CONTAINERD_NAME, DOCKER_MANIFEST_JSON, OCI_CONFIG, OCI_INDEX_JSON, OCI_LAYOUT};
use crate::config::Limits;
use crate::image::content::ContentError;
use crate::image::layer::{self, LayerJob};
use crate::image::manifest::{self, Compression, Descriptor, Document, ImageConfig, Manifest, OCI_MANIFEST};
use crate::image::reference::{Digest, Reference};
use crate::image::{ImageError, ImageRecord, Images};
use crate::snapshot::chain_ids;

/// One image found in an archive, with its small documents verified.
struct Candidate {
    /// Verified small blobs to store: the top-level document, a platform manifest under
    /// an index, the config.
    blobs: Vec<(Digest, Vec<u8>)>,
    target: Digest,
    manifest: Digest,
    config_digest: Digest,
    config: ImageConfig,
    layers: Vec<ImportLayer>,
    tags: Vec<String>,
    repo_digests: Vec<String>,
}

struct ImportLayer {
    member: Member,
    digest: Digest,
    compression: Compression,
}

#[derive(Deserialize)]
struct IndexEntry {
    #[serde(flatten)]
    descriptor: Descriptor,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct IndexDoc {
    manifests: Vec<IndexEntry>,
}

fn invalid(message: impl Into<String>) -> ImageError {
    ImageError::Invalid(format!("image archive: {}", message.into()))
}

fn mismatch(what: &str, expected: &str, actual: &Digest) -> ImageError {
    ImageError::Content(ContentError::DigestMismatch {
        expected: format!("{expected} ({what} in the archive)"),
        actual: actual.to_string(),
    })
}

/// Reads a blob member by descriptor and checks its size and digest.
fn verified_blob(idx: &ArchiveIndex, desc: &Descriptor, limit: u64) -> Result<(Digest, Vec<u8>), ImageError> {
    let digest = Digest::parse(&desc.digest)?;
    if desc.size < 0 || desc.size as u64 > limit {
        return Err(invalid(format!(
            "{} declares {} bytes, over the {limit}-byte limit",
            desc.digest, desc.size
        )));
    }
    let bytes = idx.read_small(&blob_path(&digest), limit)?;
    let actual = Digest::of(&bytes);
    if actual != digest {
        return Err(mismatch("blob", digest.as_str(), &actual));
    }
    if bytes.len() as u64 != desc.size as u64 {
        return Err(invalid(format!(
            "{digest}: {} bytes, the descriptor says {}",
            bytes.len(),
            desc.size
        )));
    }
    Ok((digest, bytes))
}

/// The name a tag string gives, normalised; a digest-only or untagged name gives none.
fn tag_of(name: &str) -> Result<Option<(Reference, String)>, ImageError> {
    let reference = Reference::parse(name).map_err(|e| invalid(format!("image name: {e}")))?;
    Ok(reference.tagged().map(|t| (reference, t)))
}

fn parse_config(bytes: &[u8], what: &str, limits: &Limits, layers: usize) -> Result<ImageConfig, ImageError> {
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("{what}: image config is not valid: {e}")))?;
    if layers > limits.max_layers {
        return Err(invalid(format!(
            "{what}: {layers} layers, over the limit of {}",
            limits.max_layers
        )));
    }
    if layers != config.rootfs.diff_ids.len() {
        return Err(invalid(format!(
            "{what}: {layers} layers but the config lists {} diff ids",
            config.rootfs.diff_ids.len()
        )));
    }
    Ok(config)
}

fn oci_candidates(idx: &ArchiveIndex, limits: &Limits) -> Result<Vec<Candidate>, ImageError> {
    let top = idx.read_small(OCI_INDEX_JSON, limits.max_manifest_bytes)?;
    let doc: IndexDoc = serde_json::from_slice(&top).map_err(|e| invalid(format!("index.json: {e}")))?;
    let mut out: Vec<Candidate> = Vec::new();
    for entry in doc.manifests {
        let (digest, bytes) = verified_blob(idx, &entry.descriptor, limits.max_manifest_bytes)?;
        let name = entry
            .annotations
            .get(CONTAINERD_NAME)
            .or_else(|| entry.annotations.get(REF_NAME).filter(|n| n.contains(['/', ':'])));
        let named = name.map(|n| tag_of(n)).transpose()?.flatten();
        if let Some(existing) = out.iter_mut().find(|c| c.target == digest) {
            if let Some((reference, tag)) = named {
                existing.tags.push(tag);
                existing.repo_digests.push(reference.with_digest(&digest));
            }
            continue;
        }
        let mut blobs = vec![(digest.clone(), bytes.clone())];
        let parse = |media: &str, b: &[u8]| Document::parse(media, b).map_err(|e| invalid(format!("{digest}: {e}")));
        let (manifest_digest, manifest) = match parse(&entry.descriptor.media_type, &bytes)? {
            Document::Manifest(m) => (digest.clone(), m),
            Document::Index(index) => {
                let desc = manifest::select_platform(&index, &manifest::host_platform()).ok_or_else(|| {
                    ImageError::NotFound(format!("{digest}: no image for this platform in its index"))
                })?;
                let (d, b) = verified_blob(idx, desc, limits.max_manifest_bytes)?;
                let Document::Manifest(m) = parse(&desc.media_type, &b)? else {
                    return Err(invalid(format!("{digest}: nested image indexes are not supported")));
                };
                blobs.push((d.clone(), b));
                (d, m)
            }
        };
        out.push(oci_candidate(
            idx,
            limits,
            digest,
            manifest_digest,
            &manifest,
            blobs,
            named,
        )?);
    }
    Ok(out)
}

fn oci_candidate(
    idx: &ArchiveIndex,
    limits: &Limits,
    target: Digest,
    manifest_digest: Digest,
    manifest: &Manifest,
    mut blobs: Vec<(Digest, Vec<u8>)>,
    named: Option<(Reference, String)>,
) -> Result<Candidate, ImageError> {
    let (config_digest, config_bytes) = verified_blob(idx, &manifest.config, limits.max_config_bytes)?;
    let config = parse_config(&config_bytes, manifest_digest.as_str(), limits, manifest.layers.len())?;
    blobs.push((config_digest.clone(), config_bytes));
    let mut layers = Vec::new();
    for desc in &manifest.layers {
        let digest = Digest::parse(&desc.digest)?;
        let compression = manifest::layer_compression(&desc.media_type).map_err(invalid)?;
        let (_, member) = idx.member(&blob_path(&digest))?;
        if desc.size < 0 || member.size != desc.size as u64 {
            return Err(invalid(format!(
                "layer {digest}: {} bytes, the manifest says {}",
                member.size, desc.size
            )));
        }
        let actual = idx.digest(member)?;
        if actual != digest {
            return Err(mismatch("layer", digest.as_str(), &actual));
        }
        layers.push(ImportLayer {
            member,
            digest,
            compression,
        });
    }
    let (tags, repo_digests) = match named {
        Some((reference, tag)) => (vec![tag], vec![reference.with_digest(&target)]),
        None => (vec![], vec![]),
    };
    Ok(Candidate {
        blobs,
        target,
        manifest: manifest_digest,
        config_digest,
        config,
        layers,
        tags,
        repo_digests,
    })
}

/// `blobs/sha256/<hex>` or `<hex>.json`: a name that states the member's digest.
fn stated_digest(path: &str) -> Option<Digest> {
    let base = path.strip_prefix("blobs/sha256/").unwrap_or(path);
    let hex = base.strip_suffix(".json").unwrap_or(base);
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn docker_candidates(idx: &ArchiveIndex, limits: &Limits) -> Result<Vec<Candidate>, ImageError> {
    let top = idx.read_small(DOCKER_MANIFEST_JSON, limits.max_manifest_bytes)?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&top).map_err(|e| invalid(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let (config_path, _) = idx.member(&entry.config)?;
        let config_bytes = idx.read_small(&config_path, limits.max_config_bytes)?;
        let config_digest = Digest::of(&config_bytes);
        if let Some(stated) = stated_digest(&config_path).filter(|d| *d != config_digest) {
            return Err(mismatch("config", stated.as_str(), &config_digest));
        }
        let config = parse_config(&config_bytes, &config_path, limits, entry.layers.len())?;
        let mut layers = Vec::new();
        let mut descriptors = Vec::new();
        for path in &entry.layers {
            let (clean, member) = idx.member(path)?;
            let digest = idx.digest(member)?;
            if let Some(stated) = stated_digest(&clean).filter(|d| *d != digest) {
                return Err(mismatch("layer", stated.as_str(), &digest));
            }
            let (compression, media_type) = match idx.magic(member)? {
                [0x1f, 0x8b, _, _] => (Compression::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip"),
                [0x28, 0xb5, 0x2f, 0xfd] => (Compression::Zstd, "application/vnd.oci.image.layer.v1.tar+zstd"),
                _ => (Compression::None, "application/vnd.oci.image.layer.v1.tar"),
            };
            descriptors
                .push(serde_json::json!({"mediaType": media_type, "digest": digest.as_str(), "size": member.size}));
            layers.push(ImportLayer {
                member,
                digest,
                compression,
            });
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.as_str(), "size": config_bytes.len()},
            "layers": descriptors,
        }))
        .map_err(|e| ImageError::Internal(format!("encoding a manifest: {e}")))?;
        let manifest_digest = Digest::of(&manifest);
        let mut tags = Vec::new();
        for name in entry.repo_tags.unwrap_or_default() {
            if let Some((_, tag)) = tag_of(&name)? {
                tags.push(tag);
            }
        }
        out.push(Candidate {
            blobs: vec![
                (manifest_digest.clone(), manifest),
                (config_digest.clone(), config_bytes),
            ],
            target: manifest_digest.clone(),
            manifest: manifest_digest,
            config_digest,
            config,
            layers,
            tags,
            repo_digests: vec![],
        });
    }
    Ok(out)
}

/// Indexes the archive, tells its format and verifies everything but the layers' diff ids.
fn candidates(idx: &ArchiveIndex, limits: &Limits) -> Result<Vec<Candidate>, ImageError> {
    let found = if idx.contains(OCI_LAYOUT) && idx.contains(OCI_INDEX_JSON) {
        oci_candidates(idx, limits)?
    } else if idx.contains(DOCKER_MANIFEST_JSON) {
        docker_candidates(idx, limits)?
    } else {
        return Err(invalid(
            "neither an OCI image layout (oci-layout, index.json) nor a docker save (manifest.json)",
        ));
    };
    if found.is_empty() {
        return Err(invalid("the archive holds no images"));
    }
    Ok(found)
}

impl Images {
    /// Imports the images of the archive at `path` and returns their records.
    pub async fn import_archive(&self, path: &std::path::Path) -> Result<Vec<ImageRecord>, ImageError> {
        let limits = self.options.limits.clone();
        let path = path.to_path_buf();
        let (idx, found) = tokio::task::spawn_blocking(move || {
            let idx = ArchiveIndex::read(&path, limits.max_layer_bytes)?;
            let found = candidates(&idx, &limits)?;
            Ok::<_, ImageError>((idx, found))
        })
        .await
        .map_err(|e| ImageError::Internal(format!("archive task: {e}")))??;
        let no_gc = self.gc_lock.read().await;
        let result = self.ingest_all(Arc::new(idx), found).await;
        drop(no_gc);
        if result.is_err() {
            if let Err(e) = self.collect_garbage().await {
                tracing::warn!(error = %e, "cleaning up after a failed import");
            }
        }
        result
    }

    async fn ingest_all(&self, idx: Arc<ArchiveIndex>, found: Vec<Candidate>) -> Result<Vec<ImageRecord>, ImageError> {
        let mut ready = Vec::new();
        for c in found {
            let diff_ids: Vec<Digest> = c
                .config
                .rootfs
                .diff_ids
                .iter()
                .map(|d| Digest::parse(d))
                .collect::<Result<_, _>>()?;
            let chains = chain_ids(&diff_ids);
            for ((l, diff_id), chain_id) in c.layers.iter().zip(&diff_ids).zip(&chains) {
                let _one_ingest = self.layer_locks.lock(chain_id.as_str()).await;
                if self.snapshots.exists(chain_id) {
                    continue;
                }
                let job = LayerJob {
                    digest: l.digest.clone(),
                    size: l.member.size,
                    compression: l.compression,
                    diff_id: diff_id.clone(),
                    chain_id: chain_id.clone(),
                    limits: self.unpack_limits(),
                };
                let (idx, content, snapshots, member) =
                    (idx.clone(), self.content.clone(), self.snapshots.clone(), l.member);
                tokio::task::spawn_blocking(move || {
                    let reader = idx.open(member)?;
                    layer::ingest_reader(job, reader, &content, snapshots.as_ref()).map_err(ImageError::from)
                })
                .await
                .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))??;
            }
            for (digest, bytes) in &c.blobs {
                self.content.put(digest, bytes)?;
            }
            ready.push((c, diff_ids, chains));
        }
        let mut records = Vec::new();
        for (c, diff_ids, chains) in ready {
            let size = c.layers.iter().map(|l| l.member.size).sum::<u64>()
                + self.content.size(&c.config_digest).unwrap_or(0)
                + self.content.size(&c.manifest).unwrap_or(0);
            let record = ImageRecord {
                id: c.config_digest.to_string(),
                repo_tags: Vec::new(),
                repo_digests: Vec::new(),
                size,
                target: c.target.to_string(),
                manifest: c.manifest.to_string(),
                layers: c.layers.iter().map(|l| l.digest.to_string()).collect(),
                diff_ids: diff_ids.iter().map(|d| d.to_string()).collect(),
                chain_ids: chains.iter().map(|d| d.to_string()).collect(),
                run_config: c.config.config.clone().unwrap_or_default(),
                os: c.config.os.clone(),
                architecture: c.config.architecture.clone(),
                pulled_at: crate::clock::now_nanos(),
                pinned: false,
                trust: None,
                build_cache: String::new(),
            };
            records.push(self.record_named(record, &c.tags, &c.repo_digests)?);
        }
        Ok(records)
    }
}
