//! `berthctl run`: a Docker-style one-liner built from CRI calls. It pulls the image if
//! needed, runs a pod sandbox holding one container, and either prints the container id
//! (`-d`), attaches to it (`-i`/`-t`), or streams its output from the CRI log, then exits
//! with its exit code. `--rm` removes the pod (and the container) afterwards, also after
//! Ctrl-C; a failure on the way removes it too. Pods and containers carry the label
//! `io.berth.run=1`, and the pod annotation `io.berth.run.ports` lists the published ports.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use berth_proto as pb;
use berth_proto::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::containers::{PORTS_ANNOTATION, RUN_LABEL};
use crate::runspec::{self, User};
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
    /// Name of the pod and container [default: run-<random hex>].
    #[arg(long)]
    pub name: Option<String>,
    /// Publish a container port: [IP:]HOST:CONTAINER[/tcp|udp|sctp]; repeatable.
    #[arg(short, long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Bind-mount a host path: HOST:CONTAINER[:ro]; repeatable.
    #[arg(short, long = "volume", value_name = "VOLUME")]
    pub volume: Vec<String>,
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
    /// Network: "host" shares the node's network; default: the pod network (CNI).
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
    pub image: String,
    /// Command and arguments (replace the image's CMD, as with docker run).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
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
}

fn plan(args: &RunArgs) -> anyhow::Result<Plan> {
    let name = args.name.clone().unwrap_or_else(|| format!("run-{}", random_hex(6)));
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        anyhow::bail!("--name {name:?}: use letters, digits, '-', '_' or '.'");
    }
    let network = match args.network.as_deref() {
        None | Some("pod" | "bridge" | "default") => pb::NamespaceMode::Pod,
        Some("host") => pb::NamespaceMode::Node,
        Some(other) => anyhow::bail!("--network {other:?}: use host, or leave it out for the pod network"),
    };
    let ports = args
        .publish
        .iter()
        .map(|p| runspec::parse_port(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if network == pb::NamespaceMode::Node && !ports.is_empty() {
        anyhow::bail!("-p does not apply with --network host: the container's ports are the host's already");
    }
    let cwd = std::env::current_dir()?;
    let mounts = args
        .volume
        .iter()
        .map(|v| runspec::parse_volume(v, &cwd))
        .collect::<anyhow::Result<Vec<_>>>()?;
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
    let log_dir = PathBuf::from(LOG_ROOT).join(&name);
    let shown: Vec<String> = ports.iter().map(runspec::show_port).collect();
    let mut annotations = std::collections::HashMap::new();
    if !shown.is_empty() {
        annotations.insert(PORTS_ANNOTATION.to_string(), shown.join(", "));
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
            name.clone()
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
            image: args.image.clone(),
            ..Default::default()
        }),
        command: args.entrypoint.iter().cloned().collect(),
        args: args.cmd.clone(),
        envs: envs(args)?,
        working_dir: args.workdir.clone().unwrap_or_default(),
        mounts,
        labels,
        log_path: format!("{name}.log"),
        stdin: args.interactive,
        stdin_once: args.interactive,
        tty: args.tty,
        cdi_devices: cdi_devices(args)?,
        linux: Some(pb::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(security),
        }),
        ..Default::default()
    };
    Ok(Plan { name, pod, container })
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

