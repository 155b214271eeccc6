//! The commands that use Berth's own image API (`berth.v1.Images`) rather than the CRI:
//! pull with live progress, login/logout, save/load, tag, history and convert; and volumes
//! (`berth.v1.Volumes`).

mod archive;
pub mod creds;
mod history;
mod login;
mod progress;
mod pull;
mod volume;

use std::time::Duration;

use berth_proto::berth::v1::images_client::ImagesClient;
use tonic::transport::Channel;

use crate::explain;
use crate::output::{human_size, print_table};

/// Largest message accepted from berthd.
const MAX_MESSAGE: usize = 16 << 20;

#[derive(Debug, clap::Subcommand)]
pub enum ApiCommand {
    /// Pull an image, showing each layer's progress.
    Pull(pull::PullArgs),
    /// Check registry credentials and store them for pulls.
    Login(login::LoginArgs),
    /// Remove a registry's stored credentials.
    Logout(login::LogoutArgs),
    /// Write images to a tar archive (docker save or OCI image layout).
    Save(archive::SaveArgs),
    /// Load images from a tar archive (either format).
    Load(archive::LoadArgs),
    /// Give an image another name.
    Tag {
        /// The image: name, tag, digest or id.
        source: String,
        /// The new name (NAME[:TAG]).
        target: String,
    },
    /// Show an image's history.
    History(history::HistoryArgs),
    /// Rewrite an image's layers as eStargz (lazily pullable) under a new name.
    Convert(history::ConvertArgs),
    /// Manage volumes (create, ls, inspect, rm, prune).
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
}

/// Runs `cmd` against the berthd behind `channel`; `timeout` (seconds) limits each call.
pub async fn run(cmd: ApiCommand, channel: Channel, timeout: Option<u64>) -> anyhow::Result<()> {
    if let ApiCommand::Volume(cmd) = cmd {
        let mut volumes = berth_proto::berth::v1::volumes_client::VolumesClient::new(channel);
        return volume::run(&mut volumes, cmd, timeout).await;
    }
    let mut client = ImagesClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    match cmd {
        ApiCommand::Pull(args) => pull::pull(&mut client, args, timeout).await,
        ApiCommand::Login(args) => login::login(&mut client, args, timeout).await,
        ApiCommand::Logout(args) => login::logout(args),
        ApiCommand::Save(args) => archive::save(&mut client, args, timeout).await,
        ApiCommand::Load(args) => archive::load(&mut client, args, timeout).await,
        ApiCommand::Tag { source, target } => history::tag(&mut client, source, target, timeout).await,
        ApiCommand::History(args) => history::history(&mut client, args, timeout).await,
        ApiCommand::Convert(args) => history::convert(&mut client, args, timeout).await,
        ApiCommand::Volume(_) => Ok(()),
    }
}

fn request<T>(msg: T, timeout: Option<u64>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = timeout {
        req.set_timeout(Duration::from_secs(t));
    }
    req
}

/// `1 layer`, `2 layers`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
