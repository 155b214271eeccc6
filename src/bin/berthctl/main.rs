//! `berthctl`: Berth's command-line client, with crictl's habits. It talks CRI to berthd
//! over the unix socket given by `--runtime-endpoint`, `BERTH_ENDPOINT`, the
//! `runtime-endpoint` of `/etc/crictl.yaml`, or the default `unix:///run/berth/berth.sock`.
//! Each command group lives in its own module; this file parses and dispatches.

mod api;
mod build;
mod commit;
mod completion;
mod compose;
mod config;
mod containers;
mod cp;
mod detach;
mod filter;
mod format;
mod groups;
mod images;
mod info;
mod json;
mod livestats;
mod logline;
mod logs;
mod output;
mod pods;
mod ports;
mod procs;
mod prune;
mod ps;
mod push;
mod resolve;
mod run;
mod run_wait;
mod runspec;
mod stream;
mod term;
mod volumes;
mod ws;

use std::time::Duration;

use anyhow::Context as _;
use berth_proto::berth::v1::builds_client::BuildsClient;
use berth_proto::berth::v1::containers_client::ContainersClient;
use berth_proto::berth::v1::volumes_client::VolumesClient;
use berth_proto::image_service_client::ImageServiceClient;
use berth_proto::runtime_service_client::RuntimeServiceClient;
use clap::{Parser, Subcommand};
use tonic::transport::Channel;

const DEFAULT_ENDPOINT: &str = "unix:///run/berth/berth.sock";

