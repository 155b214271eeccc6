//! `version` and `info`: what berthd says about itself.

use std::collections::BTreeMap;

use berth_proto as pb;
use serde_json::{json, Value};

use crate::output::{emit, Format};
use crate::{explain, Ctx};

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format (json or yaml).
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

pub async fn version(ctx: &mut Ctx) -> anyhow::Result<i32> {
    let v = ctx
        .rt
        .version(ctx.req(pb::VersionRequest::default()))
        .await
        .map_err(explain)?
        .into_inner();
    println!(
        "Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}",
        v.version, v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    Ok(0)
}

/// `info`: conditions, handlers and the verbose info (configuration, CDI devices and the
/// registries with their mirrors), each info value parsed as JSON.
pub async fn info(ctx: &mut Ctx, a: InfoArgs) -> anyhow::Result<i32> {
    let s = ctx
        .rt
        .status(ctx.req(pb::StatusRequest { verbose: true }))
        .await
        .map_err(explain)?
        .into_inner();
    let conditions: Vec<_> = s
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .map(|c| json!({"type": c.r#type, "status": c.status, "reason": c.reason, "message": c.message}))
        .collect();
    let handlers: Vec<_> = s
        .runtime_handlers
        .iter()
        .map(|h| {
            json!({
                "name": h.name,
                "features": h.features.as_ref().map(|f| json!({
                    "recursiveReadOnlyMounts": f.recursive_read_only_mounts,
                    "userNamespaces": f.user_namespaces,
                })),
            })
        })
        .collect();
    let info: BTreeMap<&String, Value> = s
        .info
        .iter()
        .map(|(k, v)| (k, serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))))
        .collect();
    emit(
        &json!({"status": {"conditions": conditions}, "runtimeHandlers": handlers, "info": info}),
        a.output,
    )?;
    Ok(0)
}
