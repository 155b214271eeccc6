//! Pushing an image to its registry: every blob of the manifest(s) from the content store
//! (skipped when the repository has it, mounted when another repository of the registry
//! does, uploaded otherwise), then the manifest(s) with their stored bytes. An image that
//! came as an index goes up as that index when all of it is stored, else as the platform
//! manifest alone. A push cut off halfway is simply run again: what arrived is skipped.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::try_join_all;
use tokio::sync::Semaphore;

use super::auth::AuthInput;
use super::manifest::{self, Descriptor, Document, Manifest};
use super::reference::{Digest, Reference};
use super::registry::{Mount, PushSession};
use super::service::{ImageError, Images};
use super::ImageRecord;

/// Where one blob of a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Waiting,
    Pushing,
    Pushed,
    /// The repository had it already.
    Exists,
    /// Mounted from another repository of the registry.
    Mounted,
}

/// What a push reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    Blob {
        digest: String,
        total: u64,
        done: u64,
        state: BlobState,
        /// The repository a mounted blob came from.
        from: Option<String>,
    },
    /// Something to tell the user (what was pushed in place of what was asked).
    Notice(String),
}

pub type PushFn = Arc<dyn Fn(PushEvent) + Send + Sync>;

/// A finished push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The normalised reference pushed (`registry/repo:tag`).
    pub reference: String,
    /// The tag (or digest) the manifest went under.
    pub tag: String,
    /// The digest of what the tag points to.
    pub digest: Digest,
    /// Bytes of that manifest (what `docker push` prints as `size`).
    pub size: u64,
}

/// A manifest-like document to PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// What a push sends, in order: blobs, manifests by digest, then `top` under the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub blobs: Vec<Descriptor>,
    pub children: Vec<Doc>,
    pub top: Doc,
    pub notice: Option<String>,
}

impl Images {
    /// Pushes the image named `name` (`NAME[:TAG]`, as tagged here) to its registry and
    /// returns the digest its tag now points to there.
    pub async fn push(
        self: &Arc<Self>,
        name: &str,
        auth: Option<&AuthInput>,
        progress: Option<PushFn>,
    ) -> Result<Pushed, ImageError> {
        let reference = Reference::parse(name)?;
        // The image and its blobs stay put (no removal, no GC) while they are read.
        let _no_gc = self.gc_lock.read().await;
        let record = self
            .resolve(name)
            .filter(|r| names(r, &reference))
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        let credentials = self.credentials_for(&reference, auth)?;
        let report = move |event: PushEvent| {
            if let Some(hook) = &progress {
                hook(event);
            }
        };
        let content = &self.content;
        let plan = plan(&record, |d| content.read(d).ok(), |d| content.contains(d))?;
        if let Some(notice) = &plan.notice {
            report(PushEvent::Notice(notice.clone()));
        }
        let mount_from = mount_source(&record, &reference);
        let session = self
            .registry
            .push_session(&reference, &credentials, mount_from.as_deref())?;
        for blob in &plan.blobs {
            report(blob_event(blob, 0, BlobState::Waiting, None));
        }
        let permits = Arc::new(Semaphore::new(self.options.max_concurrent_downloads.max(1)));
        let jobs = plan.blobs.iter().map(|blob| {
            let permits = permits.clone();
            let session = &session;
            let report = &report;
            let from = mount_from.as_deref();
            async move {
                let _permit = permits
                    .acquire()
                    .await
                    .map_err(|e| ImageError::Internal(e.to_string()))?;
                self.push_blob(session, blob, from, report).await
            }
        });
        try_join_all(jobs).await?;
        for doc in &plan.children {
            session
                .put_manifest(doc.digest.as_str(), &doc.media_type, Bytes::from(doc.bytes.clone()))
                .await?;
        }
        let tag = reference.manifest_reference();
        let digest = session
            .put_manifest(&tag, &plan.top.media_type, Bytes::from(plan.top.bytes.clone()))
            .await?;
        // The image now has a digest in this repository too (a later push elsewhere on the
        // registry can mount from it).
        self.record_named(record, &[], &[reference.with_digest(&digest)])?;
        tracing::info!(image = %reference, %digest, "pushed");
        Ok(Pushed {
            reference: reference.to_string(),
            tag,
            digest,
            size: plan.top.bytes.len() as u64,
        })
    }

