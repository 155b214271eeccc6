//! Berth's errors, gathered from each domain, and their one mapping to gRPC status codes.

use tonic::{Code, Status};

use crate::container::lifecycle::ContainerError;
use crate::container::spec::SpecError;
use crate::image::content::ContentError;
use crate::image::layer::LayerError;
use crate::image::registry::RegistryError;
use crate::image::unpack::UnpackError;
use crate::image::ImageError;
use crate::network::NetworkError;
use crate::runtime::shim::ShimError;
use crate::sandbox::SandboxError;
use crate::volume::VolumeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// Worded as gRPC servers word a method they lack: callers (kubelet's checks among
    /// them) recognise it.
    #[error("method {0} not implemented")]
    Unimplemented(&'static str),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::pod::PodError> for Error {
    fn from(e: crate::pod::PodError) -> Error {
        match e {
            crate::pod::PodError::Sandbox(e) => Error::Sandbox(e),
            crate::pod::PodError::Container(e) => Error::Container(e),
        }
    }
}

impl From<crate::build::BuildError> for Error {
    fn from(e: crate::build::BuildError) -> Error {
        use crate::build::BuildError as B;
        match e {
            B::Invalid(m) => Error::InvalidArgument(m),
            e @ B::Step { .. } => Error::FailedPrecondition(e.to_string()),
            B::Image(e) => Error::Image(e),
            B::Container(e) => Error::Container(e),
            B::Sandbox(e) => Error::Sandbox(e),
            B::Cancelled => Error::FailedPrecondition("the build was cancelled".into()),
            B::Internal(m) => Error::Internal(m),
        }
    }
}

impl From<crate::stats::query::CollectError> for Error {
    fn from(e: crate::stats::query::CollectError) -> Error {
        Error::Internal(e.to_string())
    }
}

impl Error {
    /// The gRPC code kubelet sees for this error.
    pub fn code(&self) -> Code {
        if out_of_space(self) {
            return Code::ResourceExhausted;
        }
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Internal(_) => Code::Internal,
            Error::Image(e) => image_code(e),
            Error::Sandbox(e) => sandbox_code(e),
            Error::Container(e) => container_code(e),
            Error::Volume(e) => volume_code(e),
        }
    }
}

/// Whether the error comes from a full disk (ENOSPC) or an exhausted quota (EDQUOT)
/// anywhere down its chain of sources: kubelet should see ResourceExhausted, not Internal.
fn out_of_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        next = err.source();
    }
    false
}

fn image_code(e: &ImageError) -> Code {
    match e {
        ImageError::Reference(_) | ImageError::Invalid(_) => Code::InvalidArgument,
        ImageError::NotFound(_) => Code::NotFound,
        ImageError::InUse(_) | ImageError::Policy(_) => Code::FailedPrecondition,
        ImageError::Refused(_) => Code::PermissionDenied,
        ImageError::Registry(r) => match r {
            RegistryError::NotFound(_) => Code::NotFound,
            RegistryError::Unauthorized(_) => Code::Unauthenticated,
            RegistryError::Transport { .. } => Code::Unavailable,
            RegistryError::Http { status, .. } if *status >= 500 || *status == 429 => Code::Unavailable,
            RegistryError::Http { .. } | RegistryError::Protocol(_) => Code::Unknown,
            RegistryError::Hosts(_) => Code::FailedPrecondition,
            RegistryError::TooLarge(_) => Code::ResourceExhausted,
            RegistryError::NoRanges(_) => Code::FailedPrecondition,
        },
        ImageError::Content(ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. }) => Code::DataLoss,
        ImageError::Layer(l) => match l {
            // A hostile or malformed layer is the image's fault; only a failing write is ours.
            LayerError::Unpack { source, .. } => match source {
                UnpackError::Limit(_) | UnpackError::NoSpace(_) => Code::ResourceExhausted,
                UnpackError::Io { .. } => Code::Internal,
                UnpackError::Escape { .. }
                | UnpackError::Tar(_)
                | UnpackError::Unsupported { .. }
                | UnpackError::MissingLinkTarget { .. } => Code::InvalidArgument,
            },
            LayerError::DiffIdMismatch { .. } => Code::DataLoss,
            LayerError::Content(ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. }) => {
                Code::DataLoss
            }
            LayerError::Stream { .. } => Code::Unavailable,
            LayerError::Stalled { .. } => Code::DeadlineExceeded,
            LayerError::Content(_) | LayerError::Snapshot(_) => Code::Internal,
        },
        ImageError::Content(_) | ImageError::Snapshot(_) | ImageError::Store(_) | ImageError::Internal(_) => {
            Code::Internal
        }
    }
}