#[derive(Debug, Parser)]
#[command(
    name = "berthctl",
    version = concat!("version ", env!("CARGO_PKG_VERSION")),
    disable_version_flag = true,
    about = "Command-line client for the Berth container runtime",
    after_help = "IDs: every command that takes a container or pod accepts its full id, a unique prefix of it, or its name."
)]
pub struct Cli {
    /// Print the client's version (`berthctl version X`) and exit.
    #[arg(short = 'v', long = "version", visible_short_alias = 'V', action = clap::ArgAction::Version)]
    version: (),
    /// CRI endpoint of berthd (unix:///PATH).
    #[arg(short = 'r', long, global = true, env = "BERTH_ENDPOINT")]
    runtime_endpoint: Option<String>,
    /// Seconds to wait for each call (pulls get no limit unless this is set).
    #[arg(long, global = true, value_name = "SECS")]
    timeout: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the runtime's name and versions.
    Version,
    /// Show the runtime's status conditions, configuration and registry mirrors.
    Info(info::InfoArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Show images' status and details.
    Inspecti(images::InspectiArgs),
    /// Remove images.
    Rmi(images::RmiArgs),
    /// Show image filesystem usage.
    Imagefsinfo(images::FsArgs),
    /// Run a pod sandbox from a pod config file (JSON or YAML).
    Runp(pods::RunpArgs),
    /// List pod sandboxes.
    Pods(pods::PodsArgs),
    /// Show pod sandboxes' status.
    Inspectp(pods::InspectpArgs),
    /// Stop pod sandboxes (and their containers).
    Stopp(pods::PodIds),
    /// Remove pod sandboxes (and their containers).
    Rmp(pods::RmpArgs),
    /// Show pod sandboxes' resource usage.
    Statsp(pods::StatspArgs),
    /// Create a container in a pod from container and pod config files.
    Create(containers::CreateArgs),
    /// Start created or stopped containers (a stopped `run` container starts as a new attempt).
    Start(containers::Ids),
    /// Stop (if running) and start again containers made by `berthctl run`.
    Restart(containers::StopArgs),
    /// List containers (running ones unless -a).
    Ps(containers::PsArgs),
    /// Show containers' status.
    Inspect(containers::InspectArgs),
    /// Stop running containers.
    Stop(containers::StopArgs),
    /// Kill running containers (SIGKILL, no grace period).
    Kill(containers::KillArgs),
    /// Remove containers (and the pod of a `berthctl run` container).
    Rm(containers::RmArgs),
    /// Change containers' CPU and memory limits.
    Update(containers::UpdateArgs),
    /// Show containers' resource usage (live on a terminal; --no-stream for one table).
    Stats(livestats::LiveStatsArgs),
    /// Show the processes of a container.
    Top(containers::TopArgs),
    /// Print a container's logs.
    Logs(logs::LogsArgs),
    /// Run a command in a running container.
    Exec(stream::ExecArgs),
    /// Attach to a running container's stdio.
    Attach(stream::AttachArgs),
    /// Forward local ports to a pod.
    PortForward(stream::PortForwardArgs),
    /// Run a Compose project: up, down, ps, logs, start, stop, restart, pull.
    Compose(compose::ComposeArgs),
    /// Show a `run` container's published ports.
    Port(ports::PortArgs),
    /// Copy files between a container and the host (docker cp style).
    Cp(cp::CpArgs),
    /// Build an image from a Dockerfile (docker build style).
    Build(build::BuildArgs),
    /// Make an image of a container's changes (docker commit style).
    Commit(commit::CommitArgs),
    /// Run a command in a new pod and container (docker run style).
    Run(Box<run::RunArgs>),
    /// Push an image to its registry (docker push style).
    Push(push::PushArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::CompletionArgs),
    /// Manage images (Docker's image ls, rm, inspect, prune, pull, tag, history, save, load).
    Image {
        #[command(subcommand)]
        cmd: groups::ImageCommand,
    },
    /// Manage containers (Docker's container ls, rm, prune, start, stop, logs, exec, ...).
    Container {
        #[command(subcommand)]
        cmd: groups::ContainerCommand,
    },
    /// Disk usage (df) and pruning of stopped containers and unused images (prune).
    System {
        #[command(subcommand)]
        cmd: groups::SystemCommand,
    },
    /// pull, login, logout, save, load, tag, history: the Berth API beside CRI.
    #[command(flatten)]
    Api(api::ApiCommand),
}

/// What every command needs: the two CRI clients and the per-call timeout.
pub struct Ctx {
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
    /// Berth's own container API (restart).
    pub ctr: ContainersClient<Channel>,
    /// Berth's own volume API.
    pub vol: VolumesClient<Channel>,
    /// Berth's image builder.
    pub bld: BuildsClient<Channel>,
    pub timeout: Option<u64>,
}

impl Ctx {
    /// A request carrying the `--timeout`.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        request(msg, self.timeout)
    }
}

fn endpoint(cli: &Cli) -> String {
    if let Some(e) = &cli.runtime_endpoint {
        return e.clone();
    }
    if let Ok(text) = std::fs::read_to_string("/etc/crictl.yaml") {
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("runtime-endpoint:") {
                let v = v.trim().trim_matches(['"', '\'']);
                if !v.is_empty() {
                    return v.to_string();
                }
            }
        }
    }
    DEFAULT_ENDPOINT.to_string()
}

async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let path = endpoint
        .strip_prefix("unix://")
        .with_context(|| format!("endpoint {endpoint:?}: only unix:// endpoints are supported"))?
        .to_string();
    let channel = tonic::transport::Endpoint::try_from("http://berth.invalid")?
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .with_context(|| format!("cannot reach berthd at {endpoint}; is it running?"))?;
    Ok(channel)
}

/// Turns a gRPC status into a sentence for people.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    let message = status.message().trim();
    let what = match status.code() {
        Code::NotFound => "not found",
        Code::InvalidArgument => "invalid request",
        Code::Unauthenticated => "authentication failed",
        Code::PermissionDenied => "permission denied",
        Code::AlreadyExists => "already exists",
        Code::FailedPrecondition => "not possible in the current state",
        Code::ResourceExhausted => "out of resources",
        Code::Unavailable if message.contains("connect") || message.contains("transport") => {
            return anyhow::anyhow!("berthd went away or is not reachable ({message})");
        }
        Code::Unavailable => "unavailable",
        Code::DataLoss => "content verification failed",
        Code::Unimplemented => "not supported by this berthd",
        Code::DeadlineExceeded => "timed out (raise --timeout?)",
        Code::Cancelled => "cancelled",
        Code::Aborted => "aborted",
        _ => "failed",
    };
    if message.is_empty() {
        anyhow::anyhow!("{what}")
    } else {
        anyhow::anyhow!("{what}: {message}")
    }
}

