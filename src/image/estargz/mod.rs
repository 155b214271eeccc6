//! eStargz layers: gzip tar layers any runtime can pull, in which every regular file's
//! contents (and every chunk of a large file) start a gzip member of their own and a table
//! of contents (`stargz.index.json`, the last tar entry) records each entry with the
//! offset of its member and the digest of its contents. A reader that has the manifest's
//! `containerd.io/snapshot/stargz/toc.digest` for the layer can verify the TOC, and
//! through it every chunk it fetches on its own, without the rest of the blob.
//!
//! The blob ends with a 51-byte footer: an empty gzip member whose extra field holds
//! `%016xSTARGZ`, the offset of the TOC's member.

mod read;
mod tree;
mod write;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tree_tests;

pub use read::{chunk, footer_offset, inflate, read_toc, TocError, MAX_CHUNK, MAX_TOC};
pub use tree::{Chunk, Kind, Node, Tree, OPAQUE_XATTR, ROOT};
pub use write::{write, Converted};

use serde::{Deserialize, Serialize};

/// The TOC's tar entry name.
pub const TOC_NAME: &str = "stargz.index.json";
/// The layer descriptor annotation holding the TOC's digest.
pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";
/// The layer descriptor annotation holding the size of the uncompressed tar.
pub const UNCOMPRESSED_SIZE_ANNOTATION: &str = "io.containers.estargz.uncompressed-size";
/// The landmark entry written first when no file is marked for prefetching.
pub const NO_PREFETCH_LANDMARK: &str = ".no.prefetch.landmark";
/// The landmark entry that ends the files to prefetch.
pub const PREFETCH_LANDMARK: &str = ".prefetch.landmark";
/// Footer length in bytes.
pub const FOOTER_SIZE: usize = 51;
/// Regular files larger than this are split into chunks of this size.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;

/// The table of contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Toc {
    pub version: u32,
    pub entries: Vec<TocEntry>,
}

/// One tar entry, or one chunk after the first of a regular file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TocEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub modtime: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_name: String,
    #[serde(default)]
    pub mode: u32,
    #[serde(default)]
    pub uid: u64,
    #[serde(default)]
    pub gid: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dev_major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dev_minor: u64,
    /// Extended attributes, values base64-encoded.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub xattrs: std::collections::BTreeMap<String, String>,
    /// Digest of a regular file's whole contents.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Offset in the blob of the gzip member holding this file's or chunk's contents.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunk_offset: u64,
    /// The chunk's size; 0 for the last chunk of a file (it runs to the file's end).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunk_size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chunk_digest: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
