//! `berthctl save` and `berthctl load`: image archives streamed to and from berthd.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_client::ImagesClient;
use tokio::io::AsyncReadExt as _;
use tonic::transport::Channel;

use super::{explain, request};

/// Bytes per message sent to berthd.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// `docker save` layout: manifest.json, configs, layer tars, repositories.
    Docker,
    /// OCI image layout: oci-layout, index.json, blobs/sha256.
    Oci,
}

#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to this file (default: standard output, if it is not a terminal).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "docker")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from this file (default: standard input).
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Print only the image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn save(client: &mut ImagesClient<Channel>, args: SaveArgs, timeout: Option<u64>) -> anyhow::Result<()> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("refusing to write an archive to a terminal: use -o FILE or redirect the output");
    }
    let format = match args.format {
        Format::Docker => pb::ArchiveFormat::Docker,
        Format::Oci => pb::ArchiveFormat::Oci,
    };
    let mut stream = client
        .export_image(request(
            pb::ExportImageRequest {
                images: args.images,
                format: format as i32,
            },
            timeout,
        ))
        .await
        .map_err(explain)?
        .into_inner();
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed into place only when complete.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::Builder::new()
                .prefix(".berthctl-save-")
                .tempfile_in(dir)
                .with_context(|| format!("writing in {}", dir.display()))?;
            while let Some(chunk) = stream.message().await.map_err(explain)? {
                tmp.write_all(&chunk.data)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.message().await.map_err(explain)? {
                out.write_all(&chunk.data).context("writing standard output")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

pub async fn load(client: &mut ImagesClient<Channel>, args: LoadArgs, timeout: Option<u64>) -> anyhow::Result<()> {
    let mut input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &args.input {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("no archive: use -i FILE or redirect standard input");
            }
            use std::os::fd::AsFd as _;
            let fd = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .context("standard input")?;
            Box::new(tokio::fs::File::from_std(std::fs::File::from(fd)))
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportImageChunk>(4);
    let reader = tokio::spawn(async move {
        loop {
            let mut data = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                let n = input.read(&mut data[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok::<(), std::io::Error>(());
            }
            data.truncate(filled);
            if tx.send(pb::ImportImageChunk { data }).await.is_err() {
                return Ok(());
            }
        }
    });
    let result = client
        .import_image(request(tokio_stream::wrappers::ReceiverStream::new(rx), timeout))
        .await;
    reader
        .await
        .context("reading the archive")?
        .context("reading the archive")?;
    let response = result.map_err(explain)?.into_inner();
    for image in response.images {
        if args.quiet {
            println!("{}", image.id);
        } else if image.repo_tags.is_empty() {
            println!("Loaded image ID: {}", image.id);
        } else {
            for tag in image.repo_tags {
                println!("Loaded image: {tag}");
            }
        }
    }
    Ok(())
}
