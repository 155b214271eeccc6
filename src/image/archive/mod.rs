//! Image archives: `docker save` tars (`manifest.json`, config JSON, layer tars, legacy
//! `repositories`) and OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`),
//! written straight from the content store and read back with the checks of a pull.

mod export;
mod import;
mod index;

pub use export::{write_archive, ExportPlan};
pub use index::{ArchiveIndex, Member};

/// Which layout an archive uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Docker,
    Oci,
}

/// Paths and names shared by both directions.
pub(crate) const OCI_LAYOUT: &str = "oci-layout";
pub(crate) const OCI_INDEX_JSON: &str = "index.json";
pub(crate) const DOCKER_MANIFEST_JSON: &str = "manifest.json";
pub(crate) const DOCKER_REPOSITORIES: &str = "repositories";
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
pub(crate) use super::manifest::OCI_CONFIG;

/// `blobs/sha256/<hex>`: where both formats keep a blob.
pub(crate) fn blob_path(digest: &super::reference::Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// One image of a `docker save` `manifest.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

#[cfg(test)]
mod tests;
