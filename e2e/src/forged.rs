//! Images rewritten after they were built, for registries that lie: a manifest or a config
//! edited by hand with every digest that names it recomputed, so only the edited claim is
//! false.

use serde_json::Value;

use crate::image::BuiltImage;
use crate::sha256_digest;

/// `img` with its manifest rewritten by `edit` (the manifest digest recomputed).
pub fn with_manifest(img: &BuiltImage, edit: impl FnOnce(&mut Value)) -> BuiltImage {
    let mut m: Value = serde_json::from_slice(&img.manifest).expect("manifest json");
    edit(&mut m);
    let mut out = img.clone();
    out.manifest = serde_json::to_vec(&m).expect("json");
    out.manifest_digest = sha256_digest(&out.manifest);
    out
}

/// `img` with its config rewritten by `edit`, and the manifest naming the new config.
pub fn with_config(img: &BuiltImage, edit: impl FnOnce(&mut Value)) -> BuiltImage {
    let mut config: Value = serde_json::from_slice(&img.config).expect("config json");
    edit(&mut config);
    let mut out = img.clone();
    out.config = serde_json::to_vec(&config).expect("json");
    out.config_digest = sha256_digest(&out.config);
    let (digest, size) = (out.config_digest.clone(), out.config.len());
    with_manifest(&out, |m| {
        m["config"]["digest"] = Value::from(digest);
        m["config"]["size"] = Value::from(size);
    })
}

/// `img` whose config names another diff_id for its first layer.
pub fn with_wrong_diff_id(img: &BuiltImage) -> BuiltImage {
    with_config(img, |c| {
        c["rootfs"]["diff_ids"][0] = Value::from(sha256_digest(b"not this layer"));
    })
}
