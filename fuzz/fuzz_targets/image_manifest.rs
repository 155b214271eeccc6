//! Manifests, indexes and image configs (`berth::image::manifest`) as a registry sends them.
#![no_main]

use berth::image::manifest::{self, Document, ImageConfig, Platform};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 5] = [
    "application/json",
    manifest::OCI_INDEX,
    manifest::OCI_MANIFEST,
    manifest::DOCKER_LIST,
    manifest::DOCKER_MANIFEST,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(sel) % CONTENT_TYPES.len()];
    match Document::parse(content_type, body) {
        Ok(Document::Index(index)) => {
            for want in [
                manifest::host_platform(),
                Platform {
                    architecture: "arm".into(),
                    os: "linux".into(),
                    variant: Some("v7".into()),
                },
            ] {
                if let Some(d) = manifest::select_platform(&index, &want) {
                    let p = d.platform.as_ref().expect("a selected manifest has a platform");
                    assert_eq!((&p.os, &p.architecture), (&want.os, &want.architecture));
                }
            }
        }
        Ok(Document::Manifest(m)) => {
            for layer in &m.layers {
                let _ = manifest::layer_compression(&layer.media_type);
            }
        }
        Err(_) => {}
    }
    // The same bytes as an image config, as the pull reads the config blob.
    if let Ok(cfg) = serde_json::from_slice::<ImageConfig>(body) {
        serde_json::to_vec(&cfg).expect("a parsed config serialises");
    }
});
