//! Container commands: `create`, `start`, `ps`, `inspect`, `stop`, `kill`, `rm`, `update`
//! (`stats` and `top` are in `procs`, live `stats` in `livestats`).

use std::path::PathBuf;

use anyhow::bail;
use berth_proto as pb;
use serde_json::json;

use crate::output::{ago, emit, human_duration, now_ns, print_table, rfc3339, short_id, Format};
use crate::runspec::{parse_cpus, parse_size};
use crate::{config, explain, json as js, pods, resolve, run, Ctx};

pub use crate::procs::{top, TopArgs};
pub use crate::ps::{ps, PsArgs};

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The pod to create the container in (id, id prefix or name).
    pod: String,
    /// Container config file: a CRI ContainerConfig as JSON or YAML.
    container_config: PathBuf,
    /// Pod config file the pod was run with (JSON or YAML).
    pod_config: PathBuf,
    /// Do not pull the image when it is missing.
    #[arg(long)]
    no_pull: bool,
}

#[derive(Debug, clap::Args)]
pub struct Ids {
    /// Containers (id, id prefix or name).
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Containers (id, id prefix or name).
    #[arg(required = true)]
    containers: Vec<String>,
    /// Output format (json, yaml or table).
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Containers (id, id prefix or name).
    #[arg(required = true)]
    containers: Vec<String>,
    /// Seconds to wait after the stop signal before killing.
    #[arg(short = 't', long = "time", default_value_t = 10, value_name = "SECS")]
    time: i64,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Containers (id, id prefix or name).
    #[arg(required = true)]
    containers: Vec<String>,
    /// Signal: only KILL is possible over CRI (StopContainer without a grace period).
    #[arg(short, long, default_value = "KILL")]
    signal: String,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Containers (id, id prefix or name).
    #[arg(required_unless_present = "all")]
    containers: Vec<String>,
    /// Kill running containers first.
    #[arg(short, long)]
    force: bool,
    /// Remove all containers (running ones only with -f).
    #[arg(short, long)]
    all: bool,
    /// Remove the anonymous volumes of the containers too (tmpfs ones always go).
    #[arg(short, long)]
    volumes: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Containers (id, id prefix or name).
    #[arg(required = true)]
    containers: Vec<String>,
    /// CPUs as a decimal (sets a 100ms period and the matching quota).
    #[arg(long)]
    cpus: Option<String>,
    /// CFS period in microseconds.
    #[arg(long)]
    cpu_period: Option<i64>,
    /// CFS quota in microseconds.
    #[arg(long)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    cpu_shares: Option<i64>,
    /// CPUs to run on, e.g. 0-2,4.
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Memory limit, e.g. 256m or 1g.
    #[arg(short, long)]
    memory: Option<String>,
}

pub async fn create(ctx: &mut Ctx, a: CreateArgs) -> anyhow::Result<i32> {
    let pod = resolve::pod(ctx, &a.pod).await?;
    let cfg = config::container_config(&config::load(&a.container_config)?)?;
    let pod_cfg = config::pod_config(&config::load(&a.pod_config)?)?;
    let image = cfg.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
    if !a.no_pull {
        run::ensure_image(ctx, &image).await?;
    }
    let id = ctx
        .rt
        .create_container(ctx.req(pb::CreateContainerRequest {
            pod_sandbox_id: pod.id,
            config: Some(cfg),
            sandbox_config: Some(pod_cfg),
        }))
        .await
        .map_err(explain)?
        .into_inner()
        .container_id;
    println!("{id}");
    Ok(0)
}

pub async fn start(ctx: &mut Ctx, a: Ids) -> anyhow::Result<i32> {
    for q in &a.containers {
        let c = resolve::container(ctx, q).await?;
        match pb::ContainerState::try_from(c.state) {
            Ok(pb::ContainerState::ContainerRunning) => {}
            Ok(pb::ContainerState::ContainerExited) if c.labels.contains_key(RUN_LABEL) => {
                restart_one(ctx, &c.id, 0).await?;
            }
            _ => {
                ctx.rt
                    .start_container(ctx.req(pb::StartContainerRequest {
                        container_id: c.id.clone(),
                    }))
                    .await
                    .map_err(explain)?;
            }
        }
        println!("{q}");
    }
    Ok(0)
}

