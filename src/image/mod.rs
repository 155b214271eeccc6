//! Images: pulling from registries, the content store, unpacking into snapshots, and the
//! records of what is on the node (tags, digests, ids).

pub mod archive;
pub mod auth;
pub mod commit;
pub mod content;
mod convert;
mod download;
pub mod estargz;
pub mod history;
pub mod hosts;
pub mod layer;
pub mod lazy;
mod leases;
mod login;
pub mod manifest;
pub mod progress;
mod pull;
pub mod push;
pub mod reference;
pub mod registry;
mod service;
mod signatures;
pub mod trust;
pub mod unpack;

pub use service::{ImageError, Images, ImagesOptions};

use serde::{Deserialize, Serialize};

use manifest::RunConfig;

/// An image on this node. Its id is the digest of its config, as in Docker and containerd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Bytes of the image's blobs: manifest, config and compressed layers.
    pub size: u64,
    /// The top-level document pulled: an index, or the manifest itself.
    pub target: String,
    /// The platform manifest.
    pub manifest: String,
    pub layers: Vec<String>,
    pub diff_ids: Vec<String>,
    pub chain_ids: Vec<String>,
    pub run_config: RunConfig,
    pub os: String,
    pub architecture: String,
    /// Unix time in nanoseconds when the image was pulled.
    pub pulled_at: i64,
    pub pinned: bool,
    /// What the signature policy decided at the last pull; None without a policy (and
    /// for images loaded from archives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<trust::Verdict>,
    /// For an image a build step made: the step's cache key (parent, instruction, inputs);
    /// empty for pulled, loaded and committed images.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub build_cache: String,
}

impl crate::store::Record for ImageRecord {
    const TABLE: crate::store::Table = crate::store::Table::Images;

    fn id(&self) -> &str {
        &self.id
    }

    /// Images hold no reserved name: they are named by tags, which the image service
    /// moves between images itself.
    fn reservation(&self) -> String {
        self.id.clone()
    }

    fn created_at(&self) -> i64 {
        self.pulled_at
    }
}

/// The documents of an image made on this node (committed, built or converted).
pub(crate) struct MadeHere<'a> {
    pub config: (&'a reference::Digest, &'a manifest::ImageConfig),
    pub manifest: &'a reference::Digest,
    /// Bytes of its blobs: manifest, config and compressed layers.
    pub size: u64,
    pub layers: Vec<String>,
    pub diff_ids: &'a [reference::Digest],
    pub build_cache: String,
}

impl ImageRecord {
    /// The record of an image made here, unnamed.
    pub(crate) fn made_here(m: MadeHere<'_>) -> ImageRecord {
        let (id, config) = m.config;
        ImageRecord {
            id: id.to_string(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            size: m.size,
            target: m.manifest.to_string(),
            manifest: m.manifest.to_string(),
            layers: m.layers,
            diff_ids: m.diff_ids.iter().map(|d| d.to_string()).collect(),
            chain_ids: crate::snapshot::chain_ids(m.diff_ids)
                .iter()
                .map(|d| d.to_string())
                .collect(),
            run_config: config.config.clone().unwrap_or_default(),
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            pulled_at: crate::clock::now_nanos(),
            pinned: false,
            trust: None,
            build_cache: m.build_cache,
        }
    }

    /// `(uid, username)` of the image's `User`: a number is a uid, anything else a name;
    /// a `:group` suffix is ignored here.
    pub fn user(&self) -> (Option<i64>, String) {
        let user = self.run_config.user.as_deref().unwrap_or("");
        let name = user.split(':').next().unwrap_or("");
        match name.parse::<i64>() {
            Ok(uid) => (Some(uid), String::new()),
            Err(_) => (None, name.to_string()),
        }
    }
}

#[cfg(test)]
impl ImageRecord {
    /// An image with this id and nothing else (for tests).
    pub(crate) fn bare(id: &str) -> ImageRecord {
        ImageRecord {
            id: id.to_string(),
            repo_tags: vec![],
            repo_digests: vec![],
            size: 0,
            target: String::new(),
            manifest: String::new(),
            layers: vec![],
            diff_ids: vec![],
            chain_ids: vec![],
            run_config: RunConfig::default(),
            os: "linux".into(),
            architecture: "amd64".into(),
            pulled_at: 0,
            pinned: false,
            trust: None,
            build_cache: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_user(user: Option<&str>) -> ImageRecord {
        let mut image = ImageRecord::bare("");
        image.run_config.user = user.map(Into::into);
        image
    }

    #[test]
    fn image_user_forms() {
        assert_eq!(with_user(Some("1002")).user(), (Some(1002), String::new()));
        assert_eq!(with_user(Some("1003:1004")).user(), (Some(1003), String::new()));
        assert_eq!(with_user(Some("www-data")).user(), (None, "www-data".into()));
        assert_eq!(with_user(Some("www-data:1004")).user(), (None, "www-data".into()));
        assert_eq!(with_user(None).user(), (None, String::new()));
        assert_eq!(with_user(Some("")).user(), (None, String::new()));
    }
}
