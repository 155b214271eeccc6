//! The build cache: every image a step makes records a key of what made it (the parent
//! image, the stage's run config, the instruction and its inputs); a later step with the
//! same key takes that image instead of running again. Cache images are ordinary untagged
//! images: `image prune` removes them, and their layers go with them.

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::image::{ImageRecord, Images};

/// The key of a step: `parent` (none: scratch), the run config it starts from, and the
/// texts that tell its work apart (instruction, inputs' digests, RUN's ARG values).
pub(super) fn key(parent: Option<&str>, config: &Map<String, Value>, parts: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(b"berth build cache v1\n");
    h.update(parent.unwrap_or("scratch").as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(config).unwrap_or_default());
    for p in parts {
        h.update(b"\n");
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The image a step with `key` made before, if it is still there.
pub(super) fn find(images: &Images, key: &str) -> Option<ImageRecord> {
    images.list().into_iter().find(|r| r.build_cache == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_every_input_apart() {
        let config = Map::new();
        let a = key(Some("sha256:p"), &config, &["RUN make".into()]);
        assert_eq!(a, key(Some("sha256:p"), &config, &["RUN make".into()]));
        assert_ne!(a, key(None, &config, &["RUN make".into()]));
        assert_ne!(a, key(Some("sha256:p"), &config, &["RUN make all".into()]));
        let mut env = Map::new();
        env.insert("Env".into(), serde_json::json!(["A=1"]));
        assert_ne!(a, key(Some("sha256:p"), &env, &["RUN make".into()]));
        // Part boundaries count.
        assert_ne!(
            key(None, &config, &["ab".into(), "c".into()]),
            key(None, &config, &["a".into(), "bc".into()])
        );
    }
}
