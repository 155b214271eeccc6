//! `ps`: containers as a table (docker-like STATUS and PORTS columns beside crictl's), JSON
//! or YAML, with crictl's filters.

use std::collections::{BTreeMap, HashMap};

use anyhow::bail;
use berth_proto as pb;

use crate::containers::{status, status_text, PORTS_ANNOTATION};
use crate::filter::Filters;
use crate::format::{labels_text, Row, Template};
use crate::output::{ago, list_view, now_ns, print_table, rfc3339, short_id, Format, ListView};
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
    /// Docker's filters, KEY=VALUE (repeatable): status=created|running|exited, name=, id=,
    /// label=KEY[=VALUE], ancestor=IMAGE, exited=CODE. Values of one key are ORed, keys
    /// ANDed (label filters must all match); a status or exited filter looks at all containers.
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Docker's Go-template subset: `table`, `json`, {{.ID}} {{.Image}} {{.Command}}
    /// {{.CreatedAt}} {{.RunningFor}} {{.Status}} {{.State}} {{.Ports}} {{.Names}}
    /// {{.Labels}} {{.Label "KEY"}} {{json .}}, \t for a tab.
    #[arg(long, value_name = "TEMPLATE")]
    format: Option<String>,
}

/// The `ps --filter` keys.
const FILTER_KEYS: &[&str] = &["status", "name", "id", "label", "ancestor", "exited"];

/// The `ps --format` fields and their headers.
const FIELDS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("State", "STATE"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
];

/// Docker's default `ps` table, for a bare `--format table`.
const DEFAULT_FORMAT: &str = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

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

/// Docker's `status=` values, as CRI states.
fn docker_status(v: &str) -> anyhow::Result<pb::ContainerState> {
    match v {
        "created" | "running" | "exited" => parse_state(v),
        "paused" | "restarting" | "removing" | "dead" => {
            bail!("--filter status={v}: CRI containers are never {v}; use created, running or exited")
        }
        _ => bail!("--filter status={v}: use created, running or exited"),
    }
}

/// Keeps the containers that pass `f`'s filters (`exited=` fetches their statuses).
async fn apply_filters(ctx: &mut Ctx, f: &Filters, list: &mut Vec<pb::Container>) -> anyhow::Result<()> {
    let mut states = Vec::new();
    for v in f.values("status") {
        states.push(docker_status(v)? as i32);
    }
    let mut ancestors = Vec::new();
    for v in f.values("ancestor") {
        ancestors.push((v.clone(), image_id(ctx, v).await?));
    }
    let mut codes = Vec::new();
    for v in f.values("exited") {
        let code: i32 = v
            .parse()
            .map_err(|_| anyhow::anyhow!("--filter exited={v}: give an exit code (a number)"))?;
        codes.push(code);
    }
    list.retain(|c| {
        (states.is_empty() || states.contains(&c.state))
            && f.any("id", |v| c.id.starts_with(v))
            && f.any("name", |v| c.metadata.as_ref().is_some_and(|m| m.name.contains(v)))
            && f.labels_match(&c.labels)
            && (ancestors.is_empty()
                || ancestors.iter().any(|(name, id)| {
                    id.as_deref() == Some(c.image_id.as_str()) || c.image.as_ref().is_some_and(|i| i.image == *name)
                }))
    });
    if !codes.is_empty() {
        let mut kept = Vec::new();
        for c in list.drain(..) {
            if c.state != pb::ContainerState::ContainerExited as i32 {
                continue;
            }
            let st = status(ctx, &c.id, false).await.ok().and_then(|r| r.status);
            if st.is_some_and(|s| codes.contains(&s.exit_code)) {
                kept.push(c);
            }
        }
        *list = kept;
    }
    Ok(())
}