    async fn push_blob(
        &self,
        session: &PushSession<'_>,
        blob: &Descriptor,
        from: Option<&str>,
        report: &(dyn Fn(PushEvent) + Send + Sync),
    ) -> Result<(), ImageError> {
        let digest = Digest::parse(&blob.digest)?;
        let size = blob.size.max(0) as u64;
        if !self.content.contains(&digest) {
            return Err(ImageError::Internal(format!(
                "blob {digest} of the image is not in the content store (pull the image again)"
            )));
        }
        self.content.check_size(&digest, size)?;
        if session.blob_exists(&digest).await? {
            report(blob_event(blob, size, BlobState::Exists, None));
            return Ok(());
        }
        let location = match from {
            Some(from) => match session.mount(&digest, from).await? {
                Mount::Mounted => {
                    report(blob_event(blob, size, BlobState::Mounted, Some(from)));
                    return Ok(());
                }
                Mount::Upload(location) => location,
            },
            None => session.start_upload().await?,
        };
        report(blob_event(blob, 0, BlobState::Pushing, None));
        let path = self.content.path(&digest);
        let sent = |done: u64| report(blob_event(blob, done, BlobState::Pushing, None));
        session.upload(location, &digest, size, &path, &sent).await?;
        report(blob_event(blob, size, BlobState::Pushed, None));
        Ok(())
    }
}

/// Whether `record` carries `reference` as a tag or digest (not merely an id that parses
/// as a name).
fn names(record: &ImageRecord, reference: &Reference) -> bool {
    match (&reference.digest, reference.tagged()) {
        (Some(d), _) => record.repo_digests.contains(&reference.with_digest(d)),
        (None, Some(tagged)) => record.repo_tags.contains(&tagged),
        (None, None) => false,
    }
}

/// Another repository on the same registry that has the image (a digest recorded for it),
/// to mount blobs from.
pub fn mount_source(record: &ImageRecord, target: &Reference) -> Option<String> {
    record
        .repo_digests
        .iter()
        .filter_map(|d| Reference::parse(d).ok())
        .find(|r| r.registry == target.registry && r.repository != target.repository)
        .map(|r| r.repository)
}

fn blob_event(blob: &Descriptor, done: u64, state: BlobState, from: Option<&str>) -> PushEvent {
    PushEvent::Blob {
        digest: blob.digest.clone(),
        total: blob.size.max(0) as u64,
        done,
        state,
        from: from.map(str::to_string),
    }
}

