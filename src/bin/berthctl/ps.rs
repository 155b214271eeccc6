//! `ps`: containers as a table (docker-like STATUS and PORTS columns beside crictl's), JSON
//! or YAML, with crictl's filters.

use std::collections::HashMap;

use anyhow::bail;
use berth_proto as pb;

use crate::containers::{status, status_text, PORTS_ANNOTATION};
use crate::output::{ago, list_view, now_ns, print_table, short_id, Format, ListView};
use crate::runspec::parse_labels;
use crate::{explain, json as js, pods, resolve, Ctx};

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    all: bool,
    /// Only the container with this id (or prefix or name).
    #[arg(long)]
    id: Option<String>,
    /// Only containers whose name contains this.
    #[arg(long)]
    name: Option<String>,
    /// Only containers with this label (KEY=VALUE; repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Only containers in this state: created, running, exited or unknown.
    #[arg(short, long)]
    state: Option<String>,
    /// Only containers of this pod (id, id prefix or name).
    #[arg(short, long)]
    pod: Option<String>,
    /// Only the newest container.
    #[arg(short, long)]
    latest: bool,
    /// Only the N newest containers.
    #[arg(short = 'n', long, value_name = "N")]
    last: Option<usize>,
    /// Only print container ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show full ids.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub const PS_HEADER: &[&str] = &[
    "CONTAINER",
    "IMAGE",
    "CREATED",
    "STATUS",
    "NAME",
    "ATTEMPT",
    "POD ID",
    "POD",
    "PORTS",
];

/// The rows of `ps`: each container with its status (when known) and pod.
pub fn ps_rows(
    list: &[(pb::Container, Option<pb::ContainerStatus>)],
    pods: &HashMap<String, pb::PodSandbox>,
    now: i64,
    full: bool,
) -> Vec<Vec<String>> {
    list.iter()
        .map(|(c, st)| {
            let image = c.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
            let image = if image.starts_with("sha256:") || image.is_empty() {
                short_id(if image.is_empty() { &c.image_ref } else { &image }, full)
            } else {
                image
            };
            let m = c.metadata.clone().unwrap_or_default();
            let pod = pods.get(&c.pod_sandbox_id);
            let pod_name = pod
                .and_then(|p| p.metadata.as_ref())
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let ports = pod
                .and_then(|p| p.annotations.get(PORTS_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            let status = match st {
                Some(s) => status_text(s, now),
                None => js::container_state(c.state)
                    .trim_start_matches("CONTAINER_")
                    .to_string(),
            };
            vec![
                short_id(&c.id, full),
                image,
                ago(now, c.created_at),
                status,
                m.name,
                m.attempt.to_string(),
                short_id(&c.pod_sandbox_id, full),
                pod_name,
                ports,
            ]
        })
        .collect()
}

fn parse_state(s: &str) -> anyhow::Result<pb::ContainerState> {
    Ok(match s.to_ascii_lowercase().trim_start_matches("container_") {
        "created" => pb::ContainerState::ContainerCreated,
        "running" => pb::ContainerState::ContainerRunning,
        "exited" => pb::ContainerState::ContainerExited,
        "unknown" => pb::ContainerState::ContainerUnknown,
        other => bail!("--state {other:?}: use created, running, exited or unknown"),
    })
}

pub async fn ps(ctx: &mut Ctx, a: PsArgs) -> anyhow::Result<i32> {
    let state = match (&a.state, a.all) {
        (Some(s), _) => Some(parse_state(s)?),
        (None, true) => None,
        (None, false) => Some(pb::ContainerState::ContainerRunning),
    };
    let id = match &a.id {
        Some(q) => resolve::container(ctx, q).await?.id,
        None => String::new(),
    };
    let pod_id = match &a.pod {
        Some(q) => resolve::pod(ctx, q).await?.id,
        None => String::new(),
    };
    let filter = pb::ContainerFilter {
        id,
        state: state.map(|s| pb::ContainerStateValue { state: s as i32 }),
        pod_sandbox_id: pod_id,
        label_selector: parse_labels(&a.labels)?,
    };
    let mut list = ctx
        .rt
        .list_containers(ctx.req(pb::ListContainersRequest { filter: Some(filter) }))
        .await
        .map_err(explain)?
        .into_inner()
        .containers;
    list.retain(|c| {
        a.name
            .as_ref()
            .is_none_or(|n| c.metadata.as_ref().is_some_and(|m| m.name.contains(n.as_str())))
    });
    list.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    let view = ListView {
        latest: a.latest,
        last: a.last,
        quiet: a.quiet,
        output: a.output,
    };
    let Some(list) = list_view(list, view, "containers", |c| c.id.as_str(), js::container)? else {
        return Ok(0);
    };
    let pods: HashMap<String, pb::PodSandbox> = pods::list(ctx, None)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut with_status = Vec::new();
    for c in list {
        // A container removed meanwhile is shown by its listed state.
        let st = status(ctx, &c.id, false).await.ok().and_then(|r| r.status);
        with_status.push((c, st));
    }
    print_table(PS_HEADER, &ps_rows(&with_status, &pods, now_ns(), a.no_trunc));
    Ok(0)
}
