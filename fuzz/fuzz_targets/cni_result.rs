//! CNI plugin output (`berth::network::cni::result`) and network config files
//! (`berth::network::cni::config`).
#![no_main]

use std::path::Path;

use berth::network::cni::config::{self, NetworkConfigList};
use berth::network::cni::result::{pod_status, CniResult};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    if sel & 1 == 0 {
        // What a plugin printed on stdout (berthd reads it as a JSON value first).
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if let Ok(result) = CniResult::parse(&value) {
            let _ = result.pod_ips("eth0");
        }
        if let Ok(status) = pod_status(&value, "eth0") {
            assert!(!status.ips.is_empty());
        }
    } else {
        let Ok(text) = std::str::from_utf8(body) else {
            return;
        };
        let name = if sel & 2 == 0 { "10-net.conflist" } else { "10-net.conf" };
        if let Ok(list) = NetworkConfigList::parse(Path::new(name), text) {
            assert!(!list.plugins.is_empty());
            let _ = list.supports_check();
            if list.needs_pod_cidr() {
                let _ = list.with_pod_cidr("10.244.1.0/24");
            }
            for p in &list.plugins {
                let _ = p.capabilities();
                let _ = list.plugin_config(p, &serde_json::Map::new());
            }
        }
        let _ = config::parse_pod_cidr(text);
        let _ = config::version_supports_check(text);
    }
});
