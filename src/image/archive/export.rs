//! Writing an archive. The plan is made under the garbage-collection lock with every blob
//! opened, so a removal racing the export cannot pull a blob from under it; the tar is then
//! written from those open files in chunks (no layer is held in memory).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};

use serde_json::json;

use super::{blob_path, ArchiveFormat, DockerEntry, CONTAINERD_NAME, DOCKER_MANIFEST_JSON, DOCKER_REPOSITORIES};
use super::{OCI_INDEX_JSON, OCI_LAYOUT, REF_NAME};
use crate::image::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::image::reference::{Digest, Reference};
use crate::image::{ImageError, ImageRecord, Images};

enum Source {
    Bytes(Vec<u8>),
    Blob(File, u64),
}

/// What an archive will hold, in order.
pub struct ExportPlan {
    entries: Vec<(String, Source)>,
}

impl ExportPlan {
    /// Bytes of member data the archive will carry.
    pub fn data_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|(_, s)| match s {
                Source::Bytes(b) => b.len() as u64,
                Source::Blob(_, n) => *n,
            })
            .sum()
    }
}

/// Splits a normalised `name:tag` into its repository and tag.
fn split_tag(tagged: &str) -> (&str, &str) {
    match tagged.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (tagged, "latest"),
    }
}

impl Images {
    /// Plans the archive of `names` (ids, tags or digests). An image named by tag carries
    /// that tag only; one named otherwise carries all of its tags.
    pub async fn export_plan(&self, names: &[String], format: ArchiveFormat) -> Result<ExportPlan, ImageError> {
        if names.is_empty() {
            return Err(ImageError::Invalid("name at least one image to export".into()));
        }
        let _no_gc = self.gc_lock.read().await;
        let mut chosen: Vec<(ImageRecord, Vec<String>)> = Vec::new();
        for name in names {
            let record = self.resolve(name).ok_or_else(|| ImageError::NotFound(name.clone()))?;
            let by_tag = Reference::parse(name)
                .ok()
                .and_then(|r| r.tagged().filter(|_| r.digest.is_none()))
                .filter(|t| record.repo_tags.contains(t));
            let tags = by_tag.map_or_else(|| record.repo_tags.clone(), |t| vec![t]);
            match chosen.iter_mut().find(|(r, _)| r.id == record.id) {
                Some((_, have)) => {
                    for t in tags {
                        if !have.contains(&t) {
                            have.push(t);
                        }
                    }
                }
                None => chosen.push((record, tags)),
            }
        }
        let mut plan = ExportPlan { entries: Vec::new() };
        let mut seen = HashSet::new();
        match format {
            ArchiveFormat::Docker => self.plan_docker(&chosen, &mut plan, &mut seen)?,
            ArchiveFormat::Oci => self.plan_oci(&chosen, &mut plan, &mut seen)?,
        }
        Ok(plan)
    }

    fn add_blob(&self, digest: &str, plan: &mut ExportPlan, seen: &mut HashSet<String>) -> Result<(), ImageError> {
        let digest = Digest::parse(digest)?;
        if !seen.insert(digest.to_string()) {
            return Ok(());
        }
        let path = self.content.path(&digest);
        let missing = |e: io::Error| ImageError::Internal(format!("blob {digest} is not in the content store: {e}"));
        let file = File::open(&path).map_err(missing)?;
        let size = file.metadata().map_err(missing)?.len();
        plan.entries.push((blob_path(&digest), Source::Blob(file, size)));
        Ok(())
    }

    fn plan_docker(
        &self,
        chosen: &[(ImageRecord, Vec<String>)],
        plan: &mut ExportPlan,
        seen: &mut HashSet<String>,
    ) -> Result<(), ImageError> {
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (record, tags) in chosen {
            self.add_blob(&record.id, plan, seen)?;
            let mut layers = Vec::new();
            for layer in &record.layers {
                self.add_blob(layer, plan, seen)?;
                layers.push(blob_path(&Digest::parse(layer)?));
            }
            if let Some(top) = record.layers.last() {
                for tag in tags {
                    let (repo, t) = split_tag(tag);
                    let top = top.strip_prefix("sha256:").unwrap_or(top);
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(t.to_string(), top.to_string());
                }
            }
            manifest.push(DockerEntry {
                config: blob_path(&Digest::parse(&record.id)?),
                repo_tags: Some(tags.clone()),
                layers,
            });
        }
        plan.entries
            .push((DOCKER_MANIFEST_JSON.into(), Source::Bytes(json_bytes(&manifest)?)));
        plan.entries
            .push((DOCKER_REPOSITORIES.into(), Source::Bytes(json_bytes(&repositories)?)));
        Ok(())
    }

    fn plan_oci(
        &self,
        chosen: &[(ImageRecord, Vec<String>)],
        plan: &mut ExportPlan,
        seen: &mut HashSet<String>,
    ) -> Result<(), ImageError> {
        plan.entries.push((
            OCI_LAYOUT.into(),
            Source::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ));
        let mut manifests = Vec::new();
        for (record, tags) in chosen {
            let digest = Digest::parse(&record.manifest)?;
            let bytes = self.content.read(&digest)?;
            let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| OCI_MANIFEST.to_string());
            self.add_blob(&record.manifest, plan, seen)?;
            self.add_blob(&record.id, plan, seen)?;
            for layer in &record.layers {
                self.add_blob(layer, plan, seen)?;
            }
            let descriptor = |annotations: serde_json::Value| {
                json!({
                    "mediaType": media_type,
                    "digest": record.manifest,
                    "size": bytes.len(),
                    "annotations": annotations,
                })
            };
            if tags.is_empty() {
                manifests.push(descriptor(json!({})));
            }
            for tag in tags {
                let (_, t) = split_tag(tag);
                manifests.push(descriptor(json!({ CONTAINERD_NAME: tag, REF_NAME: t })));
            }
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        plan.entries
            .push((OCI_INDEX_JSON.into(), Source::Bytes(json_bytes(&index)?)));
        Ok(())
    }
}

fn json_bytes<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(value).map_err(|e| ImageError::Internal(format!("encoding archive JSON: {e}")))
}

fn header(path: &str, size: u64, kind: tar::EntryType) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    Ok(h)
}

/// Writes the planned archive to `out` (blocking).
pub fn write_archive<W: Write>(plan: ExportPlan, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        builder.append(&header(dir, 0, tar::EntryType::Directory)?, io::empty())?;
    }
    for (path, source) in plan.entries {
        match source {
            Source::Bytes(bytes) => {
                builder.append(&header(&path, bytes.len() as u64, tar::EntryType::Regular)?, &bytes[..])?;
            }
            Source::Blob(file, size) => {
                let mut reader = io::BufReader::with_capacity(256 << 10, file).take(size);
                builder.append(&header(&path, size, tar::EntryType::Regular)?, &mut reader)?;
            }
        }
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_at_the_last_colon_after_the_last_slash() {
        assert_eq!(
            split_tag("docker.io/library/busybox:1.36"),
            ("docker.io/library/busybox", "1.36")
        );
        assert_eq!(split_tag("localhost:5000/app:v1"), ("localhost:5000/app", "v1"));
        assert_eq!(split_tag("localhost:5000/app"), ("localhost:5000/app", "latest"));
    }
}