/// Decides what to send for `record`, reading stored documents with `read` and asking
/// whether blobs are stored with `has`.
pub fn plan(
    record: &ImageRecord,
    read: impl Fn(&Digest) -> Option<Vec<u8>>,
    has: impl Fn(&Digest) -> bool,
) -> Result<Plan, ImageError> {
    let manifest_digest = Digest::parse(&record.manifest)?;
    let bytes = read(&manifest_digest)
        .ok_or_else(|| ImageError::Internal(format!("manifest {manifest_digest} of {} is not stored", record.id)))?;
    let platform = parse_manifest(&manifest_digest, &bytes)?;
    let platform_doc = Doc {
        digest: manifest_digest.clone(),
        media_type: manifest_media_type(&platform, ""),
        bytes,
    };
    let single = |notice| Plan {
        blobs: blobs_of(std::slice::from_ref(&platform)),
        children: Vec::new(),
        top: platform_doc.clone(),
        notice,
    };
    if record.target.is_empty() || record.target == record.manifest {
        return Ok(single(None));
    }
    let target = Digest::parse(&record.target)?;
    let Some(index_bytes) = read(&target) else {
        return Ok(single(Some(format!(
            "the image index {target} is not stored; pushing the platform manifest {manifest_digest} under the tag"
        ))));
    };
    let index = match Document::parse("", &index_bytes) {
        Ok(Document::Index(index)) => index,
        _ => return Err(ImageError::Invalid(format!("{target} is not a readable image index"))),
    };
    let mut children = Vec::new();
    let mut manifests = Vec::new();
    for desc in &index.manifests {
        let digest = Digest::parse(&desc.digest)?;
        let stored = read(&digest).and_then(|b| parse_manifest(&digest, &b).ok().map(|m| (b, m)));
        match stored {
            Some((b, m)) if blobs_of(std::slice::from_ref(&m)).iter().all(|d| {
                Digest::parse(&d.digest).is_ok_and(|d| has(&d))
            }) =>
            {
                children.push(Doc {
                    digest,
                    media_type: manifest_media_type(&m, &desc.media_type),
                    bytes: b,
                });
                manifests.push(m);
            }
            _ => {
                return Ok(single(Some(format!(
                    "only some platforms of the image index {target} are stored; pushing the {}/{} manifest {manifest_digest} under the tag",
                    record.os, record.architecture
                ))))
            }
        }
    }
    let media_type = index
        .media_type
        .clone()
        .unwrap_or_else(|| manifest::OCI_INDEX.to_string());
    Ok(Plan {
        blobs: blobs_of(&manifests),
        children,
        top: Doc {
            digest: target,
            media_type,
            bytes: index_bytes,
        },
        notice: None,
    })
}

fn parse_manifest(digest: &Digest, bytes: &[u8]) -> Result<Manifest, ImageError> {
    match Document::parse("", bytes) {
        Ok(Document::Manifest(m)) => Ok(m),
        Ok(Document::Index(_)) => Err(ImageError::Invalid(format!(
            "{digest}: an index where a manifest belongs"
        ))),
        Err(e) => Err(ImageError::Invalid(format!("{digest}: {e}"))),
    }
}

/// The media type to PUT a manifest with: its own, else the one its index names, else
/// what its config's media type implies.
fn manifest_media_type(m: &Manifest, from_index: &str) -> String {
    if let Some(t) = m.media_type.as_deref().filter(|t| !t.is_empty()) {
        return t.to_string();
    }
    if !from_index.is_empty() {
        return from_index.to_string();
    }
    if m.config.media_type.starts_with("application/vnd.docker.") {
        manifest::DOCKER_MANIFEST.to_string()
    } else {
        manifest::OCI_MANIFEST.to_string()
    }
}

