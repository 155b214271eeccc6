//! `berthctl pull`: pulls through `berth.v1.Images/PullImage` and shows the progress.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Instant;

use berth::image::auth::{from_docker_config, Credentials};
use berth::image::reference::Reference;
use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_client::ImagesClient;
use tonic::transport::Channel;

use super::login::config_path;
use super::progress::Board;
use super::{explain, human_size, request};

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    pub image: String,
    /// Registry credentials as USERNAME[:PASSWORD] (default: the credentials file's entry).
    #[arg(long)]
    pub creds: Option<String>,
    /// Registry credentials as base64 of USERNAME:PASSWORD.
    #[arg(long)]
    pub auth: Option<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Docker-style credentials file [default: $DOCKER_CONFIG/config.json, else
    /// /root/.docker/config.json, the file berthd reads].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// The credentials to send: the flags, else the credentials file's entry for the registry.
fn credentials(args: &PullArgs, registry: &str) -> anyhow::Result<Option<pb::Auth>> {
    let server_address = registry.to_string();
    if let Some(c) = &args.creds {
        let (username, password) = c.split_once(':').unwrap_or((c, ""));
        return Ok(Some(pb::Auth {
            username: username.into(),
            password: password.into(),
            server_address,
            ..Default::default()
        }));
    }
    if let Some(a) = &args.auth {
        return Ok(Some(pb::Auth {
            auth: a.clone(),
            server_address,
            ..Default::default()
        }));
    }
    let path = config_path(args.config.as_deref());
    // An unreadable file is not fatal: the pull goes on without credentials (as berthd's does).
    let found = from_docker_config(&path, registry).unwrap_or_else(|e| {
        eprintln!("berthctl: ignoring the credentials file: {e}");
        None
    });
    Ok(found.map(|c| {
        let mut auth = pb::Auth {
            server_address,
            ..Default::default()
        };
        match c {
            Credentials::Anonymous => {}
            Credentials::Basic { username, password } => {
                auth.username = username;
                auth.password = password;
            }
            Credentials::Bearer(t) => auth.registry_token = t,
            Credentials::Identity(t) => auth.identity_token = t,
        }
        auth
    }))
}

pub async fn pull(client: &mut ImagesClient<Channel>, args: PullArgs, timeout: Option<u64>) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.image).map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = credentials(&args, &reference.registry)?;
    let started = Instant::now();
    let mut stream = client
        .pull_image(request(
            pb::PullImageRequest {
                image: args.image.clone(),
                auth,
            },
            timeout,
        ))
        .await
        .map_err(explain)?
        .into_inner();
    let tty = !args.quiet && std::io::stderr().is_terminal();
    let mut board = Board::new(tty);
    let mut stderr = std::io::stderr();
    let mut done = None;
    while let Some(event) = stream.message().await.map_err(explain)? {
        match event.event {
            Some(pb::pull_image_event::Event::Layer(p)) => {
                let line = board.update(&p, Instant::now());
                if let Some(line) = line.filter(|_| !tty && !args.quiet) {
                    eprintln!("{line}");
                }
                board.draw(&mut stderr, Instant::now(), false);
            }
            Some(pb::pull_image_event::Event::Done(image)) => done = Some(image),
            None => {}
        }
    }
    board.draw(&mut stderr, Instant::now(), true);
    let image = done.ok_or_else(|| anyhow::anyhow!("berthd ended the pull without a result"))?;
    if args.quiet {
        println!("{}", image.id);
        return Ok(());
    }
    let secs = started.elapsed().as_secs_f64();
    let downloaded = board.downloaded();
    println!(
        "Pulled {}: {}, {}, {:.1}s, {:.1} MB/s",
        image.reference,
        super::count(image.layers as usize, "layer"),
        human_size(image.size),
        secs,
        downloaded as f64 / 1e6 / secs.max(0.001)
    );
    println!("Digest: {}", image.repo_digest);
    println!("Image: {}", image.id);
    Ok(())
}
