//! Errors of the NRI runtime side.

use std::time::Duration;

/// Why an NRI operation failed. Errors that come from one plugin name it.
#[derive(Debug, thiserror::Error)]
pub enum NriError {
    /// Setting up the socket or starting a plugin failed.
    #[error("NRI: {0}")]
    Setup(String),
    /// The plugin answered the call with an error status.
    #[error("NRI plugin {plugin}: {method} failed: {message}")]
    Plugin {
        plugin: String,
        method: String,
        message: String,
        /// The gRPC status code of the reply (0 when the reply was undecodable).
        code: i32,
    },
    /// The plugin did not answer within the timeout; it has been dropped.
    #[error("NRI plugin {plugin}: {method} timed out after {timeout:?} (plugin dropped)")]
    Timeout {
        plugin: String,
        method: String,
        timeout: Duration,
    },
    /// The plugin's connection closed or broke; it has been dropped.
    #[error("NRI plugin {plugin}: {method}: connection lost: {message} (plugin dropped)")]
    Closed {
        plugin: String,
        method: String,
        message: String,
    },
    /// Two plugins adjusted the same thing of a container.
    #[error("NRI: plugins {first} and {second} both adjust {what}")]
    Conflict {
        what: String,
        first: String,
        second: String,
    },
    /// A validating plugin rejected the merged adjustment.
    #[error("NRI plugin {plugin} rejected the adjustment of container {container}: {reason}")]
    Rejected {
        plugin: String,
        container: String,
        reason: String,
    },
    /// An adjustment could not be applied to the OCI spec.
    #[error("NRI: invalid adjustment: {0}")]
    Invalid(String),
}

impl NriError {
    /// The plugin the error comes from, if one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            NriError::Plugin { plugin, .. }
            | NriError::Timeout { plugin, .. }
            | NriError::Closed { plugin, .. }
            | NriError::Rejected { plugin, .. } => Some(plugin),
            _ => None,
        }
    }
}

/// Result of NRI operations.
pub type Result<T, E = NriError> = std::result::Result<T, E>;
