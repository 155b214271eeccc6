//! `berthctl run`: a Docker-style one-liner built from CRI calls. It pulls the image if
//! needed, runs a pod sandbox holding one container, and either prints the container id
//! (`-d`), attaches to it (`-i`/`-t`), or streams its output from the CRI log, then exits
//! with its exit code. `--rm` removes the pod (and the container) afterwards, also after
//! Ctrl-C; a failure on the way removes it too. Pods and containers carry the label
//! `io.berth.run=1`, and the pod annotation `io.berth.run.ports` lists the published ports.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use berth::container::policy::{RestartPolicy, RESTART_LABEL};
use berth::sandbox::hosts_group;
use berth_proto as pb;
use berth_proto::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::containers::{PORTS_ANNOTATION, RUN_LABEL};
use crate::run_wait::{exited, follow, wait_exit, LogReader};
use crate::runspec::{self, User};
use crate::volumes;
use crate::{explain, Ctx};

/// Where `run` puts its pods' CRI logs (one directory per pod).
const LOG_ROOT: &str = "/var/log/berth/run";

/// Namespace of the pods `run` creates (as kubelet would put them in a Kubernetes namespace).
const NAMESPACE: &str = "berthctl";

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open and attach it to the container.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the container a terminal (puts this terminal in raw mode).
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the pod and container when the container exits.
    #[arg(long)]
    pub rm: bool,
    /// Restart policy, enforced by berthd: no, always, unless-stopped, on-failure[:N].
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: String,
    /// Name of the pod and container [default: run-<random hex>].
    #[arg(long)]
    pub name: Option<String>,
    /// Publish a container port: [IP:]HOST:CONTAINER[/tcp|udp|sctp]; repeatable.
    #[arg(short, long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Also known by this name to the containers of its --network; repeatable.
    #[arg(long, value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// The container's host name [default: its name].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Do not print the container id with -d (for callers that report it themselves).
    #[arg(long, hide = true)]
    pub no_print_id: bool,
    /// Keys that detach from -it, leaving the container running ("" turns them off).
    #[arg(long, value_name = "KEYS", default_value = crate::detach::DEFAULT)]
    pub detach_keys: String,
    /// Publish every port the image exposes, each on a free host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Storage: HOST_PATH:CTR (made if missing), VOLUME_NAME:CTR or CTR (a new anonymous
    /// volume), each with [:ro|rw]; repeatable.
    #[arg(short, long = "volume", value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Storage as type=bind|volume|tmpfs,source=..,target=..[,readonly]; repeatable.
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// A tmpfs at this container path: PATH[:size=64m,mode=1777]; repeatable.
    #[arg(long, value_name = "PATH")]
    pub tmpfs: Vec<String>,
    /// Mount what this container mounts: CONTAINER[:ro|rw]; repeatable.
    #[arg(long, value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
    /// Set an environment variable (KEY=VALUE; KEY alone takes it from this shell).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines); repeatable.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long = "workdir")]
    pub workdir: Option<String>,
    /// User to run as: UID[:GID] or a user name of the image.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Network: "host" shares the node's network; default: the pod network (CNI); a NAME:
    /// the pod network, and containers run with the same NAME find each other by name.
    #[arg(long)]
    pub network: Option<String>,
    /// Memory limit, e.g. 256m or 1g.
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Size of the pod's /dev/shm, e.g. 64m (default: berthd's sandbox_shm_size).
    #[arg(long)]
    pub shm_size: Option<String>,
    /// CPUs, e.g. 0.5 or 2 (a CFS quota over a 100ms period).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Replace the image's ENTRYPOINT.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container label KEY=VALUE; repeatable.
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// GPUs: all, a count N, or device=ID[,ID…] (index or UUID); maps to CDI nvidia.com/gpu.
    #[arg(long)]
    pub gpus: Option<String>,
    /// CDI devices by fully qualified name (vendor.com/class=name); repeatable.
    #[arg(long = "device")]
    pub devices: Vec<String>,
    /// Runtime handler (RuntimeClass), e.g. crun.
    #[arg(long)]
    pub runtime: Option<String>,
    /// The image, then the command and its arguments (they replace the image's CMD). As with
    /// docker run, berthctl's own flags end at IMAGE: everything after it is the command's.
    #[arg(value_name = "IMAGE [COMMAND [ARG...]]", required = true, trailing_var_arg = true)]
    pub image_and_cmd: Vec<String>,
}

impl RunArgs {
    /// The image to run.
    pub fn image(&self) -> &str {
        &self.image_and_cmd[0]
    }

