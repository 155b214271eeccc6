//! Image commands over the CRI image service: `images`, `inspecti`, `rmi`, `imagefsinfo`.

use std::collections::HashMap;

use anyhow::bail;
use berth_proto as pb;
use serde_json::json;

use crate::filter::{parse_bool, reference_matches, split_tag, Filters};
use crate::format::{Row, Template};
use crate::output::{ago, emit, human_size, list_view, now_ns, parse_rfc3339, print_table, short_id, Format, ListView};
use crate::ps::docker_time;
use crate::{explain, json as js, resolve, Ctx};

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
    /// Show all images, the intermediate images of builds (their cache) too.
    #[arg(short, long)]
    all: bool,
    /// Docker's filters, KEY=VALUE (repeatable): dangling=true|false, reference=PATTERN
    /// (a glob on REPO or REPO:TAG), label=KEY[=VALUE] (the image config's labels),
    /// before=IMAGE, since=IMAGE (created before or after that image). Values of one key
    /// are ORed (label filters must all match), keys ANDed.
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Docker's Go-template subset: `table`, `json`, {{.Repository}} {{.Tag}} {{.ID}}
    /// {{.Digest}} {{.CreatedSince}} {{.CreatedAt}} {{.Size}} {{json .}}, \t for a tab.
    #[arg(long, value_name = "TEMPLATE")]
    format: Option<String>,
}

/// The `images --filter` keys.
const FILTER_KEYS: &[&str] = &["dangling", "reference", "label", "before", "since"];

/// The `images --format` fields and their headers.
const FIELDS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
];

/// Docker's default `images` table, for a bare `--format table`.
const DEFAULT_FORMAT: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

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
    /// Remove an image named by id with all its tags. An image a container (even a
    /// stopped one) uses cannot be removed or untagged over CRI: berthctl names the
    /// containers instead.
    #[arg(short, long)]
    force: bool,
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

/// An image's creation time (ns) and config labels, from ImageStatus's verbose info.
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub created: Option<i64>,
    pub labels: HashMap<String, String>,
    /// The config's ExposedPorts (`80/tcp`), sorted.
    pub exposed: Vec<String>,
    /// The config's Volumes (paths), sorted.
    pub volumes: Vec<String>,
}

