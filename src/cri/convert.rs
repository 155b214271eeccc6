//! CRI wire types <-> Berth's domain types. Nothing outside `src/cri/` sees protobuf types.

use berth_proto as pb;

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

/// The image name of a request's `ImageSpec`, required non-empty.
pub fn image_name(spec: Option<&pb::ImageSpec>) -> Result<&str, crate::error::Error> {
    match spec.map(|s| s.image.trim()) {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(crate::error::Error::InvalidArgument(
            "image spec with a non-empty image name is required".into(),
        )),
    }
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
