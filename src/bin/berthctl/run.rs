//! `berthctl run`: a Docker-style one-liner built from CRI calls. It pulls the image if
//! needed, runs a pod sandbox holding one container, and either prints the container id
//! (`-d`) or streams the container's output from its CRI log and exits with its exit code.
//! `--rm` removes the pod (and the container) afterwards; a failure on the way removes it too.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use berth_proto as pb;
use berth_proto::image_service_client::ImageServiceClient;
use berth_proto::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::explain;

/// Where `run` puts its pods' CRI logs (one directory per pod).
const LOG_ROOT: &str = "/var/log/berth/run";

/// Namespace of the pods `run` creates (as kubelet would put them in a Kubernetes namespace).
const NAMESPACE: &str = "berthctl";

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the pod and container when the container exits.
    #[arg(long)]
    pub rm: bool,
    /// Name of the pod and container [default: a random name].
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE; KEY alone takes it from this shell).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long = "workdir")]
    pub workdir: Option<String>,
    /// Network: "host" shares the node's network; default: the pod network (CNI).
    #[arg(long)]
    pub network: Option<String>,
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

fn envs(list: &[String]) -> anyhow::Result<Vec<pb::KeyValue>> {
    list.iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(pb::KeyValue {
                key: k.into(),
                value: v.into(),
            }),
            Some(_) => anyhow::bail!("--env {e:?}: the name is empty"),
            None => Ok(pb::KeyValue {
                key: e.clone(),
                value: std::env::var(e).unwrap_or_default().into(),
            }),
        })
        .collect()
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

fn pod_config(name: &str, args: &RunArgs, log_dir: &Path) -> anyhow::Result<pb::PodSandboxConfig> {
    let network = match args.network.as_deref() {
        None | Some("pod" | "bridge" | "default") => pb::NamespaceMode::Pod,
        Some("host") => pb::NamespaceMode::Node,
        Some(other) => anyhow::bail!("--network {other:?}: use host, or leave it out for the pod network"),
    };
    Ok(pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.into(),
            uid: random_hex(32),
            namespace: NAMESPACE.into(),
            attempt: 0,
        }),
        hostname: if network == pb::NamespaceMode::Node {
            String::new()
        } else {
            name.into()
        },
        log_directory: log_dir.display().to_string(),
        labels: [("io.berth.run".to_string(), name.to_string())].into(),
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
    })
}

async fn ensure_image(images: &mut ImageServiceClient<Channel>, image: &str) -> anyhow::Result<()> {
    let spec = Some(pb::ImageSpec {
        image: image.into(),
        ..Default::default()
    });
    let present = images
        .image_status(pb::ImageStatusRequest {
            image: spec.clone(),
            verbose: false,
        })
        .await
        .map_err(explain)?
        .into_inner()
        .image
        .is_some();
    if !present {
        eprintln!("pulling {image} ...");
        images
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

/// Runs the container; returns the exit code berthctl should exit with.
pub async fn run(
    runtime: &mut RuntimeServiceClient<Channel>,
    images: &mut ImageServiceClient<Channel>,
    args: RunArgs,
) -> anyhow::Result<i32> {
    let name = args.name.clone().unwrap_or_else(|| format!("run-{}", random_hex(8)));
    let devices = cdi_devices(&args)?;
    let envs = envs(&args.env)?;
    ensure_image(images, &args.image).await?;
    let log_dir = PathBuf::from(LOG_ROOT).join(&name);
    let pod = pod_config(&name, &args, &log_dir)?;
    let sandbox = runtime
        .run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: args.runtime.clone().unwrap_or_default(),
        })
        .await
        .map_err(explain)?
        .into_inner()
        .pod_sandbox_id;
    let result = run_in(runtime, &sandbox, pod, &name, args.image.clone(), &args, devices, envs).await;
    let remove = args.rm || result.is_err();
    if remove {
        remove_pod(runtime, &sandbox).await;
        let _ = std::fs::remove_dir_all(&log_dir);
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

#[allow(clippy::too_many_arguments)]
async fn run_in(
    runtime: &mut RuntimeServiceClient<Channel>,
    sandbox: &str,
    pod: pb::PodSandboxConfig,
    name: &str,
    image: String,
    args: &RunArgs,
    cdi_devices: Vec<pb::CdiDevice>,
    envs: Vec<pb::KeyValue>,
) -> anyhow::Result<i32> {
    let config = pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image,
            ..Default::default()
        }),
        args: args.cmd.clone(),
        envs,
        working_dir: args.workdir.clone().unwrap_or_default(),
        log_path: format!("{name}.log"),
        cdi_devices,
        linux: Some(pb::LinuxContainerConfig::default()),
        ..Default::default()
    };
    let id = runtime
        .create_container(pb::CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            sandbox_config: Some(pod.clone()),
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
    let log = Path::new(&pod.log_directory).join(format!("{name}.log"));
    follow(runtime, &id, &log).await
}

/// Copies the container's output from its CRI log to stdout/stderr until it exits; Ctrl-C
/// stops the container (10 s grace). Returns its exit code.
async fn follow(runtime: &mut RuntimeServiceClient<Channel>, id: &str, log: &Path) -> anyhow::Result<i32> {
    let mut reader = LogReader::default();
    let mut interrupted = false;
    loop {
        reader.copy_new(log)?;
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
        if status.state == pb::ContainerState::ContainerExited as i32 {
            reader.copy_new(log)?;
            return Ok(status.exit_code);
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
            let Some((stream, text)) = parse_line(&line[..line.len() - 1]) else {
                continue;
            };
            let w: &mut dyn std::io::Write = if stream == "stderr" { &mut err } else { &mut out };
            w.write_all(&text)?;
        }
        out.flush()?;
        Ok(())
    }
}

/// One CRI log line (`<time> <stream> <F|P> <payload>`): the stream and the bytes to print
/// (a newline added after a full line, none after a partial one).
pub fn parse_line(line: &[u8]) -> Option<(&str, Vec<u8>)> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let _time = parts.next()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let payload = parts.next().unwrap_or_default();
    let mut text = payload.to_vec();
    if tag.first() != Some(&b'P') {
        text.push(b'\n');
    }
    Some((stream, text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_and_gpus() {
        assert_eq!(
            parse_line(b"2026-01-01T00:00:00.1Z stdout F hello world"),
            Some(("stdout", b"hello world\n".to_vec()))
        );
        assert_eq!(
            parse_line(b"2026-01-01T00:00:00.1Z stderr P part"),
            Some(("stderr", b"part".to_vec()))
        );
        assert_eq!(parse_line(b"garbage"), None);
    }
}
