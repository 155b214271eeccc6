//! Images: records as the CRI's `Image`, and what image requests carry (names, credentials).

use berth_proto as pb;

use crate::container::validate::shown as truncate;
use crate::image::auth::AuthInput;
use crate::image::ImageRecord;

pub fn image(record: &ImageRecord) -> pb::Image {
    let (uid, username) = record.user();
    pb::Image {
        id: record.id.clone(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid: uid.map(|value| pb::Int64Value { value }),
        username,
        spec: Some(pb::ImageSpec {
            image: record.id.clone(),
            annotations: if record.build_cache.is_empty() {
                Default::default()
            } else {
                [(crate::build::BUILD_CACHE_ANNOTATION.to_string(), "true".to_string())].into()
            },
            ..Default::default()
        }),
        pinned: record.pinned,
    }
}

pub fn auth(auth: &pb::AuthConfig) -> AuthInput {
    AuthInput {
        username: auth.username.clone(),
        password: auth.password.clone(),
        auth: auth.auth.clone(),
        server_address: auth.server_address.clone(),
        identity_token: auth.identity_token.clone(),
        registry_token: auth.registry_token.clone(),
    }
}

/// The image name of a request's `ImageSpec`, required non-empty: a reference (tag or
/// digest) or an image id (`sha256:<hex>`, or a hex prefix of one).
pub fn image_name(spec: Option<&pb::ImageSpec>) -> Result<&str, crate::error::Error> {
    match spec.map(|s| s.image.trim()) {
        Some(name) if !name.is_empty() => {
            let bare = name.strip_prefix("sha256:").unwrap_or(name);
            let id = bare.len() <= 64 && bare.bytes().all(|b| b.is_ascii_hexdigit());
            if !id && (name.len() > 4096 || crate::image::reference::Reference::parse(name).is_err()) {
                return Err(crate::error::Error::InvalidArgument(format!(
                    "image {:?} is neither a valid reference nor an image id",
                    truncate(name)
                )));
            }
            Ok(name)
        }
        _ => Err(crate::error::Error::InvalidArgument(
            "image spec with a non-empty image name is required".into(),
        )),
    }
}