/// The [`Details`] of the image `name`, `None` when there is no such image.
pub async fn details(ctx: &mut Ctx, name: &str) -> anyhow::Result<Option<(pb::Image, Details)>> {
    let s = ctx
        .img
        .image_status(ctx.req(pb::ImageStatusRequest {
            image: spec(name),
            verbose: true,
        }))
        .await
        .map_err(explain)?
        .into_inner();
    let Some(img) = s.image else { return Ok(None) };
    let info = js::info(&s.info);
    let config = info.get("imageSpec");
    let created = config
        .and_then(|c| c.get("created"))
        .and_then(|c| c.as_str())
        .and_then(parse_rfc3339);
    let labels = config
        .and_then(|c| c.pointer("/config/Labels"))
        .and_then(|l| l.as_object())
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let keys = |pointer: &str| {
        let mut keys: Vec<String> = config
            .and_then(|c| c.pointer(pointer))
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let exposed = keys("/config/ExposedPorts");
    let volumes = keys("/config/Volumes");
    Ok(Some((
        img,
        Details {
            created,
            labels,
            exposed,
            volumes,
        },
    )))
}

/// Lists the images; `image` narrows the list to one name, as `images IMAGE` does.
pub async fn list(ctx: &mut Ctx, image: Option<&str>) -> anyhow::Result<Vec<pb::Image>> {
    let filter = image.map(|i| pb::ImageFilter { image: spec(i) });
    Ok(ctx
        .img
        .list_images(ctx.req(pb::ListImagesRequest { filter }))
        .await
        .map_err(explain)?
        .into_inner()
        .images)
}

/// The creation time of the image a `before=`/`since=` filter names.
async fn created_of(ctx: &mut Ctx, key: &str, name: &str) -> anyhow::Result<i64> {
    match details(ctx, name).await? {
        Some((_, Details { created: Some(t), .. })) => Ok(t),
        Some(_) => bail!("--filter {key}={name}: the image's config has no creation time"),
        None => bail!("--filter {key}={name}: no such image"),
    }
}

/// Applies the `images` filters; each image comes back with its details (when fetched)
/// and the tags left to show (a reference filter shows only the tags it matches).
async fn apply_filters(
    ctx: &mut Ctx,
    f: &Filters,
    list: Vec<pb::Image>,
    need_details: bool,
) -> anyhow::Result<Vec<(pb::Image, Details)>> {
    let mut dangling = Vec::new();
    for v in f.values("dangling") {
        dangling.push(parse_bool("dangling", v)?);
    }
    let mut before = Vec::new();
    for v in f.values("before") {
        before.push(created_of(ctx, "before", v).await?);
    }
    let mut since = Vec::new();
    for v in f.values("since") {
        since.push(created_of(ctx, "since", v).await?);
    }
    let fetch = need_details || !f.values("label").is_empty() || !before.is_empty() || !since.is_empty();
    let mut out = Vec::new();
    for mut img in list {
        if !dangling.is_empty() && !dangling.contains(&img.repo_tags.is_empty()) {
            continue;
        }
        if !f.values("reference").is_empty() {
            img.repo_tags
                .retain(|t| f.values("reference").iter().any(|p| reference_matches(p, t)));
            if img.repo_tags.is_empty() {
                continue;
            }
        }
        let d = if fetch {
            details(ctx, &img.id).await?.map(|(_, d)| d).unwrap_or_default()
        } else {
            Details::default()
        };
        let created = d.created.unwrap_or(0);
        if !f.labels_match(&d.labels)
            || (!before.is_empty() && !before.iter().any(|t| created < *t))
            || (!since.is_empty() && !since.iter().any(|t| created > *t))
        {
            continue;
        }
        out.push((img, d));
    }
    Ok(out)
}

/// An untagged image a build step made: part of the build cache, listed with `-a` only.
fn is_intermediate(img: &pb::Image) -> bool {
    img.repo_tags.is_empty()
        && img.repo_digests.is_empty()
        && img
            .spec
            .as_ref()
            .is_some_and(|s| s.annotations.contains_key(berth::build::BUILD_CACHE_ANNOTATION))
}

pub async fn images(ctx: &mut Ctx, a: ImagesArgs) -> anyhow::Result<i32> {
    let filters = Filters::parse(&a.filters, FILTER_KEYS)?;
    let template = a
        .format
        .as_deref()
        .map(|f| Template::parse(f, FIELDS, DEFAULT_FORMAT))
        .transpose()?;
    if template.is_some() && a.output != Format::Table {
        bail!("--format and -o {:?} both say how to print: give one", a.output);
    }
    let need_details = template
        .as_ref()
        .is_some_and(|t| t.uses("CreatedSince") || t.uses("CreatedAt"));
    let mut list = list(ctx, a.image.as_deref()).await?;
    if !a.all {
        list.retain(|i| !is_intermediate(i));
    }
    let list = apply_filters(ctx, &filters, list, need_details).await?;
    let view = ListView {
        latest: false,
        last: None,
        quiet: a.quiet,
        output: a.output,
    };
    let Some(list) = list_view(list, view, "images", |i| i.0.id.as_str(), |i| js::image(&i.0))? else {
        return Ok(0);
    };
    let now = now_ns();
    let mut rows = vec![];
    let mut formatted = vec![];
    for (img, d) in &list {
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
                .map(|t| match split_tag(t) {
                    (r, Some(tag)) => (r.to_string(), tag.to_string()),
                    (r, None) => (r.to_string(), "<none>".to_string()),
                })
                .collect()
        };
        for (repo, tag) in tags {
            if template.is_some() {
                let mut r = Row::default();
                r.values.insert("Repository", repo);
                r.values.insert("Tag", tag);
                r.values.insert("ID", short_id(&img.id, a.no_trunc));
                r.values.insert("Digest", digest.clone());
                r.values
                    .insert("CreatedSince", d.created.map(|t| ago(now, t)).unwrap_or_default());
                r.values
                    .insert("CreatedAt", d.created.map(docker_time).unwrap_or_default());
                r.values.insert("Size", human_size(img.size));
                r.labels = d.labels.clone().into_iter().collect();
                formatted.push(r);
                continue;
            }
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
    if let Some(t) = template {
        print!("{}", t.render(&formatted));
        return Ok(0);
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

/// Whether `name` names an image by (a prefix of) its id rather than by a name.
fn by_id(img: &pb::Image, name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    !hex.is_empty()
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && img.id.strip_prefix("sha256:").unwrap_or(&img.id).starts_with(hex)
        && !img.repo_tags.iter().any(|t| split_tag(t).0.ends_with(name))
}

/// The containers using the image `id`, as `name (short id, state)`.
pub async fn holders(ctx: &mut Ctx, id: &str) -> anyhow::Result<Vec<String>> {
    Ok(resolve::all_containers(ctx)
        .await?
        .into_iter()
        .filter(|c| c.image_id == id)
        .map(|c| {
            let name = c.metadata.map(|m| m.name).unwrap_or_default();
            let state = js::container_state(c.state)
                .trim_start_matches("CONTAINER_")
                .to_ascii_lowercase();
            format!("{name} ({}, {state})", short_id(&c.id, false))
        })
        .collect())
}

/// Removes one image (Docker's `rmi`): prints Untagged/Deleted lines.
async fn rmi_one(ctx: &mut Ctx, name: &str, force: bool) -> anyhow::Result<()> {
    let Some(img) = list_one(ctx, name).await? else {
        bail!("no such image: {name}")
    };
    let by_id = by_id(&img, name);
    if by_id && img.repo_tags.len() > 1 && !force {
        bail!(
            "image {name} is referenced by several tags ({}): name one tag, or use -f to remove the image with all of them",
            img.repo_tags.join(", ")
        );
    }
    let r = ctx
        .img
        .remove_image(ctx.req(pb::RemoveImageRequest { image: spec(name) }))
        .await;
    if let Err(e) = r {
        if e.code() == tonic::Code::FailedPrecondition {
            let users = holders(ctx, &img.id).await?;
            if !users.is_empty() {
                let why = if force {
                    "-f cannot help: CRI has no way to untag or remove an image a container uses"
                } else {
                    "remove them first (berthctl rm [-f] ...)"
                };
                bail!("image {name} is used by container(s) {}; {why}", users.join(", "));
            }
        }
        return Err(explain(e));
    }
    let after = list_one(ctx, &img.id).await?;
    let gone = after.is_none();
    let left = after.map(|i| i.repo_tags).unwrap_or_default();
    for t in img.repo_tags.iter().filter(|t| !left.contains(t)) {
        println!("Untagged: {t}");
    }
    if gone {
        println!("Deleted: {}", img.id);
    }
    Ok(())
}

/// The image `name` names, if any.
async fn list_one(ctx: &mut Ctx, name: &str) -> anyhow::Result<Option<pb::Image>> {
    Ok(ctx
        .img
        .image_status(ctx.req(pb::ImageStatusRequest {
            image: spec(name),
            verbose: false,
        }))
        .await
        .map_err(explain)?
        .into_inner()
        .image)
}

pub async fn rmi(ctx: &mut Ctx, a: RmiArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in &a.images {
        if let Err(e) = rmi_one(ctx, name, a.force).await {
            eprintln!("berthctl: removing {name}: {e:#}");
            code = 1;
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
