//! CRI wire types <-> Berth's domain types. Nothing outside `src/cri/` sees protobuf types.
//! By subject: `image`, `sandbox`, `container`, and the container `resources` both share;
//! the checks every request makes live here.

mod container;
mod image;
mod resources;
mod sandbox;

use berth_proto as pb;

use crate::container::validate::shown as truncate;
use crate::sandbox::{IdMapping, NsMode, UserNsChoice, UserNsMap};

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

/// The user namespace a request names: NODE (or none) is the node's; POD is the pod's own,
/// with exactly one uid and one gid mapping that map container ID 0. CONTAINER and TARGET
/// are refused, as Kubernetes never sends them.
fn user_namespace(userns: Option<&pb::UserNamespace>) -> Result<UserNsChoice, crate::error::Error> {
    use crate::error::Error;
    let Some(u) = userns else {
        return Ok(UserNsChoice::Unset);
    };
    match pb::NamespaceMode::try_from(u.mode) {
        Ok(pb::NamespaceMode::Node) => {
            if !u.uids.is_empty() || !u.gids.is_empty() {
                return Err(Error::InvalidArgument(
                    "user namespace mode NODE takes no uid or gid mappings".into(),
                ));
            }
            Ok(UserNsChoice::Node)
        }
        Ok(pb::NamespaceMode::Pod) => Ok(UserNsChoice::Pod(UserNsMap {
            uids: one_mapping(&u.uids, "uid")?,
            gids: one_mapping(&u.gids, "gid")?,
        })),
        Ok(mode) => Err(Error::InvalidArgument(format!(
            "user namespace mode {} is not supported (POD and NODE are)",
            mode.as_str_name()
        ))),
        Err(_) => Err(Error::InvalidArgument(format!(
            "unknown user namespace mode {}",
            u.mode
        ))),
    }
}

fn one_mapping(mappings: &[pb::IdMapping], what: &str) -> Result<IdMapping, crate::error::Error> {
    use crate::error::Error;
    let m = match mappings {
        [m] => m,
        [] => {
            return Err(Error::InvalidArgument(format!(
                "user namespace mode POD needs a {what} mapping"
            )))
        }
        more => {
            return Err(Error::InvalidArgument(format!(
                "user namespace: exactly one {what} mapping is supported, {} were given",
                more.len()
            )))
        }
    };
    if m.container_id != 0 {
        return Err(Error::InvalidArgument(format!(
            "user namespace: the {what} mapping must map container ID 0 (it starts at {})",
            m.container_id
        )));
    }
    if m.length == 0 || u64::from(m.host_id) + u64::from(m.length) > u64::from(u32::MAX) {
        return Err(Error::InvalidArgument(format!(
            "user namespace: {what} mapping {} {} {} is empty or past the largest ID",
            m.container_id, m.host_id, m.length
        )));
    }
    Ok(IdMapping {
        container_id: m.container_id,
        host_id: m.host_id,
        length: m.length,
    })
}

fn pb_user_namespace(map: Option<&UserNsMap>) -> pb::UserNamespace {
    let wire = |m: &IdMapping| pb::IdMapping {
        container_id: m.container_id,
        host_id: m.host_id,
        length: m.length,
    };
    match map {
        Some(map) => pb::UserNamespace {
            mode: pb::NamespaceMode::Pod as i32,
            uids: vec![wire(&map.uids)],
            gids: vec![wire(&map.gids)],
        },
        None => pb::UserNamespace {
            mode: pb::NamespaceMode::Node as i32,
            ..Default::default()
        },
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

    fn mapping(container_id: u32, host_id: u32, length: u32) -> pb::IdMapping {
        pb::IdMapping {
            container_id,
            host_id,
            length,
        }
    }

    fn userns(mode: pb::NamespaceMode, uids: Vec<pb::IdMapping>) -> pb::UserNamespace {
        pb::UserNamespace {
            mode: mode as i32,
            gids: uids.clone(),
            uids,
        }
    }

    #[test]
    fn user_namespace_requests() {
        use pb::NamespaceMode::{Container, Node, Pod, Target};
        assert_eq!(user_namespace(None).expect("unset"), UserNsChoice::Unset);
        assert_eq!(
            user_namespace(Some(&userns(Node, vec![]))).expect("node"),
            UserNsChoice::Node
        );
        let pod = user_namespace(Some(&userns(Pod, vec![mapping(0, 1000, 100000)]))).expect("pod");
        let UserNsChoice::Pod(map) = pod else { panic!("{pod:?}") };
        assert_eq!(
            (map.uids.host(0), map.uids.host(99999), map.uids.host(100000)),
            (Some(1000), Some(100999), None)
        );
        assert_eq!(map.uids.map_line(), "0 1000 100000\n");
        let refused = [
            (
                userns(Pod, vec![mapping(0, 1000, 10), mapping(0, 2000, 10)]),
                "exactly one",
            ),
            (userns(Pod, vec![mapping(1, 1000, 100000)]), "container ID 0"),
            (userns(Pod, vec![]), "needs a uid mapping"),
            (userns(Pod, vec![mapping(0, 1000, 0)]), "empty"),
            (userns(Pod, vec![mapping(0, u32::MAX, 2)]), "past the largest"),
            (userns(Node, vec![mapping(0, 1000, 10)]), "no uid or gid"),
            (userns(Container, vec![]), "not supported"),
            (userns(Target, vec![]), "not supported"),
        ];
        for (req, want) in refused {
            let err = user_namespace(Some(&req)).expect_err("refused").to_string();
            assert!(err.contains(want), "{req:?}: {err}");
        }
    }
}
