//! `berthctl compose`: Compose files on a Berth node. Each service runs as a `berthctl run`
//! container (`<project>-<service>-1`) in a pod of its own on the node's pod network, in
//! the project's name group (`--network <project>_default`), so every container of the
//! project finds every service by name, and published ports, volumes and restart policies
//! work as for `run`. One pod per service rather than one per project: services can then
//! listen on the same port, restart alone (their policy is berthd's), and a pod stays what
//! a Kubernetes user knows (one app's containers); Docker's bridge network is the model.

mod build;
mod file;
mod logs;
mod vars;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use berth_proto as pb;
use clap::Parser as _;

use crate::containers::RUN_LABEL;
use crate::{explain, resolve, run, Ctx};
use file::{Condition, Project, Service};

const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const HASH_LABEL: &str = "com.docker.compose.config-hash";

#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// The Compose file [default: compose.yaml, compose.yml, docker-compose.yaml or
    /// docker-compose.yml here].
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The project name [default: the file's `name:`, else its directory's name].
    #[arg(short, long = "project-name", value_name = "NAME")]
    project_name: Option<String>,
    #[command(subcommand)]
    command: ComposeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ComposeCommand {
    /// Create and start the services (dependencies first); without -d, follow their logs.
    Up {
        /// In the background.
        #[arg(short, long)]
        detach: bool,
        /// Build images before starting (else only missing ones are built).
        #[arg(long)]
        build: bool,
        services: Vec<String>,
    },
    /// Stop and remove the project's containers (and with -v its volumes).
    Down {
        /// Remove the named volumes the file declares and anonymous ones.
        #[arg(short, long)]
        volumes: bool,
    },
    /// List the project's containers.
    Ps {
        /// Stopped ones too.
        #[arg(short, long)]
        all: bool,
    },
    /// Show the services' output, each line prefixed with its service.
    Logs {
        #[arg(short, long)]
        follow: bool,
        services: Vec<String>,
    },
    /// Start stopped services.
    Start { services: Vec<String> },
    /// Stop services.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short, long, default_value_t = 10)]
        timeout: i64,
        services: Vec<String>,
    },
    /// Restart services.
    Restart {
        #[arg(short, long, default_value_t = 10)]
        timeout: i64,
        services: Vec<String>,
    },
    /// Pull the services' images.
    Pull { services: Vec<String> },
    /// Build the images of services with build:.
    Build { services: Vec<String> },
}

pub async fn compose(ctx: &mut Ctx, a: ComposeArgs) -> anyhow::Result<i32> {
    let path = match a.file {
        Some(f) => f,
        None => default_file()?,
    };
    let project = file::load(&path, a.project_name.as_deref())?;
    match a.command {
        ComposeCommand::Up {
            detach,
            build,
            services,
        } => up(ctx, &project, &services, detach, build).await,
        ComposeCommand::Down { volumes } => down(ctx, &project, volumes).await.map(|()| 0),
        ComposeCommand::Ps { all } => ps(ctx, &project, all).await.map(|()| 0),
        ComposeCommand::Logs { follow, services } => {
            let targets = containers_of(ctx, &project, &services).await?;
            logs::show(ctx, &targets, follow).await.map(|()| 0)
        }
        ComposeCommand::Start { services } => {
            for c in containers_of(ctx, &project, &services).await? {
                if c.state != pb::ContainerState::ContainerRunning as i32 {
                    restart_container(ctx, &c.id, 0).await?;
                }
                eprintln!("Container {}  Started", name_of(&c));
            }
            Ok(0)
        }
        ComposeCommand::Stop { timeout, services } => {
            for c in containers_of(ctx, &project, &services).await?.iter().rev() {
                stop(ctx, &c.id, timeout).await?;
                eprintln!("Container {}  Stopped", name_of(c));
            }
            Ok(0)
        }
        ComposeCommand::Restart { timeout, services } => {
            for c in containers_of(ctx, &project, &services).await? {
                restart_container(ctx, &c.id, timeout).await?;
                eprintln!("Container {}  Restarted", name_of(&c));
            }
            Ok(0)
        }
        ComposeCommand::Pull { services } => {
            for s in selected(&project, &services)? {
                run::ensure_image(ctx, &s.image).await?;
            }
            Ok(0)
        }
        ComposeCommand::Build { services } => {
            let chosen = selected(&project, &services)?;
            build::build(ctx, &project, &chosen).await.map(|()| 0)
        }
    }
}

