//! What a registry request can fail with, and which failures a mirror's fallback retries.

use crate::image::hosts::HostsError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("registry request {url} failed: HTTP {status}: {detail}")]
    Http { url: String, status: u16, detail: String },
    #[error("registry request {url} failed: {message}")]
    Transport { url: String, message: String },
    #[error("registry configuration: {0}")]
    Hosts(#[from] HostsError),
    #[error("{0}")]
    Protocol(String),
    /// A response over the size limit for what was asked (a manifest, a config).
    #[error("{0}")]
    TooLarge(String),
    /// The registry answered a range request with the whole blob.
    #[error("{0}")]
    NoRanges(String),
}

impl RegistryError {
    /// Whether trying the next endpoint (a mirror's fallback) makes sense.
    pub(super) fn try_next(&self) -> bool {
        match self {
            RegistryError::Transport { .. } | RegistryError::NotFound(_) | RegistryError::Unauthorized(_) => true,
            RegistryError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 404,
            RegistryError::Hosts(_)
            | RegistryError::Protocol(_)
            | RegistryError::TooLarge(_)
            | RegistryError::NoRanges(_) => false,
        }
    }
}