pub async fn restart(ctx: &mut Ctx, a: StopArgs) -> anyhow::Result<i32> {
    for q in &a.containers {
        let id = resolve::container(ctx, q).await?.id;
        restart_one(ctx, &id, a.time.max(0)).await?;
        println!("{q}");
    }
    Ok(0)
}

/// Berth's RestartContainer: the container's next attempt runs, under a new id.
async fn restart_one(ctx: &mut Ctx, id: &str, timeout: i64) -> anyhow::Result<String> {
    let req = ctx.req(berth_proto::berth::v1::RestartContainerRequest {
        container_id: id.to_string(),
        timeout,
    });
    Ok(ctx
        .ctr
        .restart_container(req)
        .await
        .map_err(explain)?
        .into_inner()
        .container_id)
}

pub async fn status(ctx: &mut Ctx, id: &str, verbose: bool) -> anyhow::Result<pb::ContainerStatusResponse> {
    Ok(ctx
        .rt
        .container_status(ctx.req(pb::ContainerStatusRequest {
            container_id: id.into(),
            verbose,
        }))
        .await
        .map_err(explain)?
        .into_inner())
}

/// Docker's STATUS column: "Up 5 minutes", "Exited (3) 2 minutes ago", "Created".
pub fn status_text(s: &pb::ContainerStatus, now: i64) -> String {
    match pb::ContainerState::try_from(s.state) {
        Ok(pb::ContainerState::ContainerRunning) => {
            format!("Up {}", human_duration((now - s.started_at) / 1_000_000_000))
        }
        Ok(pb::ContainerState::ContainerExited) => format!("Exited ({}) {}", s.exit_code, ago(now, s.finished_at)),
        Ok(pb::ContainerState::ContainerCreated) => "Created".into(),
        _ => "Unknown".into(),
    }
}

/// Label set on the pods and containers of `berthctl run`.
pub use berth::container::restart::RUN_LABEL;
/// Pod annotation holding a run's published ports, as `ps` shows them.
pub const PORTS_ANNOTATION: &str = "io.berth.run.ports";

pub async fn inspect(ctx: &mut Ctx, a: InspectArgs) -> anyhow::Result<i32> {
    for q in &a.containers {
        let id = resolve::container(ctx, q).await?.id;
        let r = status(ctx, &id, true).await?;
        let s = r.status.unwrap_or_default();
        if a.output == Format::Table {
            let now = now_ns();
            let image = s.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
            let rows = vec![
                vec!["ID".into(), s.id.clone()],
                vec!["Name".into(), s.metadata.clone().unwrap_or_default().name],
                vec!["State".into(), js::container_state(s.state).into()],
                vec!["Status".into(), status_text(&s, now)],
                vec![
                    "Created".into(),
                    format!("{} ({})", rfc3339(s.created_at), ago(now, s.created_at)),
                ],
                vec!["Exit Code".into(), s.exit_code.to_string()],
                vec!["Image".into(), image],
                vec!["Log".into(), s.log_path.clone()],
            ];
            print_table(&["FIELD", "VALUE"], &rows);
            continue;
        }
        emit(
            &json!({"status": js::container_status(&s), "info": js::info(&r.info)}),
            a.output,
        )?;
    }
    Ok(0)
}

async fn stop_one(ctx: &mut Ctx, id: &str, timeout: i64) -> anyhow::Result<()> {
    ctx.rt
        .stop_container(ctx.req(pb::StopContainerRequest {
            container_id: id.into(),
            timeout,
        }))
        .await
        .map_err(explain)?;
    Ok(())
}

pub async fn stop(ctx: &mut Ctx, a: StopArgs) -> anyhow::Result<i32> {
    for q in &a.containers {
        let id = resolve::container(ctx, q).await?.id;
        stop_one(ctx, &id, a.time.max(0)).await?;
        println!("{q}");
    }
    Ok(0)
}

