//! CRI wire types <-> Berth's domain types. Nothing outside `src/cri/` sees protobuf types.
//! By subject: `image`, `sandbox`, `container`, and the container `resources` both share;
//! the checks every request makes live here.

mod container;
mod image;
mod resources;
mod sandbox;

use berth_proto as pb;

use crate::container::validate::shown as truncate;
use crate::sandbox::NsMode;

pub(crate) use container::container_metadata;
pub use container::{container, container_filter, container_spec, container_status};
pub use image::{auth, image, image_name};
pub use resources::{check_resources, linux_resources, resources, resources_json};
pub(crate) use sandbox::sandbox_metadata;
pub use sandbox::{sandbox, sandbox_filter, sandbox_spec, sandbox_status};

/// An id a request must carry.
pub fn required_id<'a>(id: &'a str, field: &str) -> Result<&'a str, crate::error::Error> {
    let id = id.trim();
    if id.is_empty() {
        return Err(crate::error::Error::InvalidArgument(format!("{field} is required")));
    }
    if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(crate::error::Error::InvalidArgument(format!(
            "{field} {:?} is not a valid id",
            truncate(id)
        )));
    }
    Ok(id)
}

/// Pods run in the node's user namespace only: a request for a private one (`hostUsers:
/// false`) is refused rather than run without the isolation it asked for. `Status` reports
/// no handler with user namespace support, so kubelet does not send one.
fn host_users_only(userns: Option<&pb::UserNamespace>) -> Result<(), crate::error::Error> {
    match userns.map(|u| pb::NamespaceMode::try_from(u.mode)) {
        None | Some(Ok(pb::NamespaceMode::Node)) => Ok(()),
        Some(Ok(mode)) => Err(crate::error::Error::InvalidArgument(format!(
            "user namespace mode {} is not supported: Berth runs pods in the node's user namespace (hostUsers: true)",
            mode.as_str_name()
        ))),
        Some(Err(_)) => Err(crate::error::Error::InvalidArgument(format!(
            "unknown user namespace mode {}",
            userns.map_or(0, |u| u.mode)
        ))),
    }
}

fn ns_mode(mode: i32) -> Result<NsMode, crate::error::Error> {
    match pb::NamespaceMode::try_from(mode) {
        Ok(pb::NamespaceMode::Pod) => Ok(NsMode::Pod),
        Ok(pb::NamespaceMode::Container) => Ok(NsMode::Container),
        Ok(pb::NamespaceMode::Node) => Ok(NsMode::Node),
        Ok(pb::NamespaceMode::Target) => Ok(NsMode::Target),
        Err(_) => Err(crate::error::Error::InvalidArgument(format!(
            "unknown namespace mode {mode}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn userns(mode: pb::NamespaceMode) -> pb::UserNamespace {
        pb::UserNamespace {
            mode: mode as i32,
            ..Default::default()
        }
    }

    #[test]
    fn private_user_namespaces_are_refused() {
        assert!(host_users_only(None).is_ok());
        assert!(host_users_only(Some(&userns(pb::NamespaceMode::Node))).is_ok());
        for mode in [
            pb::NamespaceMode::Pod,
            pb::NamespaceMode::Container,
            pb::NamespaceMode::Target,
        ] {
            let err = host_users_only(Some(&userns(mode))).expect_err("refused");
            assert!(
                matches!(&err, crate::error::Error::InvalidArgument(m) if m.contains("hostUsers")),
                "{err}"
            );
        }
    }
}