    /// The command and arguments after the image.
    pub fn cmd(&self) -> &[String] {
        &self.image_and_cmd[1..]
    }
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(2)];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex[..n].to_string()
}

fn envs(args: &RunArgs) -> anyhow::Result<Vec<pb::KeyValue>> {
    let mut out = Vec::new();
    for f in &args.env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        let vars = runspec::parse_env_file(&text, |k| std::env::var(k).ok())
            .with_context(|| format!("--env-file {}", f.display()))?;
        out.extend(vars.into_iter().map(|(k, v)| pb::KeyValue {
            key: k,
            value: v.into(),
        }));
    }
    for e in &args.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push(pb::KeyValue {
                key: k.into(),
                value: v.into(),
            }),
            Some(_) => anyhow::bail!("--env {e:?}: the name is empty"),
            None => out.push(pb::KeyValue {
                key: e.clone(),
                value: std::env::var(e).unwrap_or_default().into(),
            }),
        }
    }
    Ok(out)
}

/// The CDI devices `--gpus` and `--device` ask for.
pub fn cdi_devices(args: &RunArgs) -> anyhow::Result<Vec<pb::CdiDevice>> {
    let mut names = match &args.gpus {
        Some(g) => berth::cdi::nvidia::gpus_flag_to_cdi(g).map_err(|e| anyhow::anyhow!("--gpus: {e}"))?,
        None => Vec::new(),
    };
    for d in &args.devices {
        berth::cdi::spec::parse_qualified(d).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
        names.push(d.clone());
    }
    Ok(names.into_iter().map(|name| pb::CdiDevice { name }).collect())
}

/// Everything `run` sends, worked out (and checked) before anything is created.
#[derive(Debug)]
struct Plan {
    name: String,
    pod: pb::PodSandboxConfig,
    container: pb::ContainerConfig,
    /// Storage to set up (volumes made, host paths created) just before the container.
    volumes: Vec<volumes::VolumeUse>,
}