/// The id of the image `name` names, if there is one.
pub async fn image_id(ctx: &mut Ctx, name: &str) -> anyhow::Result<Option<String>> {
    let r = ctx
        .img
        .image_status(ctx.req(pb::ImageStatusRequest {
            image: Some(pb::ImageSpec {
                image: name.into(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .await
        .map_err(explain)?
        .into_inner();
    Ok(r.image.map(|i| i.id))
}

pub async fn ps(ctx: &mut Ctx, a: PsArgs) -> anyhow::Result<i32> {
    let filters = Filters::parse(&a.filters, FILTER_KEYS)?;
    let template = a
        .format
        .as_deref()
        .map(|f| Template::parse(f, FIELDS, DEFAULT_FORMAT))
        .transpose()?;
    if template.is_some() && a.output != Format::Table {
        bail!("--format and -o {:?} both say how to print: give one", a.output);
    }
    let every = a.all || !filters.values("status").is_empty() || !filters.values("exited").is_empty();
    let state = match (&a.state, every) {
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
    apply_filters(ctx, &filters, &mut list).await?;
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
    let verbose = template.as_ref().is_some_and(|t| t.uses("Command"));
    let mut with_status = Vec::new();
    let mut commands = Vec::new();
    for c in list {
        // A container removed meanwhile is shown by its listed state.
        let r = status(ctx, &c.id, verbose).await.ok();
        commands.push(r.as_ref().map(|r| command(&js::info(&r.info))).unwrap_or_default());
        with_status.push((c, r.and_then(|r| r.status)));
    }
    let now = now_ns();
    let rows = ps_rows(&with_status, &pods, now, a.no_trunc);
    match template {
        Some(t) => {
            let rows: Vec<Row> = with_status
                .iter()
                .zip(rows)
                .zip(commands)
                .map(|(((c, _), row), cmd)| format_row(c, row, &cmd, a.no_trunc))
                .collect();
            print!("{}", t.render(&rows));
        }
        None => print_table(PS_HEADER, &rows),
    }
    Ok(0)
}

/// The command and arguments from a verbose ContainerStatus's info.
fn command(info: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for key in ["/spec/command", "/spec/args"] {
        if let Some(a) = info.pointer(key).and_then(|v| v.as_array()) {
            parts.extend(a.iter().filter_map(|s| s.as_str().map(String::from)));
        }
    }
    parts.join(" ")
}

/// A `--format` row from a container and its `ps` table row.
fn format_row(c: &pb::Container, row: Vec<String>, cmd: &str, full: bool) -> Row {
    let mut cells = row.into_iter();
    let mut next = || cells.next().unwrap_or_default();
    let (id, image, running_for, status, name) = (next(), next(), next(), next(), next());
    let ports = cells.next_back().unwrap_or_default();
    let cmd = if full || cmd.chars().count() <= 20 {
        cmd.to_string()
    } else {
        format!("{}…", cmd.chars().take(19).collect::<String>())
    };
    let labels: BTreeMap<String, String> = c.labels.clone().into_iter().collect();
    let mut r = Row::default();
    r.values.insert("ID", id);
    r.values.insert("Image", image);
    r.values.insert("Command", format!("{cmd:?}"));
    r.values.insert("CreatedAt", docker_time(c.created_at));
    r.values.insert("RunningFor", running_for);
    r.values.insert("Status", status);
    r.values.insert(
        "State",
        js::container_state(c.state)
            .trim_start_matches("CONTAINER_")
            .to_ascii_lowercase(),
    );
    r.values.insert("Ports", ports);
    r.values.insert("Names", name);
    r.values.insert("Labels", labels_text(&labels));
    r.labels = labels;
    r
}

/// Docker's CreatedAt: `2026-01-02 03:04:05 +0000 UTC`.
pub fn docker_time(ns: i64) -> String {
    let t = rfc3339(ns);
    format!("{} {} +0000 UTC", &t[..10], &t[11..19])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn format_rows_hold_dockers_fields() {
        let mut c = pb::Container {
            id: "abc".into(),
            state: pb::ContainerState::ContainerExited as i32,
            created_at: 1_000_000_000,
            ..Default::default()
        };
        c.labels.insert("b".into(), "2".into());
        c.labels.insert("a".into(), "1".into());
        let row: Vec<String> = [
            "abc",
            "img",
            "1 hour ago",
            "Exited (3)",
            "web",
            "0",
            "pod",
            "p",
            "8080->80/tcp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = format_row(&c, row, "sh -c sleep 1000000000000", false);
        assert_eq!(r.values["Command"], "\"sh -c sleep 1000000…\"");
        assert_eq!(r.values["Names"], "web");
        assert_eq!(r.values["Ports"], "8080->80/tcp");
        assert_eq!(r.values["State"], "exited");
        assert_eq!(r.values["Labels"], "a=1,b=2");
        assert_eq!(r.values["CreatedAt"], "1970-01-01 00:00:01 +0000 UTC");
        assert!(docker_status("paused")
            .unwrap_err()
            .to_string()
            .contains("never paused"));
        assert_eq!(
            command(&serde_json::json!({"spec": {"command": ["sh"], "args": ["-c", "x"]}})),
            "sh -c x"
        );
    }
}
