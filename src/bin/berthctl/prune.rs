//! Docker's `image prune`, `container prune`, `system prune` and `system df`. Without
//! `-f` the prunes ask on stdin first, as Docker does; no answer (no terminal, empty stdin)
//! is a No and exit status 1.

use std::collections::HashSet;
use std::io::{BufRead as _, Write as _};

use berth_proto as pb;

use crate::output::{human_size, print_table};
use crate::{containers, explain, images, resolve, Ctx};

#[derive(Debug, clap::Args)]
pub struct ImagePruneArgs {
    /// Remove every image no container uses, not only dangling (untagged) ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ContainerPruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct SystemPruneArgs {
    /// Remove every image no container uses, not only dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// Asks `warning` + "Are you sure you want to continue? [y/N]" and reads the answer.
fn confirm(warning: &str) -> anyhow::Result<bool> {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !yes {
        println!();
        eprintln!("berthctl: not confirmed: nothing removed (answer y, or pass -f)");
    }
    Ok(yes)
}

/// The images `image prune` removes: not used by any container (`used` holds the image
/// ids containers use) and, unless `all`, without tags.
pub fn prunable<'a>(list: &'a [pb::Image], used: &HashSet<String>, all: bool) -> Vec<&'a pb::Image> {
    list.iter()
        .filter(|i| !used.contains(&i.id) && (all || i.repo_tags.is_empty()))
        .collect()
}

/// The ids of the images containers use.
async fn used_images(ctx: &mut Ctx) -> anyhow::Result<HashSet<String>> {
    Ok(resolve::all_containers(ctx)
        .await?
        .into_iter()
        .map(|c| c.image_id)
        .collect())
}

async fn prune_images(ctx: &mut Ctx, all: bool) -> anyhow::Result<i32> {
    let list = images::list(ctx, None).await?;
    let used = used_images(ctx).await?;
    let mut code = 0;
    let mut lines = Vec::new();
    let mut reclaimed = 0;
    for img in prunable(&list, &used, all) {
        let r = ctx
            .img
            .remove_image(ctx.req(pb::RemoveImageRequest {
                image: Some(pb::ImageSpec {
                    image: img.id.clone(),
                    ..Default::default()
                }),
            }))
            .await;
        match r {
            Ok(_) => {
                lines.extend(img.repo_tags.iter().map(|t| format!("untagged: {t}")));
                lines.push(format!("deleted: {}", img.id));
                reclaimed += img.size;
            }
            Err(e) => {
                eprintln!("berthctl: removing image {}: {:#}", img.id, explain(e));
                code = 1;
            }
        }
    }
    if !lines.is_empty() {
        println!("Deleted Images:\n{}\n", lines.join("\n"));
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(code)
}

async fn prune_containers(ctx: &mut Ctx) -> anyhow::Result<i32> {
    let stopped: Vec<pb::Container> = resolve::all_containers(ctx)
        .await?
        .into_iter()
        .filter(|c| c.state != pb::ContainerState::ContainerRunning as i32)
        .collect();
    let mut code = 0;
    let mut removed = Vec::new();
    for c in stopped {
        match containers::remove(ctx, &c, false).await {
            Ok(()) => removed.push(c.id),
            Err(e) => {
                eprintln!("berthctl: removing container {}: {e:#}", c.id);
                code = 1;
            }
        }
    }
    if !removed.is_empty() {
        println!("Deleted Containers:\n{}\n", removed.join("\n"));
    }
    Ok(code)
}

/// `image prune [-a] [-f]`.
pub async fn image_prune(ctx: &mut Ctx, a: ImagePruneArgs) -> anyhow::Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning)? {
        return Ok(1);
    }
    prune_images(ctx, a.all).await
}

/// `container prune [-f]`: removes every container that is not running, and the pod
/// `berthctl run` made for it.
pub async fn container_prune(ctx: &mut Ctx, a: ContainerPruneArgs) -> anyhow::Result<i32> {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(1);
    }
    prune_containers(ctx).await
}

