//! `berthctl`: Berth's command-line client, with crictl's habits. It talks CRI to berthd
//! over the unix socket given by `--runtime-endpoint`, `BERTH_ENDPOINT`, the
//! `runtime-endpoint` of `/etc/crictl.yaml`, or the default `unix:///run/berth/berth.sock`.

mod api;
mod run;

use std::time::Duration;

use anyhow::{bail, Context as _};
use berth_proto as pb;
use berth_proto::image_service_client::ImageServiceClient;
use berth_proto::runtime_service_client::RuntimeServiceClient;
use clap::{Parser, Subcommand, ValueEnum};
use tonic::transport::Channel;

const DEFAULT_ENDPOINT: &str = "unix:///run/berth/berth.sock";

#[derive(Debug, Parser)]
#[command(
    name = "berthctl",
    version,
    about = "Command-line client for the Berth container runtime"
)]
struct Cli {
    /// CRI endpoint of berthd (unix:///PATH).
    #[arg(short = 'r', long, global = true, env = "BERTH_ENDPOINT")]
    runtime_endpoint: Option<String>,
    /// Seconds to wait for each call (pulls get no limit unless this is set).
    #[arg(short = 't', long, global = true)]
    timeout: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the runtime's name and versions.
    Version,
    /// Show the runtime's status conditions and configuration.
    Info,
    /// List images.
    Images {
        /// Only this image (name, tag, digest or id).
        image: Option<String>,
        /// Only show ids.
        #[arg(short, long)]
        quiet: bool,
        /// Show digests.
        #[arg(long)]
        digests: bool,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show an image's status as JSON.
    Inspecti { images: Vec<String> },
    /// Remove images.
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show image filesystem usage as JSON.
    Imagefsinfo,
    /// Run a command in a new pod and container (docker run style).
    Run(run::RunArgs),
    #[command(flatten)]
    Api(api::ApiCommand),
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
fn explain(status: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    let what = match status.code() {
        Code::NotFound => "not found",
        Code::InvalidArgument => "invalid request",
        Code::Unauthenticated => "authentication failed",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "content verification failed",
        Code::Unimplemented => "not supported by this berthd",
        Code::DeadlineExceeded => "timed out",
        _ => "failed",
    };
    anyhow::anyhow!("{what}: {}", status.message())
}

fn request<T>(msg: T, timeout: Option<u64>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = timeout {
        req.set_timeout(Duration::from_secs(t));
    }
    req
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("berthctl: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let channel = connect(&endpoint(&cli)).await?;
    let mut runtime = RuntimeServiceClient::new(channel.clone());
    let mut images = ImageServiceClient::new(channel.clone()).max_decoding_message_size(16 << 20);
    let t = cli.timeout;
    match cli.command {
        Command::Run(args) => {
            let code = run::run(&mut runtime, &mut images, args).await?;
            std::process::exit(code);
        }
        Command::Version => {
            let v = runtime
                .version(request(pb::VersionRequest::default(), t))
                .await
                .map_err(explain)?
                .into_inner();
            println!(
                "Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}",
                v.version, v.runtime_name, v.runtime_version, v.runtime_api_version
            );
        }
        Command::Info => {
            let s = runtime
                .status(request(pb::StatusRequest { verbose: true }, t))
                .await
                .map_err(explain)?
                .into_inner();
            let conditions: Vec<_> = s
                .status
                .unwrap_or_default()
                .conditions
                .into_iter()
                .map(|c| serde_json::json!({"type": c.r#type, "status": c.status, "reason": c.reason, "message": c.message}))
                .collect();
            let info = serde_json::json!({"status": {"conditions": conditions}, "info": s.info});
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        Command::Api(cmd) => api::run(cmd, channel, t).await?,
        Command::Images {
            image,
            quiet,
            digests,
            output,
        } => {
            let filter = image.map(|i| pb::ImageFilter {
                image: Some(pb::ImageSpec {
                    image: i,
                    ..Default::default()
                }),
            });
            let list = images
                .list_images(request(pb::ListImagesRequest { filter }, t))
                .await
                .map_err(explain)?
                .into_inner();
            print_images(&list.images, quiet, digests, output)?;
        }
        Command::Inspecti { images: names } => {
            if names.is_empty() {
                bail!("name at least one image");
            }
            for name in names {
                let spec = Some(pb::ImageSpec {
                    image: name.clone(),
                    ..Default::default()
                });
                let s = images
                    .image_status(request(
                        pb::ImageStatusRequest {
                            image: spec,
                            verbose: true,
                        },
                        t,
                    ))
                    .await
                    .map_err(explain)?
                    .into_inner();
                let Some(img) = s.image else {
                    bail!("no such image: {name}")
                };
                let info: serde_json::Value = s
                    .info
                    .get("info")
                    .and_then(|i| serde_json::from_str(i).ok())
                    .unwrap_or_default();
                let out = serde_json::json!({"status": image_json(&img), "info": info});
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
        }
        Command::Rmi { images: names } => {
            let mut failed = false;
            for name in names {
                let spec = Some(pb::ImageSpec {
                    image: name.clone(),
                    ..Default::default()
                });
                let status = images
                    .image_status(request(
                        pb::ImageStatusRequest {
                            image: spec.clone(),
                            verbose: false,
                        },
                        t,
                    ))
                    .await
                    .map_err(explain)?
                    .into_inner();
                if status.image.is_none() {
                    eprintln!("berthctl: no such image: {name}");
                    failed = true;
                    continue;
                }
                images
                    .remove_image(request(pb::RemoveImageRequest { image: spec }, t))
                    .await
                    .map_err(explain)?;
                println!("Deleted: {name}");
            }
            if failed {
                std::process::exit(1);
            }
        }
        Command::Imagefsinfo => {
            let r = images
                .image_fs_info(request(pb::ImageFsInfoRequest {}, t))
                .await
                .map_err(explain)?
                .into_inner();
            let fs: Vec<_> = r
                .image_filesystems
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "mountpoint": f.fs_id.as_ref().map(|i| i.mountpoint.clone()),
                        "usedBytes": f.used_bytes.as_ref().map(|u| u.value),
                        "inodesUsed": f.inodes_used.as_ref().map(|u| u.value),
                        "timestamp": f.timestamp,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"imageFilesystems": fs}))?
            );
        }
    }
    Ok(())
}

fn image_json(img: &pb::Image) -> serde_json::Value {
    serde_json::json!({
        "id": img.id,
        "repoTags": img.repo_tags,
        "repoDigests": img.repo_digests,
        "size": img.size.to_string(),
        "uid": img.uid.as_ref().map(|u| u.value),
        "username": img.username,
        "pinned": img.pinned,
    })
}

fn print_images(list: &[pb::Image], quiet: bool, digests: bool, output: Output) -> anyhow::Result<()> {
    if quiet {
        for img in list {
            println!("{}", img.id);
        }
        return Ok(());
    }
    if let Output::Json = output {
        let all: Vec<_> = list.iter().map(image_json).collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"images": all}))?);
        return Ok(());
    }
    let mut rows = vec![];
    for img in list {
        let short_id = img
            .id
            .trim_start_matches("sha256:")
            .chars()
            .take(13)
            .collect::<String>();
        let digest = img
            .repo_digests
            .first()
            .and_then(|d| d.split('@').nth(1))
            .unwrap_or("<none>")
            .to_string();
        let tags: Vec<(String, String)> = if img.repo_tags.is_empty() {
            let repo = img
                .repo_digests
                .first()
                .and_then(|d| d.split('@').next())
                .unwrap_or("<none>");
            vec![(repo.to_string(), "<none>".to_string())]
        } else {
            img.repo_tags
                .iter()
                .map(|t| match t.rsplit_once(':') {
                    Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
                    _ => (t.clone(), "<none>".to_string()),
                })
                .collect()
        };
        for (repo, tag) in tags {
            let mut row = vec![repo, tag];
            if digests {
                row.push(digest.chars().take(20).collect());
            }
            row.push(short_id.clone());
            row.push(human_size(img.size));
            rows.push(row);
        }
    }
    let mut header = vec!["IMAGE", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "SIZE"]);
    print_table(&header, &rows);
    Ok(())
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", units[u]).replace(".000", "")
    }
}
