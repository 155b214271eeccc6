//! How a build fails.

use crate::container::error::ContainerError;
use crate::image::ImageError;
use crate::sandbox::SandboxError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile, the options or the context are wrong.
    #[error("{0}")]
    Invalid(String),
    /// A step ran and failed (a RUN command's exit code, a COPY source missing).
    #[error("{step}: {message}")]
    Step { step: String, message: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The client went away.
    #[error("the build was cancelled")]
    Cancelled,
    #[error("{0}")]
    Internal(String),
}

impl BuildError {
    pub(super) fn io(what: &str) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
        move |e| BuildError::Internal(format!("{what}: {e}"))
    }
}