/// Every layer and config blob of `manifests`, each once, layers first.
fn blobs_of(manifests: &[Manifest]) -> Vec<Descriptor> {
    let mut seen = HashSet::new();
    manifests
        .iter()
        .flat_map(|m| m.layers.iter().chain(std::iter::once(&m.config)))
        .filter(|d| seen.insert(d.digest.clone()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn blob(name: &str) -> Digest {
        Digest::of(name.as_bytes())
    }

    fn manifest_json(config: &str, layers: &[&str]) -> Vec<u8> {
        let desc =
            |d: &str, t: &str| serde_json::json!({"mediaType": t, "digest": blob(d).to_string(), "size": d.len()});
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": desc(config, "application/vnd.oci.image.config.v1+json"),
            "layers": layers.iter().map(|l| desc(l, "application/vnd.oci.image.layer.v1.tar+gzip")).collect::<Vec<_>>(),
        }))
        .expect("json")
    }

    struct Store(HashMap<Digest, Vec<u8>>);

    impl Store {
        fn doc(&mut self, bytes: Vec<u8>) -> Digest {
            let d = Digest::of(&bytes);
            self.0.insert(d.clone(), bytes);
            d
        }
        fn blobs(&mut self, names: &[&str]) {
            for n in names {
                self.0.insert(blob(n), n.as_bytes().to_vec());
            }
        }
        fn plan(&self, record: &ImageRecord) -> Result<Plan, ImageError> {
            plan(record, |d| self.0.get(d).cloned(), |d| self.0.contains_key(d))
        }
    }

    fn index_json(children: &[&Digest]) -> Vec<u8> {
        let entries: Vec<_> = children
            .iter()
            .map(|d| serde_json::json!({"mediaType": manifest::OCI_MANIFEST, "digest": d.to_string(), "size": 1}))
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries}),
        )
        .expect("json")
    }

    #[test]
    fn a_plain_manifest_sends_its_layers_and_config_then_itself() {
        let mut store = Store(HashMap::new());
        store.blobs(&["cfg", "l1", "l2"]);
        let m = store.doc(manifest_json("cfg", &["l1", "l2", "l1"]));
        let mut record = ImageRecord::bare("sha256:x");
        record.manifest = m.to_string();
        record.target = m.to_string();
        let plan = store.plan(&record).expect("plan");
        let blobs: Vec<_> = plan.blobs.iter().map(|d| d.digest.clone()).collect();
        assert_eq!(
            blobs,
            vec![blob("l1").to_string(), blob("l2").to_string(), blob("cfg").to_string()]
        );
        assert_eq!(plan.top.digest, m);
        assert_eq!(plan.top.media_type, manifest::OCI_MANIFEST);
        assert!(plan.children.is_empty() && plan.notice.is_none());
    }

    #[test]
    fn a_whole_index_goes_up_as_an_index_a_partial_one_as_its_platform_manifest() {
        let mut store = Store(HashMap::new());
        store.blobs(&["cfg-a", "la", "cfg-b", "lb"]);
        let a = store.doc(manifest_json("cfg-a", &["la"]));
        let b = store.doc(manifest_json("cfg-b", &["lb"]));
        let index = store.doc(index_json(&[&a, &b]));
        let mut record = ImageRecord::bare("sha256:x");
        record.manifest = a.to_string();
        record.target = index.to_string();
        let plan = store.plan(&record).expect("plan");
        assert_eq!(plan.top.digest, index);
        assert_eq!(plan.top.media_type, manifest::OCI_INDEX);
        assert_eq!(
            plan.children.iter().map(|c| c.digest.clone()).collect::<Vec<_>>(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(plan.blobs.len(), 4);
        assert!(plan.notice.is_none());

        // The other platform's layer is missing: only the platform manifest, said so.
        store.0.remove(&blob("lb"));
        let plan = store.plan(&record).expect("plan");
        assert_eq!(plan.top.digest, a);
        assert!(plan.children.is_empty());
        assert_eq!(plan.blobs.len(), 2);
        assert!(
            plan.notice
                .as_deref()
                .is_some_and(|n| n.contains("only some platforms")),
            "{:?}",
            plan.notice
        );

        // Its manifest missing: the same.
        store.0.remove(&b);
        assert_eq!(store.plan(&record).expect("plan").top.digest, a);
    }

    #[test]
    fn an_unstored_manifest_is_an_error() {
        let store = Store(HashMap::new());
        let mut record = ImageRecord::bare("sha256:x");
        record.manifest = blob("gone").to_string();
        assert!(store.plan(&record).is_err());
    }

    #[test]
    fn mounts_come_from_another_repository_of_the_same_registry() {
        let mut record = ImageRecord::bare("sha256:x");
        let d = blob("m");
        record.repo_digests = vec![
            format!("other.example/base/img@{d}"),
            format!("reg.example:5000/team/app@{d}"),
            format!("reg.example:5000/base/img@{d}"),
        ];
        let target = Reference::parse("reg.example:5000/team/app:v1").expect("ref");
        assert_eq!(mount_source(&record, &target).as_deref(), Some("base/img"));
        let elsewhere = Reference::parse("third.example/team/app:v1").expect("ref");
        assert_eq!(mount_source(&record, &elsewhere), None);
    }

    #[test]
    fn only_a_name_the_image_carries_is_pushed() {
        let mut record = ImageRecord::bare("sha256:x");
        record.repo_tags = vec!["reg.example/team/app:v1".into()];
        assert!(names(
            &record,
            &Reference::parse("reg.example/team/app:v1").expect("ref")
        ));
        assert!(!names(&record, &Reference::parse("reg.example/team/app").expect("ref")));
    }
}
