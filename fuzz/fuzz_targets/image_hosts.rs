//! `hosts.toml` registry host configuration (`berth::image::hosts`), as written in
//! `<dir>/<registry>/hosts.toml` and read on each pull.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use berth::image::hosts::HostsConfig;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static (tempfile::TempDir, PathBuf) {
    static D: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    D.get_or_init(|| {
        let tmp = tempfile::Builder::new()
            .prefix("berth-fuzz-hosts.")
            .tempdir()
            .expect("scratch dir");
        let file = tmp.path().join("registry.example:5000");
        fs::create_dir(&file).expect("host dir");
        (tmp, file.join("hosts.toml"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (tmp, file) = dir();
    fs::write(file, data).expect("write hosts.toml");
    let cfg = HostsConfig {
        dir: Some(tmp.path().to_path_buf()),
        docker_mirrors: vec![],
        insecure: vec!["registry.example:5000".into()],
    };
    if let Ok(endpoints) = cfg.endpoints("registry.example:5000") {
        // The upstream server always comes last.
        assert!(!endpoints.is_empty());
        for e in &endpoints {
            let _ = (e.origin(), e.host());
        }
    }
});
