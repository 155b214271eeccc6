//! Pod sandbox commands: `runp`, `pods`, `inspectp`, `stopp`, `rmp`, `statsp`.

use std::path::PathBuf;

use berth_proto as pb;
use serde_json::json;

use crate::output::{ago, emit, human_size, list_view, now_ns, print_table, short_id, Format, ListView};
use crate::runspec::parse_labels;
use crate::{config, explain, json as js, resolve, Ctx};

#[derive(Debug, clap::Args)]
pub struct RunpArgs {
    /// Pod config file: a CRI PodSandboxConfig as JSON or YAML.
    config: PathBuf,
    /// Runtime handler (RuntimeClass) to run the pod with.
    #[arg(long)]
    runtime: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PodsArgs {
    /// Only the pod with this id (or id prefix).
    #[arg(long)]
    id: Option<String>,
    /// Only pods whose name contains this.
    #[arg(long)]
    name: Option<String>,
    /// Only pods in this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Only pods with this label (KEY=VALUE; repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Only pods in this state: ready or notready.
    #[arg(short, long)]
    state: Option<String>,
    /// Only the newest pod.
    #[arg(short, long)]
    latest: bool,
    /// Only the N newest pods.
    #[arg(short = 'n', long, value_name = "N")]
    last: Option<usize>,
    /// Only print pod ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show full ids.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct InspectpArgs {
    /// Pods (id, id prefix or name).
    #[arg(required = true)]
    pods: Vec<String>,
    /// Output format (json, yaml or table).
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct PodIds {
    /// Pods (id, id prefix or name).
    #[arg(required = true)]
    pods: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RmpArgs {
    /// Pods (id, id prefix or name).
    #[arg(required_unless_present = "all")]
    pods: Vec<String>,
    /// Stop the pods first.
    #[arg(short, long)]
    force: bool,
    /// Remove all pods.
    #[arg(short, long)]
    all: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatspArgs {
    /// Only this pod (id, id prefix or name).
    #[arg(long)]
    id: Option<String>,
    /// Only pods with this label (KEY=VALUE; repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub async fn runp(ctx: &mut Ctx, a: RunpArgs) -> anyhow::Result<i32> {
    let cfg = config::pod_config(&config::load(&a.config)?)?;
    let id = ctx
        .rt
        .run_pod_sandbox(ctx.req(pb::RunPodSandboxRequest {
            config: Some(cfg),
            runtime_handler: a.runtime.unwrap_or_default(),
        }))
        .await
        .map_err(explain)?
        .into_inner()
        .pod_sandbox_id;
    println!("{id}");
    Ok(0)
}

/// Pods matching `filter`, newest first.
pub async fn list(ctx: &mut Ctx, filter: Option<pb::PodSandboxFilter>) -> anyhow::Result<Vec<pb::PodSandbox>> {
    let mut items = ctx
        .rt
        .list_pod_sandbox(ctx.req(pb::ListPodSandboxRequest { filter }))
        .await
        .map_err(explain)?
        .into_inner()
        .items;
    items.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    Ok(items)
}

pub fn table_rows(items: &[pb::PodSandbox], now: i64, full: bool) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|p| {
            let m = p.metadata.clone().unwrap_or_default();
            let state = if p.state == pb::PodSandboxState::SandboxReady as i32 {
                "Ready"
            } else {
                "NotReady"
            };
            let handler = if p.runtime_handler.is_empty() {
                "(default)"
            } else {
                &p.runtime_handler
            };
            vec![
                short_id(&p.id, full),
                ago(now, p.created_at),
                state.into(),
                m.name,
                m.namespace,
                m.attempt.to_string(),
                handler.into(),
            ]
        })
        .collect()
}

pub const POD_HEADER: &[&str] = &["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"];

pub async fn pods(ctx: &mut Ctx, a: PodsArgs) -> anyhow::Result<i32> {
    let state = match a.state.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("ready" | "sandbox_ready") => Some(pb::PodSandboxState::SandboxReady),
        Some("notready" | "not_ready" | "sandbox_notready") => Some(pb::PodSandboxState::SandboxNotready),
        Some(other) => anyhow::bail!("--state {other:?}: use ready or notready"),
    };
    let id = match &a.id {
        Some(q) => resolve::pod(ctx, q).await?.id,
        None => String::new(),
    };
    let filter = pb::PodSandboxFilter {
        id,
        state: state.map(|s| pb::PodSandboxStateValue { state: s as i32 }),
        label_selector: parse_labels(&a.labels)?,
    };
    let mut items = list(ctx, Some(filter)).await?;
    items.retain(|p| {
        let m = p.metadata.clone().unwrap_or_default();
        a.name.as_ref().is_none_or(|n| m.name.contains(n.as_str()))
            && a.namespace.as_ref().is_none_or(|n| &m.namespace == n)
    });
    let view = ListView {
        latest: a.latest,
        last: a.last,
        quiet: a.quiet,
        output: a.output,
    };
    let Some(items) = list_view(items, view, "items", |p| p.id.as_str(), js::pod)? else {
        return Ok(0);
    };
    print_table(POD_HEADER, &table_rows(&items, now_ns(), a.no_trunc));
    Ok(0)
}

pub async fn inspectp(ctx: &mut Ctx, a: InspectpArgs) -> anyhow::Result<i32> {
    for q in &a.pods {
        let id = resolve::pod(ctx, q).await?.id;
        let r = ctx
            .rt
            .pod_sandbox_status(ctx.req(pb::PodSandboxStatusRequest {
                pod_sandbox_id: id,
                verbose: true,
            }))
            .await
            .map_err(explain)?
            .into_inner();
        let status = r.status.unwrap_or_default();
        if a.output == Format::Table {
            let m = status.metadata.clone().unwrap_or_default();
            let ip = status.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
            let rows = vec![
                vec!["ID".into(), status.id.clone()],
                vec!["Name".into(), m.name],
                vec!["Namespace".into(), m.namespace],
                vec!["UID".into(), m.uid],
                vec!["State".into(), js::pod_state(status.state).into()],
                vec!["Created".into(), ago(now_ns(), status.created_at)],
                vec!["IP".into(), ip],
            ];
            print_table(&["FIELD", "VALUE"], &rows);
            continue;
        }
        emit(
            &json!({"status": js::pod_status(&status), "info": js::info(&r.info)}),
            a.output,
        )?;
    }
    Ok(0)
}

pub async fn stopp(ctx: &mut Ctx, a: PodIds) -> anyhow::Result<i32> {
    for q in &a.pods {
        let id = resolve::pod(ctx, q).await?.id;
        ctx.rt
            .stop_pod_sandbox(ctx.req(pb::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }))
            .await
            .map_err(explain)?;
        println!("Stopped sandbox {id}");
    }
    Ok(0)
}