/// Runs the container; returns the exit code berthctl should exit with.
pub async fn run(ctx: &mut Ctx, args: RunArgs) -> anyhow::Result<i32> {
    let plan = plan(&args)?;
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
    ensure_image(ctx, &args.image).await?;
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
    if args.rm || result.is_err() {
        remove_pod(&mut ctx.rt, &sandbox).await;
        remove_log_dir(&plan.name);
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
        println!("{id}");
        return Ok(0);
    }
    let log = Path::new(&plan.pod.log_directory).join(&plan.container.log_path);
    if args.interactive || args.tty {
        let attached = tokio::select! {
            r = crate::stream::attach_to(runtime, &id, args.interactive, args.tty) => Some(r),
            _ = tokio::signal::ctrl_c(), if !args.tty => None,
        };
        match attached {
            Some(Ok(_)) => {}
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

/// The exit code once the container exited, `None` while it runs.
async fn exited(runtime: &mut RuntimeServiceClient<Channel>, id: &str) -> anyhow::Result<Option<i32>> {
    let status = runtime
        .container_status(pb::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .map_err(explain)?
        .into_inner()
        .status
        .context("container status missing")?;
    Ok((status.state == pb::ContainerState::ContainerExited as i32).then_some(status.exit_code))
}

/// Waits for the exit (after an attach ended); Ctrl-C stops the container.
async fn wait_exit(runtime: &mut RuntimeServiceClient<Channel>, id: &str) -> anyhow::Result<i32> {
    let mut interrupted = false;
    loop {
        if let Some(code) = exited(runtime, id).await? {
            return Ok(code);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = runtime.stop_container(pb::StopContainerRequest { container_id: id.into(), timeout: 10 }).await;
            }
        }
    }
}

/// Copies the container's output from its CRI log to stdout/stderr until it exits; Ctrl-C
/// stops the container (10 s grace). Returns its exit code.
async fn follow(runtime: &mut RuntimeServiceClient<Channel>, id: &str, log: &Path) -> anyhow::Result<i32> {
    let mut reader = LogReader::default();
    let mut interrupted = false;
    loop {
        reader.copy_new(log)?;
        if let Some(code) = exited(runtime, id).await? {
            reader.copy_new(log)?;
            return Ok(code);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = runtime.stop_container(pb::StopContainerRequest { container_id: id.into(), timeout: 10 }).await;
            }
        }
    }
}

/// Reads a CRI log file incrementally and writes each entry's payload to stdout or stderr.
#[derive(Debug, Default)]
pub struct LogReader {
    offset: u64,
    partial: Vec<u8>,
}

impl LogReader {
    fn copy_new(&mut self, path: &Path) -> anyhow::Result<()> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Ok(());
        };
        f.seek(std::io::SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let Some(e) = crate::logs::parse_entry(&line[..line.len() - 1]) else {
                continue;
            };
            let w: &mut dyn std::io::Write = if e.stderr { &mut err } else { &mut out };
            w.write_all(e.text)?;
            if !e.partial {
                w.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn plan_maps_flags_to_cri() {
        let dir = tempfile::tempdir().unwrap();
        let vol = format!("{}:/data:ro", dir.path().display());
        let t = T::try_parse_from([
            "run",
            "--name",
            "web",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:5353:53/udp",
            "-v",
            &vol,
            "-e",
            "A=1",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "-u",
            "1000:100",
            "--entrypoint",
            "/bin/sh",
            "-l",
            "tier=front",
            "-it",
            "img",
            "-c",
            "echo hi",
        ])
        .unwrap();
        let p = plan(&t.run).unwrap();
        assert_eq!(p.name, "web");
        assert_eq!(p.pod.port_mappings.len(), 2);
        assert_eq!(
            p.pod.annotations[PORTS_ANNOTATION],
            "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp"
        );
        assert_eq!(p.pod.labels[RUN_LABEL], "1");
        let c = &p.container;
        assert_eq!(c.command, vec!["/bin/sh"]);
        assert_eq!(c.args, vec!["-c", "echo hi"]);
        assert!(c.tty && c.stdin && c.stdin_once);
        assert!(c.mounts[0].readonly && c.mounts[0].container_path == "/data");
        assert_eq!(c.labels["tier"], "front");
        let l = c.linux.clone().unwrap();
        let r = l.resources.unwrap();
        assert_eq!(
            (r.memory_limit_in_bytes, r.cpu_period, r.cpu_quota),
            (64 << 20, 100_000, 50_000)
        );
        let s = l.security_context.unwrap();
        assert_eq!(
            (s.run_as_user.unwrap().value, s.run_as_group.unwrap().value),
            (1000, 100)
        );

        let t = T::try_parse_from(["run", "--network", "host", "-p", "1:2", "img"]).unwrap();
        assert!(plan(&t.run).unwrap_err().to_string().contains("--network host"));
        let t = T::try_parse_from(["run", "-v", "/does/not/exist:/x", "img"]).unwrap();
        assert!(plan(&t.run).unwrap_err().to_string().contains("does not exist"));
        let t = T::try_parse_from(["run", "img"]).unwrap();
        assert!(plan(&t.run).unwrap().name.starts_with("run-"));
    }
}
