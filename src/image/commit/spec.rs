//! What a commit takes, and what it writes.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::image::reference::Digest;

/// What to commit.
#[derive(Debug, Clone, Default)]
pub struct CommitSpec {
    /// The image the changes apply to (an id); empty: none (`FROM scratch`).
    pub base: String,
    /// The directory of changes, overlayfs upper-directory form; `None`: a new config only.
    pub upper: Option<PathBuf>,
    /// `NAME[:TAG]` for the new image; empty: untagged.
    pub reference: String,
    pub author: String,
    pub message: String,
    /// Dockerfile instructions, `commit -c`.
    pub changes: Vec<String>,
    /// The run settings to record before the changes (a container's): its own variables
    /// (over the base's), working directory, and the entrypoint and command it ran with
    /// (`None`: the base's).
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// The whole `config` object of the new image config (a build's): replaces the base's,
    /// and `env` .. `cmd` and `changes` are not used.
    pub run_config: Option<Map<String, Value>>,
    /// History entries that made no layer (a build's metadata steps), before the layer's.
    pub history: Vec<Value>,
    /// The build cache key to record with the image (empty: none).
    pub cache_key: String,
    /// Compress the layer with zstd (an OCI manifest then), else gzip.
    pub zstd: bool,
}

/// The layer written: its blob's digest and size, and its diff id.
pub(super) struct Written {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub zstd: bool,
}
