//! Docker's command groups, `image ...` and `container ...`, and `system df|prune`: each
//! subcommand runs the implementation of the top-level command of the same job.

use tonic::transport::Channel;

use crate::livestats::{live_stats, LiveStatsArgs};
use crate::prune::{ContainerPruneArgs, ImagePruneArgs, SystemPruneArgs};
use crate::{api, containers, images, logs, prune, run, stream, Ctx};

/// `image ...`: pull, tag, history, save and load are the same commands as at the top
/// level (so is login/logout, hidden here: they are not about images).
#[derive(Debug, clap::Subcommand)]
#[command(
    mut_subcommand("login", |c| c.hide(true)),
    mut_subcommand("logout", |c| c.hide(true))
)]
pub enum ImageCommand {
    /// List images (= images).
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Remove images (= rmi).
    #[command(visible_alias = "remove")]
    Rm(images::RmiArgs),
    /// Show images' status and details (= inspecti).
    Inspect(images::InspectiArgs),
    /// Remove dangling images (-a: every image no container uses).
    Prune(ImagePruneArgs),
    /// Push an image to its registry (= push).
    Push(crate::push::PushArgs),
    #[command(flatten)]
    Api(api::ApiCommand),
}

/// `container ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ContainerCommand {
    /// List containers (= ps).
    #[command(visible_aliases = ["list", "ps"])]
    Ls(containers::PsArgs),
    /// Remove containers (= rm).
    #[command(visible_alias = "remove")]
    Rm(containers::RmArgs),
    /// Remove all stopped containers (and the pods `run` made for them).
    Prune(ContainerPruneArgs),
    /// Start containers (= start).
    Start(containers::Ids),
    /// Stop containers (= stop).
    Stop(containers::StopArgs),
    /// Restart `run` containers (= restart).
    Restart(containers::StopArgs),
    /// Kill containers (= kill).
    Kill(containers::KillArgs),
    /// Print a container's logs (= logs).
    Logs(logs::LogsArgs),
    /// Show containers' status (= inspect).
    Inspect(containers::InspectArgs),
    /// Run a command in a running container (= exec).
    Exec(stream::ExecArgs),
    /// Attach to a running container's stdio (= attach).
    Attach(stream::AttachArgs),
    /// Show a container's processes (= top).
    Top(containers::TopArgs),
    /// Show containers' resource usage (= stats).
    Stats(LiveStatsArgs),
    /// Run a command in a new pod and container (= run).
    Run(Box<run::RunArgs>),
    /// Copy files between a container and the host (= cp).
    Cp(crate::cp::CpArgs),
    /// Make an image of a container's changes (= commit).
    Commit(crate::commit::CommitArgs),
    /// Show a `run` container's published ports (= port).
    Port(crate::ports::PortArgs),
    /// Create a container in a pod from CRI config files (= create; Docker's
    /// `create IMAGE` has no CRI equivalent here: use `run -d`).
    Create(containers::CreateArgs),
}

/// `system ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Show disk usage of images and containers.
    Df,
    /// Remove stopped containers and dangling images (-a: every unused image).
    Prune(SystemPruneArgs),
}

pub async fn image(ctx: &mut Ctx, cmd: ImageCommand, channel: Channel) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Ls(a) => images::images(ctx, a).await,
        ImageCommand::Rm(a) => images::rmi(ctx, a).await,
        ImageCommand::Inspect(a) => images::inspecti(ctx, a).await,
        ImageCommand::Prune(a) => prune::image_prune(ctx, a).await,
        ImageCommand::Push(a) => crate::push::push(channel, a, ctx.timeout).await.map(|()| 0),
        ImageCommand::Api(api::ApiCommand::Login(_) | api::ApiCommand::Logout(_)) => {
            anyhow::bail!("image login/logout: not image commands; use berthctl login/logout")
        }
        ImageCommand::Api(cmd) => api::run(cmd, channel, ctx.timeout).await.map(|()| 0),
    }
}

pub async fn container(ctx: &mut Ctx, cmd: ContainerCommand) -> anyhow::Result<i32> {
    match cmd {
        ContainerCommand::Ls(a) => containers::ps(ctx, a).await,
        ContainerCommand::Rm(a) => containers::rm(ctx, a).await,
        ContainerCommand::Prune(a) => prune::container_prune(ctx, a).await,
        ContainerCommand::Start(a) => containers::start(ctx, a).await,
        ContainerCommand::Stop(a) => containers::stop(ctx, a).await,
        ContainerCommand::Restart(a) => containers::restart(ctx, a).await,
        ContainerCommand::Kill(a) => containers::kill(ctx, a).await,
        ContainerCommand::Logs(a) => logs::logs(ctx, a).await,
        ContainerCommand::Inspect(a) => containers::inspect(ctx, a).await,
        ContainerCommand::Exec(a) => stream::exec(ctx, a).await,
        ContainerCommand::Attach(a) => stream::attach(ctx, a).await,
        ContainerCommand::Top(a) => containers::top(ctx, a).await,
        ContainerCommand::Stats(a) => live_stats(ctx, a).await,
        ContainerCommand::Run(a) => run::run(ctx, *a).await,
        ContainerCommand::Cp(a) => crate::cp::cp(ctx, a).await,
        ContainerCommand::Commit(a) => crate::commit::commit(ctx, a).await,
        ContainerCommand::Port(a) => crate::ports::port(ctx, a).await,
        ContainerCommand::Create(a) => containers::create(ctx, a).await,
    }
}

pub async fn system(ctx: &mut Ctx, cmd: SystemCommand) -> anyhow::Result<i32> {
    match cmd {
        SystemCommand::Df => prune::df(ctx).await,
        SystemCommand::Prune(a) => prune::system_prune(ctx, a).await,
    }
}