fn sandbox_code(e: &SandboxError) -> Code {
    match e {
        SandboxError::Invalid(_) => Code::InvalidArgument,
        SandboxError::NotFound(_) => Code::NotFound,
        SandboxError::NameTaken { .. } => Code::AlreadyExists,
        SandboxError::Network(NetworkError::NotReady(_)) => Code::FailedPrecondition,
        SandboxError::Network(NetworkError::Timeout { .. }) => Code::DeadlineExceeded,
        SandboxError::Network(_) | SandboxError::Store(_) | SandboxError::Setup { .. } => Code::Internal,
    }
}

fn volume_code(e: &VolumeError) -> Code {
    match e {
        VolumeError::Invalid(_) => Code::InvalidArgument,
        VolumeError::NotFound(_) => Code::NotFound,
        VolumeError::InUse { .. } => Code::FailedPrecondition,
        VolumeError::Io { .. } | VolumeError::Store(_) => Code::Internal,
    }
}

fn container_code(e: &ContainerError) -> Code {
    match e {
        ContainerError::Invalid(_) | ContainerError::Spec(SpecError::Invalid(_)) => Code::InvalidArgument,
        ContainerError::NotFound(_) | ContainerError::Spec(SpecError::NotFound(_)) => Code::NotFound,
        ContainerError::NameTaken { .. } => Code::AlreadyExists,
        ContainerError::FailedPrecondition(_) => Code::FailedPrecondition,
        ContainerError::Shim(ShimError::Timeout(_)) => Code::DeadlineExceeded,
        ContainerError::Spec(_) | ContainerError::Shim(_) | ContainerError::Store(_) | ContainerError::Setup { .. } => {
            Code::Internal
        }
    }
}

/// Longest status message sent: messages may quote request fields, and a grpc-message
/// header over HTTP/2's header list limit would break the connection instead.
const MAX_STATUS_MESSAGE: usize = 2048;

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let mut message = e.to_string();
        if message.len() > MAX_STATUS_MESSAGE {
            let mut cut = MAX_STATUS_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("... (truncated)");
        }
        Status::new(e.code(), message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::reference::Reference;

    #[test]
    fn codes() {
        let bad_ref = Error::from(ImageError::from(Reference::parse("UPPER").expect_err("bad")));
        assert_eq!(Status::from(bad_ref).code(), Code::InvalidArgument);
        let missing = Error::Image(ImageError::Registry(RegistryError::NotFound("x".into())));
        assert_eq!(missing.code(), Code::NotFound);
        let tampered = Error::Image(ImageError::Content(ContentError::DigestMismatch {
            expected: "a".into(),
            actual: "b".into(),
        }));
        assert_eq!(tampered.code(), Code::DataLoss);
        assert_eq!(Error::Unimplemented("Exec").code(), Code::Unimplemented);
        assert_eq!(
            Error::Unimplemented("CheckpointContainer").to_string(),
            "method CheckpointContainer not implemented"
        );
        let long = Status::from(Error::InvalidArgument(format!("name {:?}", "é".repeat(1 << 20))));
        assert!(long.message().len() < 2100 && long.message().ends_with("(truncated)"));
        let full = Error::Image(ImageError::Content(ContentError::Io {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        }));
        assert_eq!(full.code(), Code::ResourceExhausted);
    }
}