/// Stops (when asked) and removes one pod.
pub async fn remove(ctx: &mut Ctx, id: &str, stop: bool) -> anyhow::Result<()> {
    if stop {
        ctx.rt
            .stop_pod_sandbox(ctx.req(pb::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }))
            .await
            .map_err(explain)?;
    }
    ctx.rt
        .remove_pod_sandbox(ctx.req(pb::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        }))
        .await
        .map_err(explain)?;
    Ok(())
}

pub async fn rmp(ctx: &mut Ctx, a: RmpArgs) -> anyhow::Result<i32> {
    let ids: Vec<String> = if a.all {
        list(ctx, None).await?.into_iter().map(|p| p.id).collect()
    } else {
        let mut ids = Vec::new();
        for q in &a.pods {
            ids.push(resolve::pod(ctx, q).await?.id);
        }
        ids
    };
    let mut code = 0;
    for id in ids {
        if !a.force {
            let ready = list(ctx, None)
                .await?
                .iter()
                .any(|p| p.id == id && p.state == pb::PodSandboxState::SandboxReady as i32);
            if ready {
                eprintln!(
                    "berthctl: pod {} is ready (running); stop it first with stopp, or use -f",
                    short_id(&id, false)
                );
                code = 1;
                continue;
            }
        }
        match remove(ctx, &id, a.force).await {
            Ok(()) => println!("Removed sandbox {id}"),
            Err(e) => {
                eprintln!("berthctl: removing pod {id}: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn statsp(ctx: &mut Ctx, a: StatspArgs) -> anyhow::Result<i32> {
    let id = match &a.id {
        Some(q) => resolve::pod(ctx, q).await?.id,
        None => String::new(),
    };
    let filter = pb::PodSandboxStatsFilter {
        id,
        label_selector: parse_labels(&a.labels)?,
    };
    let stats = ctx
        .rt
        .list_pod_sandbox_stats(ctx.req(pb::ListPodSandboxStatsRequest { filter: Some(filter) }))
        .await
        .map_err(explain)?
        .into_inner()
        .stats;
    if a.output != Format::Table {
        emit(
            &json!({"stats": stats.iter().map(js::pod_stats).collect::<Vec<_>>()}),
            a.output,
        )?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            let attrs = s.attributes.clone().unwrap_or_default();
            let name = attrs.metadata.map(|m| m.name).unwrap_or_default();
            let linux = s.linux.clone().unwrap_or_default();
            let cpu = linux
                .cpu
                .and_then(|c| c.usage_nano_cores)
                .map(|n| format!("{:.2}", n.value as f64 / 1e7))
                .unwrap_or_else(|| "-".into());
            let mem = linux
                .memory
                .and_then(|m| m.working_set_bytes)
                .map(|m| human_size(m.value))
                .unwrap_or_else(|| "-".into());
            let procs = linux
                .process
                .and_then(|p| p.process_count)
                .map(|p| p.value.to_string())
                .unwrap_or_else(|| "-".into());
            vec![name, short_id(&attrs.id, false), cpu, mem, procs]
        })
        .collect();
    print_table(&["POD", "POD ID", "CPU %", "MEM", "PROCS"], &rows);
    Ok(0)
}
