//! Unpacking of OCI image layers into overlayfs lower directories.
//!
//! [`unpack_layer`] reads an already-decompressed layer tar and recreates it
//! in an empty directory, turning OCI whiteouts into their overlayfs form.
//! Layers are untrusted input, so the unpacker never builds host paths:
//!
//! * `dest` is opened once; every later operation is an `*at` call relative
//!   to a directory descriptor under it.
//! * Entry paths must be relative and free of `..`. The parent directory of
//!   an entry is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`:
//!   symlinks planted by the layer are followed only while they stay inside
//!   `dest`; a path that crosses an absolute symlink, or one that climbs out
//!   with `..`, is refused with [`UnpackError::Escape`]. (So an absolute
//!   symlink such as `var/run -> /run` cannot be used as a parent by later
//!   entries of the same layer; that is deliberate.)
//! * The final component is created with `O_CREAT|O_EXCL|O_NOFOLLOW`,
//!   `mkdirat`, `symlinkat`, `mknodat` or `linkat` (without
//!   `AT_SYMLINK_FOLLOW`) and never followed afterwards.
//! * A later entry replaces an earlier one with the same name; a directory
//!   replaced by a non-directory is removed recursively through descriptors.
//!
//! On error the directory is left half-written: the caller must remove it.

#![deny(unsafe_code)]

pub(crate) mod path;
mod tree;
mod unpacker;
mod whiteout;

pub use unpacker::unpack_layer;

use std::io;

/// Bounds on what one layer may contain, as a guard against decompression
/// bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Most tar entries (of any type) the layer may have.
    pub max_entries: u64,
    /// Most bytes of entry content (sum of the entry sizes in the tar).
    pub max_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_bytes: 64 << 30,
        }
    }
}

/// What an unpack created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Inodes created (files, directories, symlinks, devices, whiteouts;
    /// hard links create none).
    pub inodes: u64,
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A hostile entry: it would reach outside the destination.
    #[error("refusing layer entry {path:?}: {reason}")]
    Escape {
        /// Entry path as written in the tar.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The layer has too many entries or too much content.
    #[error("layer exceeds unpack limits: {0}")]
    Limit(String),
    /// A filesystem operation for an entry failed.
    #[error("unpacking layer entry {path:?}: {source}")]
    Io {
        /// Entry path as written in the tar (or the destination).
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The tar stream is malformed or could not be read.
    #[error("malformed layer tar: {0}")]
    Tar(#[source] io::Error),
    /// The disk (or quota) is full: storing the compressed blob or the files failed.
    #[error("writing the layer: {0}")]
    NoSpace(#[source] io::Error),
    /// An entry type that layers must not use.
    #[error("layer entry {path:?} has unsupported type {kind}")]
    Unsupported {
        /// Entry path as written in the tar.
        path: String,
        /// The entry type.
        kind: String,
    },
    /// A hard link whose target was not unpacked before it.
    #[error("hard link {path:?} points to {target:?}, which does not exist earlier in the layer")]
    MissingLinkTarget {
        /// Entry path as written in the tar.
        path: String,
        /// Link target as written in the tar.
        target: String,
    },
}

impl UnpackError {
    /// True for hostile entries that were rejected (path escapes).
    pub fn is_escape(&self) -> bool {
        matches!(self, UnpackError::Escape { .. })
    }
}

/// Whether a layer's xattr is overlayfs metadata (`trusted.overlay.*`, `user.overlay.*`:
/// redirects, metacopy, origins, opaque markers): a layer that brings its own is forging
/// it, and it is never applied.
pub fn forged_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn escape(path: &str, reason: &'static str) -> UnpackError {
    UnpackError::Escape {
        path: path.to_owned(),
        reason,
    }
}

fn io_err(path: &str) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_owned(),
        source,
    }
}

fn tar_err(path: &str, what: &str, e: io::Error) -> UnpackError {
    UnpackError::Tar(io::Error::new(e.kind(), format!("entry {path:?}: {what}: {e}")))
}

#[cfg(test)]
mod tests;