fn request<T>(msg: T, timeout: Option<u64>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = timeout {
        req.set_timeout(Duration::from_secs(t));
    }
    req
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthctl: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berthctl: {e:#}");
            1
        }
    };
    // Nothing left to wait for (a stdin reader may still block): exit now.
    std::process::exit(code);
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Completion(a) = &cli.command {
        return completion::print(a);
    }
    let channel = connect(&endpoint(&cli)).await?;
    let mut ctx = Ctx {
        rt: RuntimeServiceClient::new(channel.clone()),
        img: ImageServiceClient::new(channel.clone()).max_decoding_message_size(16 << 20),
        ctr: ContainersClient::new(channel.clone()),
        vol: VolumesClient::new(channel.clone()),
        bld: BuildsClient::new(channel.clone()),
        timeout: cli.timeout,
    };
    let c = &mut ctx;
    match cli.command {
        Command::Completion(_) => Ok(0),
        Command::Version => info::version(c).await,
        Command::Info(a) => info::info(c, a).await,
        Command::Api(cmd) => api::run(cmd, channel, c.timeout).await.map(|()| 0),
        Command::Images(a) => images::images(c, a).await,
        Command::Inspecti(a) => images::inspecti(c, a).await,
        Command::Rmi(a) => images::rmi(c, a).await,
        Command::Imagefsinfo(a) => images::imagefsinfo(c, a).await,
        Command::Runp(a) => pods::runp(c, a).await,
        Command::Pods(a) => pods::pods(c, a).await,
        Command::Inspectp(a) => pods::inspectp(c, a).await,
        Command::Stopp(a) => pods::stopp(c, a).await,
        Command::Rmp(a) => pods::rmp(c, a).await,
        Command::Statsp(a) => pods::statsp(c, a).await,
        Command::Create(a) => containers::create(c, a).await,
        Command::Start(a) => containers::start(c, a).await,
        Command::Restart(a) => containers::restart(c, a).await,
        Command::Ps(a) => containers::ps(c, a).await,
        Command::Inspect(a) => containers::inspect(c, a).await,
        Command::Stop(a) => containers::stop(c, a).await,
        Command::Kill(a) => containers::kill(c, a).await,
        Command::Rm(a) => containers::rm(c, a).await,
        Command::Update(a) => containers::update(c, a).await,
        Command::Stats(a) => livestats::live_stats(c, a).await,
        Command::Image { cmd } => groups::image(c, cmd, channel).await,
        Command::Container { cmd } => groups::container(c, cmd).await,
        Command::System { cmd } => groups::system(c, cmd).await,
        Command::Top(a) => containers::top(c, a).await,
        Command::Logs(a) => logs::logs(c, a).await,
        Command::Exec(a) => stream::exec(c, a).await,
        Command::Attach(a) => stream::attach(c, a).await,
        Command::PortForward(a) => stream::port_forward(c, a).await,
        Command::Run(a) => run::run(c, *a).await,
        Command::Push(a) => push::push(channel, a, c.timeout).await.map(|()| 0),
        Command::Cp(a) => cp::cp(c, a).await,
        Command::Commit(a) => commit::commit(c, a).await,
        Command::Build(a) => build::build(c.bld.clone(), a, c.timeout).await,
        Command::Port(a) => ports::port(c, a).await,
        Command::Compose(a) => compose::compose(c, a).await,
    }
}
