use std::collections::HashMap;

use berth_proto as pb;

use crate::daemon::{Daemon, Readiness};
use crate::error::Result;

/// `Status`: the `RuntimeReady` and `NetworkReady` conditions, each with a reason and
/// message when false, and with `verbose` the effective configuration under `info["config"]`.
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
        if let Some(cdi) = d.cdi.listing() {
            info.insert("cdi".to_string(), serde_json::to_string(&cdi).unwrap_or_default());
        }
    }
    Ok(pb::StatusResponse {
        status: Some(pb::RuntimeStatus { conditions }),
        info,
        runtime_handlers: vec![pb::RuntimeHandler {
            name: String::new(),
            features: Some(pb::RuntimeHandlerFeatures::default()),
        }],
        features: Some(pb::RuntimeFeatures::default()),
    })
}
