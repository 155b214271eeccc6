//! Pulling an image: resolve the reference to a manifest (choosing this node's platform
//! from an index), fetch and verify the config, then ingest every layer concurrently —
//! each one streamed through hashing, the content store and the unpacker in one pass —
//! and record the image only when all of it is verified on disk.

use std::sync::Arc;

use futures_util::future::try_join_all;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::auth::{self, AuthInput, Credentials};
use super::download::{Ended, LayerDownload};
use super::layer::{self, LayerError, LayerJob};
use super::manifest::{self, Descriptor, Document, ImageConfig, Manifest};
use super::progress::{LayerState, ProgressFn, Reporter};
use super::reference::{Digest, Reference};
use super::registry::{read_limited, PullAuth};
use super::service::{ImageError, Images};
use super::ImageRecord;
use crate::snapshot::chain_ids;

impl Images {
    /// Pulls `image` and returns its record. Concurrent pulls of one reference share the
    /// work: the second waits for the first and then finds everything in place. Dropping
    /// the future (a caller that gives up) stops the download at once.
    pub async fn pull(self: &Arc<Self>, image: &str, auth: Option<&AuthInput>) -> Result<ImageRecord, ImageError> {
        self.pull_with_progress(image, auth, None).await
    }

    /// [`Images::pull`], telling `progress` how each layer goes.
    pub async fn pull_with_progress(
        self: &Arc<Self>,
        image: &str,
        auth: Option<&AuthInput>,
        progress: Option<ProgressFn>,
    ) -> Result<ImageRecord, ImageError> {
        let started = std::time::Instant::now();
        // A pull that fails, is refused or is abandoned leaves the store as it found it.
        let mut undo = UndoPull {
            images: Arc::clone(self),
            before: Some(self.stored()?),
        };
        let result = self.pull_once(image, auth, Reporter::new(progress)).await;
        if let Some(before) = undo.before.take() {
            if result.is_err() {
                self.forget_failed_pull(&before).await;
            }
        }
        crate::metrics::global().pull_finished(result.is_ok(), started.elapsed().as_secs_f64());
        result
    }

    async fn pull_once(
        &self,
        image: &str,
        auth: Option<&AuthInput>,
        progress: Reporter,
    ) -> Result<ImageRecord, ImageError> {
        let reference = Reference::parse(image)?;
        let credentials = self.credentials_for(&reference, auth)?;
        let _one_at_a_time = self.pull_locks.lock(&reference.to_string()).await;
        let _no_gc = self.gc_lock.read().await;
        let started = std::time::Instant::now();

        let (target_digest, manifest_digest, manifest) = self.resolve_manifest(&reference, &credentials).await?;
        let trust = self.check_trust(&reference, &credentials, &target_digest).await?;
        let config_bytes = self
            .fetch_small(
                &reference,
                &credentials,
                &manifest.config,
                self.options.limits.max_config_bytes,
            )
            .await?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| ImageError::Invalid(format!("{reference}: image config is not valid: {e}")))?;
        let diff_ids = self.check_layers(&reference, &manifest, &config)?;
        let chains = chain_ids(&diff_ids);
        for layer in &manifest.layers {
            progress.report(&layer.digest, layer.size.max(0) as u64, 0, LayerState::Waiting);
        }

        let permits = Arc::new(Semaphore::new(self.options.max_concurrent_downloads));
        let jobs = manifest
            .layers
            .iter()
            .zip(diff_ids.iter())
            .zip(chains.iter())
            .map(|((desc, diff), chain)| {
                let permits = permits.clone();
                let credentials = &credentials;
                let reference = &reference;
                let progress = &progress;
                async move {
                    let _permit = permits
                        .acquire()
                        .await
                        .map_err(|e| ImageError::Internal(e.to_string()))?;
                    let span = tracing::info_span!("layer", digest = %desc.digest, size = desc.size);
                    self.ensure_layer(reference, credentials, desc, diff, chain, progress)
                        .instrument(span)
                        .await
                }
            });
        try_join_all(jobs).await?;

