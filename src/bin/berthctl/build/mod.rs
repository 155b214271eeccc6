//! `berthctl build`: sends a Dockerfile and its context to berthd's builder
//! (`berth.v1.Builds/Build`) and shows the steps as they run.

mod context;

use std::collections::HashMap;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use berth::build::dockerfile::Ignore;
use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::builds_client::BuildsClient;
use tonic::transport::Channel;

use crate::explain;

const CHUNK: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name (and tag) for the image: NAME[:TAG]; repeatable.
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// The Dockerfile [default: CONTEXT/Dockerfile]; `-` reads it from standard input.
    #[arg(short, long = "file", value_name = "PATH")]
    file: Option<String>,
    /// KEY=VALUE for an ARG (KEY alone: this environment's value); repeatable.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    target: Option<String>,
    /// KEY=VALUE label on the image; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Run every step, taking nothing from the cache.
    #[arg(long)]
    no_cache: bool,
    /// Pull FROM images even when present.
    #[arg(long)]
    pull: bool,
    /// Network of RUN steps: default (the pod network) or host.
    #[arg(long, default_value = "default")]
    network: String,
    /// Only the node's own platform can be built (e.g. linux/amd64).
    #[arg(long)]
    platform: Option<String>,
    /// Layer compression: gzip, zstd, or estargz (the image built, base layers too, as
    /// `convert --estargz` writes it).
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "estargz"])]
    compression: String,
    /// The same as `--compression estargz`.
    #[arg(long, conflicts_with = "compression")]
    estargz: bool,
    /// Output style: auto, plain or tty (all print the steps as they run).
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// The build context: a directory, or `-` for a Dockerfile on standard input and no context.
    context: String,
}

impl BuildArgs {
    /// A build of `context` with these settings and the defaults for the rest.
    pub fn new(
        context: &std::path::Path,
        file: Option<String>,
        tags: Vec<String>,
        build_args: Vec<String>,
        target: Option<String>,
    ) -> BuildArgs {
        BuildArgs {
            tags,
            file,
            build_args,
            target,
            labels: Vec::new(),
            no_cache: false,
            pull: false,
            network: "default".into(),
            platform: None,
            progress: "auto".into(),
            compression: "gzip".into(),
            estargz: false,
            quiet: false,
            context: context.display().to_string(),
        }
    }
}

fn pairs(list: &[String], what: &str, from_env: bool) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for item in list {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            None if from_env && !item.is_empty() => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
            _ => bail!("{what} {item:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

fn read_stdin() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        bail!("no Dockerfile: redirect standard input");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the Dockerfile")?;
    Ok(text)
}

/// The Dockerfile's text and the context as a tar file (None: no context).
fn prepare(a: &BuildArgs) -> anyhow::Result<(String, Option<tempfile::NamedTempFile>)> {
    if a.context == "-" {
        return Ok((read_stdin()?, None));
    }
    let dir = PathBuf::from(&a.context);
    if !dir.is_dir() {
        bail!("context {}: not a directory", dir.display());
    }
    let dockerfile = match a.file.as_deref() {
        Some("-") => read_stdin()?,
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?,
        None => {
            let path = dir.join("Dockerfile");
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
    };
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text).map_err(|e| anyhow::anyhow!(".dockerignore: {e}"))?,
        Err(_) => Ignore::default(),
    };
    let tmp = tempfile::NamedTempFile::new().context("a temporary file for the context")?;
    let (mut out, _) = context::write(&dir, ignore, std::io::BufWriter::new(tmp.reopen()?))
        .with_context(|| format!("reading the context {}", dir.display()))?;
    out.flush()?;
    Ok((dockerfile, Some(tmp)))
}

pub async fn build(mut client: BuildsClient<Channel>, a: BuildArgs, timeout: Option<u64>) -> anyhow::Result<i32> {
    let (dockerfile, context) = prepare(&a)?;
    let options = pb::BuildOptions {
        dockerfile,
        tags: a.tags.clone(),
        build_args: pairs(&a.build_args, "--build-arg", true)?,
        target: a.target.clone().unwrap_or_default(),
        no_cache: a.no_cache,
        pull: a.pull,
        network: if a.network == "default" {
            String::new()
        } else {
            a.network.clone()
        },
        platform: a.platform.clone().unwrap_or_default(),
        labels: pairs(&a.labels, "--label", false)?,
        compression: if a.estargz {
            "estargz".into()
        } else {
            a.compression.clone()
        },
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BuildRequest>(4);
    let sender = tokio::spawn(async move {
        let first = pb::BuildRequest {
            part: Some(pb::build_request::Part::Options(options)),
        };
        if tx.send(first).await.is_err() {
            return Ok(());
        }
        let Some(tmp) = context else { return Ok(()) };
        let mut file = tmp.reopen()?;
        loop {
            let mut data = vec![0u8; CHUNK];
            let n = file.read(&mut data)?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            data.truncate(n);
            let msg = pb::BuildRequest {
                part: Some(pb::build_request::Part::Context(data)),
            };
            if tx.send(msg).await.is_err() {
                return Ok(());
            }
        }
    });
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(t) = timeout {
        request.set_timeout(std::time::Duration::from_secs(t));
    }
    let mut stream = client.build(request).await.map_err(explain)?.into_inner();
    let mut result = None;
    let mut err = std::io::stderr();
    while let Some(event) = stream.message().await.map_err(explain)? {
        match event.event {
            Some(pb::build_event::Event::Step(s)) if !a.quiet => {
                let _ = writeln!(err, "[{}/{}] {}", s.index, s.total, s.instruction);
            }
            Some(pb::build_event::Event::Output(bytes)) if !a.quiet => {
                let _ = err.write_all(&bytes);
            }
            Some(pb::build_event::Event::Done(d)) if !a.quiet => {
                let _ = if d.cached {
                    writeln!(err, "[{}] CACHED", d.index)
                } else {
                    writeln!(err, "[{}] done in {:.2}s", d.index, d.seconds)
                };
            }
            Some(pb::build_event::Event::Warning(w)) => {
                let _ = writeln!(err, "WARNING: {w}");
            }
            Some(pb::build_event::Event::Result(r)) => result = Some(r),
            _ => {}
        }
    }
    sender
        .await
        .context("sending the context")?
        .context("reading the context")?;
    let r = result.context("berthd ended the build without a result")?;
    if a.quiet {
        println!("{}", r.image_id);
    } else {
        println!("Successfully built {}", r.image_id);
        for t in &r.tags {
            println!("Successfully tagged {t}");
        }
    }
    Ok(0)
}
