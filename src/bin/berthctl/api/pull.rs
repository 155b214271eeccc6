//! `berthctl pull`: pulls through `berth.v1.Images/PullImage` and shows the progress.

use std::io::IsTerminal as _;
use std::time::Instant;

use berth::image::reference::Reference;
use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_client::ImagesClient;
use tonic::transport::Channel;

use super::creds::CredsArgs;
use super::progress::Board;
use super::{explain, human_size, request};

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    pub image: String,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub creds: CredsArgs,
}

pub async fn pull(client: &mut ImagesClient<Channel>, args: PullArgs, timeout: Option<u64>) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.image).map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = args.creds.for_registry(&reference.registry);
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