fn plan(args: &RunArgs) -> anyhow::Result<Plan> {
    let name = args.name.clone().unwrap_or_else(|| format!("run-{}", random_hex(6)));
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        anyhow::bail!("--name {name:?}: use letters, digits, '-', '_' or '.'");
    }
    // A network NAME is a name group on the node's pod network: its containers find each
    // other by name and --network-alias (no isolation from other pods).
    let (network, group) = match args.network.as_deref() {
        None | Some("pod" | "bridge" | "default") => (pb::NamespaceMode::Pod, None),
        Some("host") => (pb::NamespaceMode::Node, None),
        Some(name) if hosts_group::valid_name(name) => (pb::NamespaceMode::Pod, Some(name.to_string())),
        Some(other) => anyhow::bail!("--network {other:?}: host, or a network name ([a-zA-Z0-9._-])"),
    };
    if !args.network_alias.is_empty() && group.is_none() {
        anyhow::bail!("--network-alias needs --network NAME: aliases are names within a network");
    }
    if let Some(bad) = args.network_alias.iter().find(|a| !hosts_group::valid_name(a)) {
        anyhow::bail!("--network-alias {bad:?}: not a host name");
    }
    let ports = args
        .publish
        .iter()
        .map(|p| runspec::parse_port(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if network == pb::NamespaceMode::Node && (!ports.is_empty() || args.publish_all) {
        anyhow::bail!("-p does not apply with --network host: the container's ports are the host's already");
    }
    let cwd = std::env::current_dir()?;
    let mut volumes = Vec::new();
    for v in &args.volume {
        volumes.push(volumes::parse_v(v, &cwd)?);
    }
    for m in &args.mount {
        volumes.push(volumes::parse_mount(m, &cwd)?);
    }
    for t in &args.tmpfs {
        volumes.push(volumes::parse_tmpfs(t)?);
    }
    let mut resources = pb::LinuxContainerResources::default();
    if let Some(m) = &args.memory {
        resources.memory_limit_in_bytes = runspec::parse_size(m).context("--memory")?;
    }
    if let Some(c) = &args.cpus {
        (resources.cpu_period, resources.cpu_quota) = runspec::parse_cpus(c)?;
    }
    let mut security = pb::LinuxContainerSecurityContext::default();
    match args.user.as_deref().map(runspec::parse_user).transpose()? {
        None => {}
        Some(User::Id { uid, gid }) => {
            security.run_as_user = Some(pb::Int64Value { value: uid });
            security.run_as_group = gid.map(|value| pb::Int64Value { value });
        }
        Some(User::Name(n)) => security.run_as_username = n,
    }
    let mut labels = runspec::parse_labels(&args.label)?;
    labels.insert(RUN_LABEL.into(), "1".into());
    let policy = RestartPolicy::parse(&args.restart).map_err(|e| anyhow::anyhow!("--restart: {e}"))?;
    if policy != RestartPolicy::No {
        if args.rm {
            anyhow::bail!(
                "--restart {} and --rm conflict: a container removed when it exits cannot be restarted",
                args.restart
            );
        }
        labels.insert(RESTART_LABEL.into(), args.restart.clone());
    }
    let log_dir = PathBuf::from(LOG_ROOT).join(&name);
    let shown: Vec<String> = ports.iter().map(runspec::show_port).collect();
    let mut annotations = std::collections::HashMap::new();
    if !shown.is_empty() {
        annotations.insert(PORTS_ANNOTATION.to_string(), shown.join(", "));
    }
    if let Some(group) = &group {
        annotations.insert(hosts_group::GROUP.to_string(), group.clone());
        let mut aliases = args.network_alias.clone();
        aliases.push(name.clone());
        annotations.insert(hosts_group::ALIASES.to_string(), aliases.join(","));
    }
    if let Some(size) = &args.shm_size {
        let bytes = runspec::parse_size(size).context("--shm-size")?;
        // berthd's annotation for the pod's /dev/shm size (src/sandbox/lifecycle.rs).
        annotations.insert("io.berth.shm-size".to_string(), bytes.to_string());
    }
    let pod = pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.clone(),
            uid: random_hex(32),
            namespace: NAMESPACE.into(),
            attempt: 0,
        }),
        hostname: if network == pb::NamespaceMode::Node {
            String::new()
        } else {
            args.hostname.clone().unwrap_or_else(|| name.clone())
        },
        log_directory: log_dir.display().to_string(),
        port_mappings: ports,
        labels: [(RUN_LABEL.to_string(), "1".to_string())].into(),
        annotations,
        linux: Some(pb::LinuxPodSandboxConfig {
            security_context: Some(pb::LinuxSandboxSecurityContext {
                namespace_options: Some(pb::NamespaceOption {
                    network: network as i32,
                    pid: pb::NamespaceMode::Container as i32,
                    ipc: pb::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let container = pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.clone(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: args.image().to_string(),
            ..Default::default()
        }),
        command: args.entrypoint.iter().cloned().collect(),
        args: args.cmd().to_vec(),
        envs: envs(args)?,
        working_dir: args.workdir.clone().unwrap_or_default(),
        labels,
        log_path: format!("{name}.log"),
        stdin: args.interactive,
        // As Docker: only a container attached at `run` closes stdin when that session ends;
        // `run -d -i` keeps it open for later attaches.
        stdin_once: args.interactive && !args.detach,
        tty: args.tty,
        cdi_devices: cdi_devices(args)?,
        linux: Some(pb::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(security),
        }),
        ..Default::default()
    };
    Ok(Plan {
        name,
        pod,
        container,
        volumes,
    })
}

/// Pulls `image` unless berthd has it.
pub async fn ensure_image(ctx: &mut Ctx, image: &str) -> anyhow::Result<()> {
    let spec = Some(pb::ImageSpec {
        image: image.into(),
        ..Default::default()
    });
    let present = ctx
        .img
        .image_status(ctx.req(pb::ImageStatusRequest {
            image: spec.clone(),
            verbose: false,
        }))
        .await
        .map_err(explain)?
        .into_inner()
        .image
        .is_some();
    if !present {
        eprintln!("pulling {image} ...");
        ctx.img
            .pull_image(pb::PullImageRequest {
                image: spec,
                auth: None,
                sandbox_config: None,
            })
            .await
            .map_err(explain)?;
    }
    Ok(())
}

/// Removes the log directory `run` made for the pod `name`.
pub fn remove_log_dir(name: &str) {
    if !name.is_empty() && !name.contains('/') && !name.starts_with('.') {
        let _ = std::fs::remove_dir_all(Path::new(LOG_ROOT).join(name));
    }
}

/// The image's VOLUMEs that nothing else is mounted at become anonymous volumes, as with
/// Docker: `rm` keeps them, `rm -v` and `--rm` take them (kubelet's containers get
/// per-container directories instead, as the CRI has it).
async fn image_volumes(ctx: &mut Ctx, plan: &mut Plan, image: &str) -> anyhow::Result<()> {
    let Some((_, details)) = crate::images::details(ctx, image).await? else {
        return Ok(());
    };
    let clean = |p: &str| p.trim_end_matches('/').to_string();
    let mut taken: Vec<String> = plan.volumes.iter().map(|v| clean(v.target())).collect();
    taken.extend(plan.container.mounts.iter().map(|m| clean(&m.container_path)));
    for path in details.volumes {
        if !taken.contains(&clean(&path)) {
            taken.push(clean(&path));
            plan.volumes.push(volumes::VolumeUse::Anonymous {
                target: path,
                readonly: false,
                options: Default::default(),
            });
        }
    }
    Ok(())
}

/// Runs the container; returns the exit code berthctl should exit with.
pub async fn run(ctx: &mut Ctx, args: RunArgs) -> anyhow::Result<i32> {
    let mut plan = plan(&args)?;
    let taken = crate::resolve::all_pods(ctx)
        .await?
        .iter()
        .any(|p| p.labels.contains_key(RUN_LABEL) && p.metadata.as_ref().is_some_and(|m| m.name == plan.name));
    if taken {
        anyhow::bail!(
            "the name {:?} is in use; remove that one first (berthctl rm -f {0})",
            plan.name
        );
    }
    // A log left by an earlier pod of this name (removed without berthctl) is not ours.
    remove_log_dir(&plan.name);
    ensure_image(ctx, args.image()).await?;
    crate::ports::finish(ctx, &mut plan.pod, args.publish_all, args.image()).await?;
    for from in &args.volumes_from {
        let source = crate::resolve::container(ctx, from.split(':').next().unwrap_or_default()).await?;
        let status = crate::containers::status(ctx, &source.id, false)
            .await?
            .status
            .unwrap_or_default();
        plan.container.mounts.extend(volumes::mounts_from(from, &status)?);
    }
    image_volumes(ctx, &mut plan, args.image()).await?;
    let (mounts, anonymous) = volumes::resolve(&mut ctx.vol, &plan.volumes).await?;
    plan.container.mounts.extend(mounts);
    let sandbox = ctx
        .rt
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(plan.pod.clone()),
            runtime_handler: args.runtime.clone().unwrap_or_default(),
        })
        .await
        .map_err(explain)?
        .into_inner()
        .pod_sandbox_id;
    let result = run_in(&mut ctx.rt, &sandbox, &plan, &args).await;
    if let Err(e) = &result {
        if e.is::<crate::detach::Detached>() {
            // Left running, as Docker leaves it (with --rm too).
            eprintln!("read escape sequence");
            return Ok(0);
        }
    }
    if args.rm || result.is_err() {
        remove_pod(&mut ctx.rt, &sandbox).await;
        remove_log_dir(&plan.name);
        volumes::remove_anonymous(&mut ctx.vol, &anonymous).await;
    }
    result
}

