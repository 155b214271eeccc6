//! Registry credentials: Docker `config.json` (`berth::image::auth::from_docker_config`), the
//! CRI `auth` field and `server_address`, and `WWW-Authenticate` challenges
//! (`berth::image::registry::parse_challenge`).
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use berth::image::auth::{self, AuthInput, Credentials};
use berth::image::registry::parse_challenge;
use libfuzzer_sys::fuzz_target;

fn config_path() -> &'static (tempfile::TempDir, PathBuf) {
    static D: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    D.get_or_init(|| {
        let tmp = tempfile::Builder::new()
            .prefix("berth-fuzz-auth.")
            .tempdir()
            .expect("scratch dir");
        let path = tmp.path().join("config.json");
        (tmp, path)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            let (_, path) = config_path();
            fs::write(path, body).expect("write config.json");
            for registry in ["docker.io", "registry.example:5000"] {
                let _ = auth::from_docker_config(path, registry);
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            let (scheme, params) = parse_challenge(text);
            assert_eq!(scheme, scheme.to_lowercase());
            assert!(params.keys().all(|k| !k.is_empty()));
        }
        _ => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            let _ = auth::server_host(text);
            let input = AuthInput {
                auth: text.to_owned(),
                ..Default::default()
            };
            if let Ok(c) = Credentials::from_input(&input) {
                let _ = c.basic_header();
            }
        }
    }
});