/// `system prune [-a] [-f]`: container prune, then image prune.
pub async fn system_prune(ctx: &mut Ctx, a: SystemPruneArgs) -> anyhow::Result<i32> {
    let images = if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    let warning = format!("WARNING! This will remove:\n  - all stopped containers\n  - {images}");
    if !a.force && !confirm(&warning)? {
        return Ok(1);
    }
    let c = prune_containers(ctx).await?;
    let i = prune_images(ctx, a.all).await?;
    Ok(c.max(i))
}

/// `size (percent%)` of a reclaimable amount.
fn share(part: u64, total: u64) -> String {
    let pct = (part * 100).checked_div(total).unwrap_or(0);
    format!("{} ({pct}%)", human_size(part))
}

/// `system df`: images (count, used by a container, size, reclaimable), containers
/// (count, running, writable layers as ContainerStats reports them) and volumes.
pub async fn df(ctx: &mut Ctx) -> anyhow::Result<i32> {
    let list = images::list(ctx, None).await?;
    let used = used_images(ctx).await?;
    let size: u64 = list.iter().map(|i| i.size).sum();
    let active = list.iter().filter(|i| used.contains(&i.id)).count();
    let free: u64 = prunable(&list, &used, true).iter().map(|i| i.size).sum();
    let all = resolve::all_containers(ctx).await?;
    let running: HashSet<String> = all
        .iter()
        .filter(|c| c.state == pb::ContainerState::ContainerRunning as i32)
        .map(|c| c.id.clone())
        .collect();
    let stats = ctx
        .rt
        .list_container_stats(ctx.req(pb::ListContainerStatsRequest { filter: None }))
        .await
        .map_err(explain)?
        .into_inner()
        .stats;
    let (mut layers, mut idle) = (0u64, 0u64);
    for s in &stats {
        let bytes = s
            .writable_layer
            .as_ref()
            .and_then(|w| w.used_bytes.as_ref())
            .map_or(0, |b| b.value);
        layers += bytes;
        if s.attributes.as_ref().is_some_and(|a| !running.contains(&a.id)) {
            idle += bytes;
        }
    }
    let rows = vec![
        vec![
            "Images".into(),
            list.len().to_string(),
            active.to_string(),
            human_size(size),
            share(free, size),
        ],
        vec![
            "Containers".into(),
            all.len().to_string(),
            running.len().to_string(),
            human_size(layers),
            share(idle, layers),
        ],
        volumes_row(ctx).await?,
    ];
    print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows);
    Ok(0)
}

/// Volumes: count, mounted by a container, bytes, bytes of the unused ones.
async fn volumes_row(ctx: &mut Ctx) -> anyhow::Result<Vec<String>> {
    let req = berth_proto::berth::v1::ListVolumesRequest { sizes: true };
    let volumes = ctx
        .vol
        .list_volumes(ctx.req(req))
        .await
        .map_err(explain)?
        .into_inner()
        .volumes;
    let size: u64 = volumes.iter().map(|v| v.size.max(0) as u64).sum();
    let active = volumes.iter().filter(|v| !v.used_by.is_empty()).count();
    let idle: u64 = volumes
        .iter()
        .filter(|v| v.used_by.is_empty())
        .map(|v| v.size.max(0) as u64)
        .sum();
    Ok(vec![
        "Local Volumes".into(),
        volumes.len().to_string(),
        active.to_string(),
        human_size(size),
        share(idle, size),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str]) -> pb::Image {
        pb::Image {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            size: 10,
            ..Default::default()
        }
    }

    #[test]
    fn prune_picks_dangling_or_unused_images() {
        let list = vec![
            image("a", &["x:1"]),
            image("b", &[]),
            image("c", &["y:1"]),
            image("d", &[]),
        ];
        let used: HashSet<String> = ["c".to_string(), "d".to_string()].into();
        let ids = |v: Vec<&pb::Image>| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(prunable(&list, &used, false)), ["b"]);
        assert_eq!(ids(prunable(&list, &used, true)), ["a", "b"]);
        assert_eq!(share(5, 20), "5B (25%)");
        assert_eq!(share(0, 0), "0B (0%)");
    }
}