async fn remove_pod(runtime: &mut RuntimeServiceClient<Channel>, id: &str) {
    let _ = runtime
        .stop_pod_sandbox(pb::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await;
    if let Err(e) = runtime
        .remove_pod_sandbox(pb::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
    {
        eprintln!("berthctl: removing pod {id}: {}", e.message());
    }
}

async fn run_in(
    runtime: &mut RuntimeServiceClient<Channel>,
    sandbox: &str,
    plan: &Plan,
    args: &RunArgs,
) -> anyhow::Result<i32> {
    let id = runtime
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(plan.container.clone()),
            sandbox_config: Some(plan.pod.clone()),
        })
        .await
        .map_err(explain)?
        .into_inner()
        .container_id;
    runtime
        .start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .map_err(explain)?;
    if args.detach {
        if !args.no_print_id {
            println!("{id}");
        }
        return Ok(0);
    }
    let log = Path::new(&plan.pod.log_directory).join(&plan.container.log_path);
    if args.interactive || args.tty {
        let attached = tokio::select! {
            r = crate::stream::attach_to(runtime, &id, args.interactive, args.tty, Some(crate::detach::parse(&args.detach_keys)?)) => Some(r),
            _ = tokio::signal::ctrl_c(), if !args.tty => None,
        };
        match attached {
            Some(Ok(_)) => {}
            Some(Err(e)) if e.is::<crate::detach::Detached>() => return Err(e),
            // Exited before the attach: its output is in the log.
            Some(Err(_)) if exited(runtime, &id).await?.is_some() => LogReader::default().copy_new(&log)?,
            Some(Err(e)) => return Err(e),
            None => {
                let _ = runtime
                    .stop_container(pb::StopContainerRequest {
                        container_id: id.clone(),
                        timeout: 10,
                    })
                    .await;
            }
        }
        return wait_exit(runtime, &id).await;
    }
    follow(runtime, &id, &log).await
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