fn default_file() -> anyhow::Result<PathBuf> {
    for name in [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yaml",
        "docker-compose.yml",
    ] {
        if Path::new(name).is_file() {
            return Ok(PathBuf::from(name));
        }
    }
    bail!("no compose.yaml (or compose.yml, docker-compose.yaml, docker-compose.yml) here; give -f FILE")
}

/// The services named (all when none are), with what they depend on, in start order.
fn selected<'a>(project: &'a Project, names: &[String]) -> anyhow::Result<Vec<&'a Service>> {
    if let Some(n) = names.iter().find(|n| !project.services.iter().any(|s| &s.name == *n)) {
        bail!("no such service: {n}");
    }
    let mut want: Vec<String> = names.to_vec();
    for s in project.services.iter().rev() {
        if names.is_empty() || want.contains(&s.name) {
            want.extend(s.depends_on.iter().map(|(d, _)| d.clone()));
            want.push(s.name.clone());
        }
    }
    Ok(project.services.iter().filter(|s| want.contains(&s.name)).collect())
}

fn container_name(project: &Project, s: &Service) -> String {
    s.container_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-1", project.name, s.name))
}

/// The `berthctl run` command line for a service.
fn run_argv(project: &Project, s: &Service) -> Vec<String> {
    let mut a: Vec<String> = ["run", "-d", "--no-print-id", "--name"].map(String::from).to_vec();
    a.push(container_name(project, s));
    let mut flag = |f: &str, v: &str| {
        a.push(f.to_string());
        a.push(v.to_string());
    };
    flag("--network", &format!("{}_default", project.name));
    flag("--network-alias", &s.name);
    flag("-l", &format!("{PROJECT_LABEL}={}", project.name));
    flag("-l", &format!("{SERVICE_LABEL}={}", s.name));
    if let Some(r) = &s.restart {
        flag("--restart", r);
    }
    for e in &s.environment {
        flag("-e", e);
    }
    for f in &s.env_files {
        flag("--env-file", &f.display().to_string());
    }
    for p in &s.ports {
        flag("-p", p);
    }
    for v in &s.volumes {
        match v.strip_prefix("m:") {
            Some(m) => flag("--mount", m),
            None => flag("-v", v),
        }
    }
    for l in &s.labels {
        flag("-l", l);
    }
    if let Some(w) = &s.working_dir {
        flag("-w", w);
    }
    if let Some(u) = &s.user {
        flag("-u", u);
    }
    if let Some(h) = &s.hostname {
        flag("--hostname", h);
    }
    let mut cmd = s.command.clone().unwrap_or_default();
    if let Some(ep) = &s.entrypoint {
        if let Some((first, rest)) = ep.split_first() {
            flag("--entrypoint", first);
            cmd = rest.iter().cloned().chain(cmd).collect();
        }
    }
    if s.tty {
        a.push("-t".into());
    }
    if s.stdin_open {
        a.push("-i".into());
    }
    // What the container was made from: a changed service is made anew by `up`.
    let hash = {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&a, &s.image, &cmd).hash(&mut h);
        format!("{:016x}", h.finish())
    };
    a.push("-l".into());
    a.push(format!("{HASH_LABEL}={hash}"));
    a.push(s.image.clone());
    a.extend(cmd);
    a
}

/// The project's containers (latest attempts), for the named services (all when none),
/// in start order.
async fn containers_of(ctx: &mut Ctx, project: &Project, services: &[String]) -> anyhow::Result<Vec<pb::Container>> {
    let order: Vec<&str> = selected(project, services)?.iter().map(|s| s.name.as_str()).collect();
    let mut found: Vec<pb::Container> = resolve::all_containers(ctx)
        .await?
        .into_iter()
        .filter(|c| c.labels.get(PROJECT_LABEL) == Some(&project.name))
        .filter(|c| services.is_empty() || c.labels.get(SERVICE_LABEL).is_some_and(|s| services.contains(s)))
        .collect();
    found.sort_by_key(|c| {
        let s = c.labels.get(SERVICE_LABEL).map(String::as_str).unwrap_or("");
        (order.iter().position(|o| *o == s).unwrap_or(usize::MAX), c.created_at)
    });
    // While berthd restarts one, the old attempt is still listed: keep the newest.
    let mut latest: Vec<pb::Container> = Vec::new();
    for c in found {
        match latest.iter_mut().find(|l| name_of(l) == name_of(&c)) {
            Some(l) if attempt(l) < attempt(&c) => *l = c,
            Some(_) => {}
            None => latest.push(c),
        }
    }
    Ok(latest)
}

