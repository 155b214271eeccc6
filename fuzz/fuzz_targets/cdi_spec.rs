//! CDI spec files (`berth::cdi::spec`), JSON and YAML, and qualified device names.
#![no_main]

use std::path::Path;

use berth::cdi::spec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let name = if sel & 1 == 0 { "vendor.json" } else { "vendor.yaml" };
    if let Ok(s) = spec::parse(Path::new(name), body) {
        // A valid spec names valid devices.
        for d in &s.devices {
            let q = format!("{}={}", s.kind, d.name);
            assert!(spec::parse_qualified(&q).is_ok(), "{q:?}");
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = spec::parse_qualified(text);
    }
});