pub async fn kill(ctx: &mut Ctx, a: KillArgs) -> anyhow::Result<i32> {
    let sig = a.signal.to_ascii_uppercase();
    if !matches!(sig.trim_start_matches("SIG"), "KILL" | "9") {
        bail!(
            "--signal {}: CRI has no call to send a signal; berthctl kill can only kill (SIGKILL). \
             To signal the main process, run `berthctl exec CONTAINER kill -{} 1` if the image has kill",
            a.signal,
            sig.trim_start_matches("SIG")
        );
    }
    for q in &a.containers {
        let id = resolve::container(ctx, q).await?.id;
        stop_one(ctx, &id, 0).await?;
        println!("{q}");
    }
    Ok(0)
}

/// Removes a container, and the pod too when `berthctl run` made that pod for it.
pub async fn remove(ctx: &mut Ctx, c: &pb::Container, force: bool) -> anyhow::Result<()> {
    if c.state == pb::ContainerState::ContainerRunning as i32 {
        if !force {
            bail!(
                "container {} is running; stop it first or use rm -f",
                short_id(&c.id, false)
            );
        }
        stop_one(ctx, &c.id, 0).await?;
    }
    ctx.rt
        .remove_container(ctx.req(pb::RemoveContainerRequest {
            container_id: c.id.clone(),
        }))
        .await
        .map_err(explain)?;
    let pod = resolve::all_pods(ctx)
        .await?
        .into_iter()
        .find(|p| p.id == c.pod_sandbox_id);
    if let Some(pod) = pod.filter(|p| p.labels.contains_key(RUN_LABEL)) {
        pods::remove(ctx, &pod.id, true).await?;
        if let Some(m) = &pod.metadata {
            run::remove_log_dir(&m.name);
        }
    }
    Ok(())
}

pub async fn rm(ctx: &mut Ctx, a: RmArgs) -> anyhow::Result<i32> {
    let targets: Vec<pb::Container> = if a.all {
        resolve::all_containers(ctx).await?
    } else {
        let mut v = Vec::new();
        for q in &a.containers {
            v.push(resolve::container(ctx, q).await?);
        }
        v
    };
    let mut code = 0;
    for c in targets {
        let anonymous = crate::volumes::anonymous_of(&mut ctx.vol, &c.id, a.volumes).await?;
        match remove(ctx, &c, a.force).await {
            Ok(()) => {
                crate::volumes::remove_anonymous(&mut ctx.vol, &anonymous).await;
                println!("{}", c.id)
            }
            Err(e) => {
                eprintln!("berthctl: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn update(ctx: &mut Ctx, a: UpdateArgs) -> anyhow::Result<i32> {
    let cpus = a.cpus.as_deref().map(parse_cpus).transpose()?;
    let memory = a.memory.as_deref().map(parse_size).transpose()?;
    for q in &a.containers {
        let id = resolve::container(ctx, q).await?.id;
        // Start from what the container has: ContainerStatus's resources, else the spec in
        // berthd's verbose info (UpdateContainerResources replaces them all).
        let current = status(ctx, &id, true).await?;
        let mut r = match current.status.and_then(|s| s.resources).and_then(|r| r.linux) {
            Some(r) => r,
            None => match js::info(&current.info).pointer("/spec/resources") {
                Some(v) => config::resources_from(v)?,
                None => Default::default(),
            },
        };
        if let Some((period, quota)) = cpus {
            r.cpu_period = period;
            r.cpu_quota = quota;
        }
        r.cpu_period = a.cpu_period.unwrap_or(r.cpu_period);
        r.cpu_quota = a.cpu_quota.unwrap_or(r.cpu_quota);
        r.cpu_shares = a.cpu_shares.unwrap_or(r.cpu_shares);
        r.memory_limit_in_bytes = memory.unwrap_or(r.memory_limit_in_bytes);
        if let Some(c) = &a.cpuset_cpus {
            r.cpuset_cpus = c.clone();
        }
        if let Some(m) = &a.cpuset_mems {
            r.cpuset_mems = m.clone();
        }
        ctx.rt
            .update_container_resources(ctx.req(pb::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(r),
                ..Default::default()
            }))
            .await
            .map_err(explain)?;
        println!("{id}");
    }
    Ok(0)
}