fn name_of(c: &pb::Container) -> &str {
    c.metadata.as_ref().map_or("", |m| m.name.as_str())
}

fn attempt(c: &pb::Container) -> u32 {
    c.metadata.as_ref().map_or(0, |m| m.attempt)
}

async fn up(ctx: &mut Ctx, project: &Project, services: &[String], detach: bool, rebuild: bool) -> anyhow::Result<i32> {
    ensure_volumes(ctx, project).await?;
    let chosen = selected(project, services)?;
    build::build_services(ctx, &chosen, !rebuild).await?;
    for s in &chosen {
        for (dep, cond) in &s.depends_on {
            let dep = project.services.iter().find(|d| &d.name == dep).context("dependency")?;
            wait_for(ctx, project, dep, *cond).await?;
        }
        let argv = run_argv(project, s);
        let hash = argv
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{HASH_LABEL}=")))
            .unwrap_or("")
            .to_string();
        let name = container_name(project, s);
        let existing = containers_of(ctx, project, std::slice::from_ref(&s.name)).await?;
        match existing.first() {
            Some(c) if c.labels.get(HASH_LABEL) == Some(&hash) => {
                if c.state == pb::ContainerState::ContainerRunning as i32 {
                    eprintln!("Container {name}  Running");
                } else {
                    restart_container(ctx, &c.id, 0).await?;
                    eprintln!("Container {name}  Started");
                }
                continue;
            }
            Some(c) => {
                crate::containers::remove(ctx, c, true).await?;
                eprintln!("Container {name}  Recreate");
            }
            None => {}
        }
        let args = RunCommand::try_parse_from(&argv).map_err(|e| anyhow::anyhow!("service {}: {e}", s.name))?;
        let code = run::run(ctx, args.run)
            .await
            .with_context(|| format!("service {}", s.name))?;
        if code != 0 {
            bail!("service {}: exit code {code}", s.name);
        }
        eprintln!("Container {name}  Started");
    }
    if detach {
        return Ok(0);
    }
    let names: Vec<String> = chosen.iter().map(|s| s.name.clone()).collect();
    let targets = containers_of(ctx, project, &names).await?;
    tokio::select! {
        r = logs::show(ctx, &targets, true) => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
        }
    }
    for c in targets.iter().rev() {
        stop(ctx, &c.id, 10).await?;
        eprintln!("Container {}  Stopped", name_of(c));
    }
    Ok(0)
}

/// `berthctl run`'s flags, parsed from a service's command line.
#[derive(Debug, clap::Parser)]
struct RunCommand {
    #[command(flatten)]
    run: run::RunArgs,
}

async fn ensure_volumes(ctx: &mut Ctx, project: &Project) -> anyhow::Result<()> {
    use berth_proto::berth::v1 as api;
    for (key, v) in &project.volumes {
        if v.external {
            ctx.vol
                .volume_status(ctx.req(api::VolumeStatusRequest { name: v.name.clone() }))
                .await
                .map_err(|e| anyhow::anyhow!("external volume {} ({key}): {}", v.name, explain(e)))?;
            continue;
        }
        let mut labels = v.labels.clone();
        labels.insert(PROJECT_LABEL.into(), project.name.clone());
        labels.insert("com.docker.compose.volume".into(), key.clone());
        let req = api::CreateVolumeRequest {
            name: v.name.clone(),
            driver: v.driver.clone(),
            labels: labels.into_iter().collect(),
            options: v.driver_opts.clone().into_iter().collect(),
            anonymous: false,
        };
        ctx.vol.create_volume(ctx.req(req)).await.map_err(explain)?;
    }
    Ok(())
}

