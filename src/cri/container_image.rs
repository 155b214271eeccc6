//! The image of a container as CRI clients see it in `Container` and `ContainerStatus`.

use berth_proto as pb;

use crate::container::lifecycle::ContainerRecord;

/// The image of a container as kubelet shows it in the pod's status: `image` is a name
/// (the reference the user wrote, else the request's reference, else a repo tag of the
/// image; an id only when the image has no name at all) and `user_specified_image` echoes
/// what the user wrote. kubelet compares `image` with the pod spec to notice an image change.
pub(crate) fn image_spec(r: &ContainerRecord) -> pb::ImageSpec {
    let requested = &r.spec.image;
    let hex = requested.trim_start_matches("sha256:");
    let by_id = !hex.is_empty()
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && r.image.id.trim_start_matches("sha256:").starts_with(hex);
    let image = if !r.spec.user_image.is_empty() {
        r.spec.user_image.clone()
    } else if by_id && !r.image.tag.is_empty() {
        r.image.tag.clone()
    } else {
        requested.clone()
    };
    let user_specified_image = if r.spec.user_image.is_empty() {
        requested.clone()
    } else {
        r.spec.user_image.clone()
    };
    pb::ImageSpec {
        image,
        user_specified_image,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::lifecycle::{ContainerState, ImageRef};
    use crate::container::model::ContainerSpec;

    fn record(requested: &str, user: &str, tag: &str) -> ContainerRecord {
        ContainerRecord {
            id: "c1".into(),
            sandbox_id: "s1".into(),
            spec: ContainerSpec {
                image: requested.into(),
                user_image: user.into(),
                ..Default::default()
            },
            image: ImageRef {
                id: "sha256:0123abcd".into(),
                name: "registry.local/app@sha256:feed".into(),
                tag: tag.into(),
            },
            state: ContainerState::Created,
            created_at: 0,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid: 0,
            log_path: String::new(),
            cgroup: String::new(),
            stop_signal: 15,
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            env: Vec::new(),
            cwd: String::new(),
            runtime_handler: String::new(),
            stop_requested: false,
        }
    }

    #[test]
    fn kubelet_request_shows_what_the_user_wrote() {
        // kubelet 1.36: image = the id, user_specified_image = the pod's image.
        let s = image_spec(&record("sha256:0123abcd", "nginx:1.27", "registry.local/app:v1"));
        assert_eq!(
            (s.image.as_str(), s.user_specified_image.as_str()),
            ("nginx:1.27", "nginx:1.27")
        );
    }

    #[test]
    fn an_id_alone_shows_a_tag() {
        let s = image_spec(&record("sha256:0123abcd", "", "registry.local/app:v1"));
        assert_eq!(s.image, "registry.local/app:v1");
        let s = image_spec(&record("0123ab", "", "registry.local/app:v1"));
        assert_eq!(s.image, "registry.local/app:v1", "an id prefix too");
        let s = image_spec(&record("sha256:0123abcd", "", ""));
        assert_eq!(s.image, "sha256:0123abcd", "no name at all: the id");
    }

    #[test]
    fn a_reference_is_kept() {
        let s = image_spec(&record("busybox:1.37", "", "registry.local/app:v1"));
        assert_eq!(
            (s.image.as_str(), s.user_specified_image.as_str()),
            ("busybox:1.37", "busybox:1.37")
        );
        let s = image_spec(&record("abc", "", "registry.local/app:v1"));
        assert_eq!(s.image, "abc", "a name that happens to be hex but not this id's prefix");
    }
}
