//! How a container operation fails, in domain terms (the CRI edge maps each kind to its
//! gRPC code once).

use super::spec_input::SpecError;
use crate::runtime::shim::ShimError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("container name {name} is reserved by container {id}")]
    NameTaken { name: String, id: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Shim(#[from] ShimError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("container {id}: {message}")]
    Setup { id: String, message: String },
}

/// A [`ContainerError::Setup`] maker for container `id`.
pub(crate) fn setup_err(id: &str) -> impl Fn(String) -> ContainerError + '_ {
    move |message| ContainerError::Setup {
        id: id.to_string(),
        message,
    }
}