        let size = manifest.layers.iter().map(|l| l.size.max(0) as u64).sum::<u64>()
            + manifest.config.size.max(0) as u64
            + self.content.size(&manifest_digest).unwrap_or(0);
        let run_config = config.config.clone().unwrap_or_default();
        let record = ImageRecord {
            id: manifest.config.digest.clone(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            size,
            target: target_digest.to_string(),
            manifest: manifest_digest.to_string(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            diff_ids: diff_ids.iter().map(|d| d.to_string()).collect(),
            chain_ids: chains.iter().map(|d| d.to_string()).collect(),
            run_config,
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            pulled_at: crate::clock::now_nanos(),
            pinned: false,
            trust,
            build_cache: String::new(),
        };
        let record = self.record_pull(record, &reference, &target_digest)?;
        tracing::info!(image = %reference, id = %record.id, bytes = record.size, ms = started.elapsed().as_millis() as u64, "pulled");
        Ok(record)
    }

    /// The credentials given with the request, else the credentials file's entry for the
    /// reference's registry (pushes use the same).
    pub(super) fn credentials_for(
        &self,
        reference: &Reference,
        auth: Option<&AuthInput>,
    ) -> Result<PullAuth, ImageError> {
        if let Some(input) = auth {
            let credentials = Credentials::from_input(input).map_err(|e| ImageError::Invalid(format!("auth: {e}")))?;
            let registry = if input.server_address.is_empty() {
                reference.registry.clone()
            } else {
                auth::server_host(&input.server_address)
            };
            if !credentials.is_anonymous() {
                return Ok(PullAuth { registry, credentials });
            }
        }
        let from_file = auth::from_docker_config(&self.options.auth_file, &reference.registry).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring unreadable registry auth file");
            None
        });
        Ok(PullAuth {
            registry: reference.registry.clone(),
            credentials: from_file.unwrap_or_default(),
        })
    }

    /// Returns (top-level digest, platform manifest digest, manifest).
    async fn resolve_manifest(
        &self,
        reference: &Reference,
        auth: &PullAuth,
    ) -> Result<(Digest, Digest, Manifest), ImageError> {
        let limit = self.options.limits.max_manifest_bytes;
        let by_tag = reference.digest.is_none();
        let path = format!("manifests/{}", reference.manifest_reference());
        let fetched = self
            .registry
            .get(reference, auth, &path, &manifest::MANIFEST_ACCEPT, by_tag)
            .await?;
        let content_type = header(&fetched.response, "content-type");
        let claimed = header(&fetched.response, "docker-content-digest");
        let body = read_limited(fetched.response, limit).await?;
        let top = Digest::of(&body);
        if let Some(expected) = &reference.digest {
            if *expected != top {
                return Err(mismatch(reference, expected.as_str(), &top));
            }
        } else if claimed.starts_with("sha256:") && claimed != top.as_str() {
            return Err(mismatch(reference, &claimed, &top));
        }
        self.content.put(&top, &body)?;
        let doc =
            Document::parse(&content_type, &body).map_err(|e| ImageError::Invalid(format!("{reference}: {e}")))?;
        match doc {
            Document::Manifest(m) => Ok((top.clone(), top, m)),
            Document::Index(index) => {
                let want = manifest::host_platform();
                let desc = manifest::select_platform(&index, &want).ok_or_else(|| {
                    ImageError::NotFound(format!(
                        "{reference}: no image for platform {}/{}{} in its index",
                        want.os,
                        want.architecture,
                        want.variant.as_deref().map(|v| format!("/{v}")).unwrap_or_default()
                    ))
                })?;
                let bytes = self.fetch_small(reference, auth, desc, limit).await?;
                let digest = Digest::parse(&desc.digest)?;
                match Document::parse(&desc.media_type, &bytes)
                    .map_err(|e| ImageError::Invalid(format!("{reference}: {e}")))?
                {
                    Document::Manifest(m) => Ok((top, digest, m)),
                    Document::Index(_) => Err(ImageError::Invalid(format!(
                        "{reference}: nested image indexes are not supported"
                    ))),
                }
            }
        }
    }

    /// Fetches a small blob or manifest by digest, verifies it and stores it.
    async fn fetch_small(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        desc: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, ImageError> {
        let digest = Digest::parse(&desc.digest)?;
        if desc.size < 0 || desc.size as u64 > limit {
            return Err(ImageError::Invalid(format!(
                "{reference}: {} declares {} bytes, over the {limit}-byte limit",
                desc.digest, desc.size
            )));
        }
        if self.content.contains(&digest) {
            self.content.check_size(&digest, desc.size as u64)?;
            return Ok(self.content.read(&digest)?);
        }
        let is_manifest = desc.media_type.contains("manifest") || desc.media_type.contains("index");
        let path = if is_manifest {
            format!("manifests/{digest}")
        } else {
            format!("blobs/{digest}")
        };
        let accept: &[&str] = if is_manifest { &manifest::MANIFEST_ACCEPT } else { &[] };
        let fetched = self.registry.get(reference, auth, &path, accept, false).await?;
        let body = read_limited(fetched.response, desc.size as u64).await?;
        let actual = Digest::of(&body);
        if actual != digest {
            return Err(mismatch(reference, digest.as_str(), &actual));
        }
        if body.len() as u64 != desc.size as u64 {
            return Err(super::content::ContentError::SizeMismatch {
                digest: digest.to_string(),
                expected: desc.size as u64,
                actual: body.len() as u64,
            }
            .into());
        }
        self.content.put(&digest, &body)?;
        Ok(body)
    }

    fn check_layers(
        &self,
        reference: &Reference,
        manifest: &Manifest,
        config: &ImageConfig,
    ) -> Result<Vec<Digest>, ImageError> {
        let limit = self.options.limits.max_layers;
        if manifest.layers.len() > limit {
            return Err(ImageError::Invalid(format!(
                "{reference}: {} layers, over the limit of {limit}",
                manifest.layers.len()
            )));
        }
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(ImageError::Invalid(format!(
                "{reference}: manifest has {} layers but the config lists {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        for layer in &manifest.layers {
            Digest::parse(&layer.digest)?;
            manifest::layer_compression(&layer.media_type)
                .map_err(|e| ImageError::Invalid(format!("{reference}: {e}")))?;
            if layer.size < 0 {
                return Err(ImageError::Invalid(format!(
                    "{reference}: layer {} has a negative size",
                    layer.digest
                )));
            }
        }
        Ok(config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<_, _>>()?)
    }

    async fn ensure_layer(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        desc: &Descriptor,
        diff_id: &Digest,
        chain_id: &Digest,
        progress: &Reporter,
    ) -> Result<(), ImageError> {
        let _one_ingest = self.layer_locks.lock(chain_id.as_str()).await;
        let total = desc.size.max(0) as u64;
        let digest = Digest::parse(&desc.digest)?;
        self.content.check_size(&digest, total)?;
        if self.snapshots.exists(chain_id) {
            progress.report(&desc.digest, total, total, LayerState::AlreadyPresent);
            return Ok(());
        }
        let job = LayerJob {
            digest: digest.clone(),
            size: desc.size as u64,
            compression: manifest::layer_compression(&desc.media_type).map_err(ImageError::Invalid)?,
            diff_id: diff_id.clone(),
            chain_id: chain_id.clone(),
            limits: self.unpack_limits(),
        };
        let started = std::time::Instant::now();
        if self.content.contains(&digest) {
            progress.report(&desc.digest, total, total, LayerState::Unpacking);
            let content = self.content.clone();
            let snapshots = self.snapshots.clone();
            tokio::task::spawn_blocking(move || layer::unpack_stored(job, &content, snapshots.as_ref()))
                .await
                .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))??;
            progress.report(&desc.digest, total, total, LayerState::Done);
            return Ok(());
        }
        let fetched = self
            .registry
            .get(reference, auth, &format!("blobs/{digest}"), &[], false)
            .await?;
        let response = fetched.response;
        if response.content_length().is_some_and(|n| n != desc.size as u64) {
            return Err(LayerError::Stream {
                digest: digest.to_string(),
                message: format!(
                    "registry sends {} bytes, the manifest says {}",
                    response.content_length().unwrap_or(0),
                    desc.size
                ),
            }
            .into());
        }
        let (sender, handle) = layer::start_streamed(job, self.content.clone(), self.snapshots.clone())?;
        let download = LayerDownload {
            reference,
            auth,
            digest: &digest,
            size: total,
            progress,
        };
        let ended = self.download_layer(&download, response, &sender).await;
        drop(sender);
        if ended.is_ok() {
            progress.report(&desc.digest, total, total, LayerState::Verifying);
        }
        let result = handle
            .await
            .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))?;
        if let Err(Ended::Failed(e)) = ended {
            return Err(e.into());
        }
        let usage = result?;
        progress.report(&desc.digest, total, total, LayerState::Done);
        tracing::debug!(layer = %digest, bytes = desc.size, unpacked = usage.bytes, ms = started.elapsed().as_millis() as u64, "layer ingested");
        Ok(())
    }

    /// Stores the record: the new image takes the reference's tag (moving it off any other
    /// image) and gains `name@digest`.
    fn record_pull(
        &self,
        record: ImageRecord,
        reference: &Reference,
        target: &Digest,
    ) -> Result<ImageRecord, ImageError> {
        let tags: Vec<String> = reference.tagged().into_iter().collect();
        self.record_named(record, &tags, &[reference.with_digest(target)])
    }
}

/// Takes back what a pull stored if its future is dropped before it finished (the caller
/// cancelled): the clean-up runs as its own task, since the pull's task is gone.
struct UndoPull {
    images: Arc<Images>,
    /// The store before the pull; None once the pull finished and dealt with it.
    before: Option<super::service::Stored>,
}

impl Drop for UndoPull {
    fn drop(&mut self) {
        let Some(before) = self.before.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let images = Arc::clone(&self.images);
        tracing::info!("pull abandoned by its caller; removing what it stored");
        runtime.spawn(async move { images.forget_failed_pull(&before).await });
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn mismatch(reference: &Reference, expected: &str, actual: &Digest) -> ImageError {
    ImageError::Content(super::content::ContentError::DigestMismatch {
        expected: format!("{expected} ({reference})"),
        actual: actual.to_string(),
    })
}
