//! Lazy pulling of eStargz layers: a layer is opened from its registry by its footer and
//! TOC alone (the TOC checked against the manifest's digest), its file tree served at once,
//! and each chunk fetched by a closed byte range when it is first read, checked against
//! the TOC before anyone sees it.

mod fs;
mod remote;

#[cfg(test)]
mod fs_tests;
#[cfg(test)]
mod tests;

pub use fs::{BlobSource, ChunkSource, TreeFs};
pub use remote::{LazyError, RemoteLayer, RemoteSource};
