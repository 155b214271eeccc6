//! Image commands over the CRI image service: `images`, `inspecti`, `rmi`, `imagefsinfo`.

use anyhow::bail;
use berth_proto as pb;
use serde_json::json;

use crate::output::{emit, human_size, list_view, print_table, short_id, Format, ListView};
use crate::{explain, json as js, Ctx};

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Only this image (name, tag, digest or id).
    image: Option<String>,
    /// Only show ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Show full image ids.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct InspectiArgs {
    /// Images by name, tag, digest or id.
    #[arg(required = true)]
    images: Vec<String>,
    /// Output format (json or yaml).
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Images by name, tag, digest or id.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct FsArgs {
    /// Output format (json or yaml).
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

fn spec(image: &str) -> Option<pb::ImageSpec> {
    Some(pb::ImageSpec {
        image: image.into(),
        ..Default::default()
    })
}

pub async fn images(ctx: &mut Ctx, a: ImagesArgs) -> anyhow::Result<i32> {
    let filter = a.image.as_deref().map(|i| pb::ImageFilter { image: spec(i) });
    let list = ctx
        .img
        .list_images(ctx.req(pb::ListImagesRequest { filter }))
        .await
        .map_err(explain)?
        .into_inner()
        .images;
    let view = ListView {
        latest: false,
        last: None,
        quiet: a.quiet,
        output: a.output,
    };
    let Some(list) = list_view(list, view, "images", |i| i.id.as_str(), js::image)? else {
        return Ok(0);
    };
    let mut rows = vec![];
    for img in &list {
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
            if a.digests {
                row.push(if a.no_trunc {
                    digest.clone()
                } else {
                    digest.chars().take(20).collect()
                });
            }
            row.push(short_id(&img.id, a.no_trunc));
            row.push(human_size(img.size));
            rows.push(row);
        }
    }
    let mut header = vec!["IMAGE", "TAG"];
    if a.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "SIZE"]);
    print_table(&header, &rows);
    Ok(0)
}

pub async fn inspecti(ctx: &mut Ctx, a: InspectiArgs) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    for name in &a.images {
        let s = ctx
            .img
            .image_status(ctx.req(pb::ImageStatusRequest {
                image: spec(name),
                verbose: true,
            }))
            .await
            .map_err(explain)?
            .into_inner();
        let Some(img) = s.image else {
            bail!("no such image: {name}")
        };
        out.push(json!({"status": js::image(&img), "info": js::info(&s.info)}));
    }
    for v in out {
        emit(&v, a.output)?;
    }
    Ok(0)
}

pub async fn rmi(ctx: &mut Ctx, a: RmiArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in a.images {
        let status = ctx
            .img
            .image_status(ctx.req(pb::ImageStatusRequest {
                image: spec(&name),
                verbose: false,
            }))
            .await
            .map_err(explain)?
            .into_inner();
        if status.image.is_none() {
            eprintln!("berthctl: no such image: {name}");
            code = 1;
            continue;
        }
        let r = ctx
            .img
            .remove_image(ctx.req(pb::RemoveImageRequest { image: spec(&name) }))
            .await;
        match r {
            Ok(_) => println!("Deleted: {name}"),
            Err(e) => {
                eprintln!("berthctl: removing {name}: {:#}", explain(e));
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn imagefsinfo(ctx: &mut Ctx, a: FsArgs) -> anyhow::Result<i32> {
    let r = ctx
        .img
        .image_fs_info(ctx.req(pb::ImageFsInfoRequest {}))
        .await
        .map_err(explain)?
        .into_inner();
    let fs: Vec<_> = r.image_filesystems.iter().map(js::filesystem).collect();
    let cfs: Vec<_> = r.container_filesystems.iter().map(js::filesystem).collect();
    emit(&json!({"imageFilesystems": fs, "containerFilesystems": cfs}), a.output)?;
    Ok(0)
}
