//! `berthctl tag`, `berthctl convert` and `berthctl history`.

use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_client::ImagesClient;
use tonic::transport::Channel;

use super::{explain, human_size, print_table, request};
use crate::output::{ago, now_ns, parse_rfc3339};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Show full digests and commands.
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

pub async fn tag(
    client: &mut ImagesClient<Channel>,
    source: String,
    target: String,
    timeout: Option<u64>,
) -> anyhow::Result<()> {
    client
        .tag_image(request(pb::TagImageRequest { source, target }, timeout))
        .await
        .map_err(explain)?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Write eStargz layers: gzip layers with a table of contents, pullable by any runtime
    /// and lazily by readers that know eStargz.
    #[arg(long, required = true)]
    pub estargz: bool,
    /// The image: name, tag, digest or id.
    pub source: String,
    /// The new name (NAME[:TAG]).
    pub target: String,
}

/// Prints the new image's id.
pub async fn convert(
    client: &mut ImagesClient<Channel>,
    args: ConvertArgs,
    timeout: Option<u64>,
) -> anyhow::Result<()> {
    let format = if args.estargz { "estargz" } else { "" };
    let done = client
        .convert_image(request(
            pb::ConvertImageRequest {
                source: args.source,
                target: args.target,
                format: format.into(),
            },
            timeout,
        ))
        .await
        .map_err(explain)?
        .into_inner();
    println!("{}", done.id);
    Ok(())
}

pub async fn history(
    client: &mut ImagesClient<Channel>,
    args: HistoryArgs,
    timeout: Option<u64>,
) -> anyhow::Result<()> {
    let h = client
        .image_history(request(
            pb::ImageHistoryRequest {
                image: args.image.clone(),
            },
            timeout,
        ))
        .await
        .map_err(explain)?
        .into_inner();
    if let Format::Json = args.output {
        let entries: Vec<_> = h
            .entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "created": e.created,
                    "createdBy": e.created_by,
                    "author": e.author,
                    "comment": e.comment,
                    "emptyLayer": e.empty_layer,
                    "layer": e.layer_digest,
                    "size": e.size,
                })
            })
            .collect();
        let out = serde_json::json!({"id": h.id, "history": entries});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let now = now_ns();
    let rows: Vec<Vec<String>> = h
        .entries
        .iter()
        .rev()
        .map(|e| {
            let layer = if e.layer_digest.is_empty() {
                "<missing>".to_string()
            } else if args.no_trunc {
                e.layer_digest.clone()
            } else {
                e.layer_digest.trim_start_matches("sha256:").chars().take(12).collect()
            };
            let created = match parse_rfc3339(&e.created) {
                Some(t) if !args.no_trunc => ago(now, t),
                _ if e.created.is_empty() => "<unknown>".to_string(),
                _ => e.created.clone(),
            };
            let by = e.created_by.replace('\t', " ");
            let by = if args.no_trunc || by.chars().count() <= 45 {
                by
            } else {
                format!("{}…", by.chars().take(44).collect::<String>())
            };
            vec![layer, created, by, human_size(e.size), e.comment.clone()]
        })
        .collect();
    print_table(&["LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows);
    Ok(())
}
