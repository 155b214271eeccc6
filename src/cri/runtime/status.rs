use std::collections::HashMap;

use berth_proto as pb;

use crate::daemon::{Daemon, Readiness};
use crate::error::Result;
use crate::image::hosts::HostsConfig;

/// The registries with a hosts configuration, each with its mirrors (in the order tried)
/// and its upstream server, or the error its `hosts.toml` has.
fn registries_json(d: &Daemon) -> String {
    let hosts = HostsConfig {
        dir: Some(d.config.registry_config_path.clone()),
        docker_mirrors: d.config.registry_mirrors.clone(),
        insecure: d.config.insecure_registries.clone(),
    };
    let mut out = serde_json::Map::new();
    for registry in hosts.configured_registries() {
        let entry = match hosts.endpoints(&registry) {
            Ok(eps) => {
                let mirrors: Vec<&str> = eps.iter().filter(|e| e.mirror).map(|e| e.origin()).collect();
                let server = eps.iter().rev().find(|e| !e.mirror).map(|e| e.origin());
                serde_json::json!({"mirrors": mirrors, "server": server})
            }
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        out.insert(registry, entry);
    }
    serde_json::Value::Object(out).to_string()
}

/// `Status`: the `RuntimeReady` and `NetworkReady` conditions, each with a reason and
/// message when false, and with `verbose` the effective configuration under `info["config"]`.
/// Every runtime handler ("" = the default) is listed with the optional features its OCI
/// runtime reports (`<runtime> features`).
pub async fn status(d: &Daemon, req: pb::StatusRequest) -> Result<pb::StatusResponse> {
    let condition = |kind: &str, r: Readiness| pb::RuntimeCondition {
        r#type: kind.into(),
        status: r.ready,
        reason: r.reason,
        message: r.message,
    };
    let conditions = vec![
        condition("RuntimeReady", d.runtime_readiness()),
        condition("NetworkReady", d.network_readiness()),
    ];
    let mut info = HashMap::new();
    if req.verbose {
        info.insert("config".to_string(), d.config_json());
        info.insert("registries".to_string(), registries_json(d));
        info.insert("nri".to_string(), d.nri_json());
        if let Some(cdi) = d.cdi.listing() {
            info.insert("cdi".to_string(), serde_json::to_string(&cdi).unwrap_or_default());
        }
    }
    Ok(pb::StatusResponse {
        status: Some(pb::RuntimeStatus { conditions }),
        info,
        runtime_handlers: d
            .containers
            .handler_features()
            .into_iter()
            .map(|(name, f)| pb::RuntimeHandler {
                name,
                features: Some(pb::RuntimeHandlerFeatures {
                    recursive_read_only_mounts: f.recursive_read_only,
                    user_namespaces: f.user_namespace,
                }),
            })
            .collect(),
        // Merge (the default) and Strict are both applied (container/user.rs).
        features: Some(pb::RuntimeFeatures {
            supplemental_groups_policy: true,
            user_namespaces_host_network: false,
        }),
    })
}