/// Waits until `dep` meets `cond`: started (it was, in start order), healthy (its
/// healthcheck passes, run here through exec), or exited 0.
async fn wait_for(ctx: &mut Ctx, project: &Project, dep: &Service, cond: Condition) -> anyhow::Result<()> {
    if cond == Condition::Started {
        return Ok(());
    }
    let health = dep.healthcheck.clone();
    if cond == Condition::Healthy && health.is_none() {
        bail!(
            "service {} waits for {} to be healthy, which has no healthcheck",
            dep.name,
            dep.name
        );
    }
    let (interval, limit) = match &health {
        Some(h) => (
            h.interval,
            h.start_period + h.interval * (h.retries + 1) + h.timeout * h.retries,
        ),
        None => (Duration::from_millis(500), Duration::from_secs(300)),
    };
    let deadline = Instant::now() + limit.max(Duration::from_secs(5));
    loop {
        let c = containers_of(ctx, project, std::slice::from_ref(&dep.name)).await?;
        let Some(c) = c.first() else {
            bail!("service {} has no container", dep.name)
        };
        let st = crate::containers::status(ctx, &c.id, false)
            .await?
            .status
            .unwrap_or_default();
        let running = st.state == pb::ContainerState::ContainerRunning as i32;
        match (cond, &health) {
            (Condition::CompletedSuccessfully, _) if st.state == pb::ContainerState::ContainerExited as i32 => {
                if st.exit_code == 0 {
                    return Ok(());
                }
                bail!("service {} exited with {}", dep.name, st.exit_code);
            }
            (Condition::Healthy, Some(h)) if running => {
                let req = pb::ExecSyncRequest {
                    container_id: c.id.clone(),
                    cmd: h.test.clone(),
                    timeout: h.timeout.as_secs().max(1) as i64,
                };
                if ctx
                    .rt
                    .exec_sync(ctx.req(req))
                    .await
                    .is_ok_and(|r| r.into_inner().exit_code == 0)
                {
                    eprintln!("Container {}  Healthy", name_of(c));
                    return Ok(());
                }
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("service {} did not become {cond:?} in {limit:?}", dep.name);
        }
        tokio::time::sleep(interval.min(Duration::from_secs(2))).await;
    }
}

async fn down(ctx: &mut Ctx, project: &Project, volumes: bool) -> anyhow::Result<()> {
    let mine: Vec<pb::Container> = resolve::all_containers(ctx)
        .await?
        .into_iter()
        .filter(|c| c.labels.get(PROJECT_LABEL) == Some(&project.name) && c.labels.contains_key(RUN_LABEL))
        .collect();
    let mut ordered = containers_of(ctx, project, &[]).await?;
    ordered.reverse();
    ordered.extend(
        mine.into_iter()
            .filter(|m| !ordered.iter().any(|o| o.id == m.id))
            .collect::<Vec<_>>(),
    );
    for c in &ordered {
        let anonymous = crate::volumes::anonymous_of(&mut ctx.vol, &c.id, volumes).await?;
        crate::containers::remove(ctx, c, true).await?;
        eprintln!("Container {}  Removed", name_of(c));
        crate::volumes::remove_anonymous(&mut ctx.vol, &anonymous).await;
    }
    if volumes {
        for v in project.volumes.values().filter(|v| !v.external) {
            let req = berth_proto::berth::v1::RemoveVolumeRequest {
                name: v.name.clone(),
                force: true,
            };
            ctx.vol.remove_volume(ctx.req(req)).await.map_err(explain)?;
            eprintln!("Volume {}  Removed", v.name);
        }
    }
    Ok(())
}

async fn ps(ctx: &mut Ctx, project: &Project, all: bool) -> anyhow::Result<()> {
    let now = crate::output::now_ns();
    let pods = resolve::all_pods(ctx).await?;
    let mut rows = Vec::new();
    for c in containers_of(ctx, project, &[]).await? {
        let st = crate::containers::status(ctx, &c.id, false)
            .await?
            .status
            .unwrap_or_default();
        if !all && st.state != pb::ContainerState::ContainerRunning as i32 {
            continue;
        }
        let ports = pods
            .iter()
            .find(|p| p.id == c.pod_sandbox_id)
            .and_then(|p| p.annotations.get(crate::containers::PORTS_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        rows.push(vec![
            name_of(&c).to_string(),
            c.labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
            crate::containers::status_text(&st, now),
            ports,
        ]);
    }
    crate::output::print_table(&["NAME", "SERVICE", "STATUS", "PORTS"], &rows);
    Ok(())
}

async fn restart_container(ctx: &mut Ctx, id: &str, timeout: i64) -> anyhow::Result<()> {
    let req = berth_proto::berth::v1::RestartContainerRequest {
        container_id: id.to_string(),
        timeout,
    };
    ctx.ctr.restart_container(ctx.req(req)).await.map_err(explain)?;
    Ok(())
}

async fn stop(ctx: &mut Ctx, id: &str, timeout: i64) -> anyhow::Result<()> {
    let req = pb::StopContainerRequest {
        container_id: id.to_string(),
        timeout,
    };
    ctx.rt.stop_container(ctx.req(req)).await.map_err(explain)?;
    Ok(())
}
