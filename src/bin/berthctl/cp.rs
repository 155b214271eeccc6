//! `berthctl cp`: files between a container and the host, with Docker's path rules. The
//! container side is berthd's (`StatContainerPath`, `CopyFromContainer`,
//! `CopyToContainer`: resolved inside the container, never leading out); the host side is
//! a tar archive this command writes or extracts (with Berth's own unpacker, so a
//! container's archive cannot write outside the destination either).

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use berth_proto::berth::v1 as api;
use tokio_stream::StreamExt as _;

use crate::{explain, resolve, Ctx};

#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// CONTAINER:SRC_PATH, a host path, or - (a tar archive on stdin).
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar archive on stdout).
    pub dest: String,
    /// Follow a symlink given as the source.
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Keep owners (uid/gid) as they are; else files get root's in the container and
    /// yours on the host, as with docker cp.
    #[arg(short, long)]
    pub archive: bool,
}

/// `CONTAINER:PATH` split; `None` for a host path (absolute or relative, or `-`).
fn container_side(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') || arg == "-" {
        return None;
    }
    arg.split_once(':')
}

pub async fn cp(ctx: &mut Ctx, a: CpArgs) -> anyhow::Result<i32> {
    match (container_side(&a.src), container_side(&a.dest)) {
        (Some((c, path)), None) => {
            let id = resolve::container(ctx, c).await?.id;
            from_container(ctx, &id, path, &a).await?;
        }
        (None, Some((c, path))) => {
            let id = resolve::container(ctx, c).await?.id;
            to_container(ctx, &id, path, &a).await?;
        }
        (Some(_), Some(_)) => bail!("copying between containers is not supported; copy through the host"),
        (None, None) => bail!("one of SRC and DEST must be CONTAINER:PATH"),
    }
    Ok(0)
}

async fn from_container(ctx: &mut Ctx, id: &str, path: &str, a: &CpArgs) -> anyhow::Result<()> {
    let req = api::CopyFromContainerRequest {
        container_id: id.to_string(),
        path: absolute(path),
        follow_link: a.follow_link,
    };
    let mut stream = ctx
        .ctr
        .copy_from_container(ctx.req(req))
        .await
        .map_err(explain)?
        .into_inner();
    if a.dest == "-" {
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(explain)?.data)?;
        }
        return Ok(out.flush()?);
    }
    let dest = PathBuf::from(&a.dest);
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("{}: no such directory", parent.display());
    }
    // Extracted next to the destination (one filesystem: renames), then put in place.
    let staging = tempfile::Builder::new().prefix(".berthctl-cp-").tempdir_in(&parent)?;
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.map_err(explain)?.data);
    }
    let dir = staging.path().to_path_buf();
    let limits = berth::image::unpack::UnpackLimits::default();
    tokio::task::spawn_blocking(move || berth::image::unpack::unpack_layer(tar.as_slice(), &dir, &limits))
        .await?
        .context("extracting the container's archive")?;
    let name = std::fs::read_dir(staging.path())?
        .next()
        .context("the container sent an empty archive")??
        .path();
    if !a.archive {
        own_by_me(&name)?;
    }
    let is_dir = std::fs::symlink_metadata(&name)?.is_dir();
    let contents_only = path.ends_with("/.");
    match std::fs::symlink_metadata(&dest) {
        Err(_) if a.dest.ends_with('/') && !is_dir => {
            bail!("{}: does not exist and is not a directory", dest.display())
        }
        Err(_) => std::fs::rename(&name, &dest)?,
        Ok(m) if m.is_dir() && is_dir && contents_only => place_children(&name, &dest)?,
        Ok(m) if m.is_dir() => place(&name, &dest.join(name.file_name().unwrap_or_default()))?,
        Ok(_) if is_dir => bail!("cannot copy a directory to the file {}", dest.display()),
        Ok(_) => place(&name, &dest)?,
    }
    Ok(())
}

/// Moves `from` to `to`: into an existing directory it merges, over a file it replaces.
fn place(from: &Path, to: &Path) -> anyhow::Result<()> {
    let from_dir = std::fs::symlink_metadata(from)?.is_dir();
    match std::fs::symlink_metadata(to) {
        Err(_) => std::fs::rename(from, to)?,
        Ok(m) if m.is_dir() && from_dir => place_children(from, to)?,
        Ok(m) if m.is_dir() => bail!("cannot overwrite the directory {} with a file", to.display()),
        Ok(_) if from_dir => bail!("cannot overwrite the file {} with a directory", to.display()),
        Ok(_) => std::fs::rename(from, to)?,
    }
    Ok(())
}

fn place_children(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        place(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Gives what was copied to the user running berthctl.
fn own_by_me(path: &Path) -> anyhow::Result<()> {
    let me = std::fs::metadata("/proc/self")?;
    std::os::unix::fs::lchown(path, Some(me.uid()), Some(me.gid()))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            own_by_me(&entry?.path())?;
        }
    }
    Ok(())
}

async fn to_container(ctx: &mut Ctx, id: &str, path: &str, a: &CpArgs) -> anyhow::Result<()> {
    let dest = absolute(path);
    let stat = ctx
        .ctr
        .stat_container_path(ctx.req(api::StatContainerPathRequest {
            container_id: id.to_string(),
            path: dest.clone(),
        }))
        .await
        .map_err(explain)?
        .into_inner();
    let (dir, source) = if a.src == "-" {
        if !stat.is_dir {
            bail!("{dest}: with - as the source, the destination must be a directory of the container");
        }
        (dest, Source::Stdin)
    } else {
        let src = PathBuf::from(&a.src);
        let meta = if a.follow_link {
            std::fs::metadata(&src)
        } else {
            std::fs::symlink_metadata(&src)
        }
        .with_context(|| format!("{}: no such file or directory", src.display()))?;
        let base = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        let dest_name = Path::new(&dest).file_name().map(|n| n.to_string_lossy().into_owned());
        let parent = Path::new(&dest)
            .parent()
            .map_or("/".to_string(), |p| p.display().to_string());
        match (stat.exists, stat.is_dir, meta.is_dir()) {
            (true, true, true) if a.src.ends_with("/.") => (dest, Source::Contents(src)),
            (true, true, _) => (dest, Source::Path(src, base)),
            (true, false, true) => bail!("cannot copy a directory to the file {dest}"),
            (false, _, false) if dest.ends_with('/') => bail!("{dest}: does not exist and is not a directory"),
            (_, _, _) => (parent, Source::Path(src, dest_name.unwrap_or(base))),
        }
    };
    let keep_owners = a.archive;
    let (tx, rx) = tokio::sync::mpsc::channel::<api::CopyToContainerChunk>(4);
    let first = api::CopyToContainerChunk {
        container_id: id.to_string(),
        dir,
        data: Vec::new(),
    };
    tx.send(first).await?;
    let writer = tokio::task::spawn_blocking(move || write_tar(source, keep_owners, ChunkSender(tx)));
    let sent = ctx
        .ctr
        .copy_to_container(ctx.req(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await;
    writer.await??;
    sent.map_err(explain)?;
    Ok(())
}

/// What `to_container` archives.
enum Source {
    Stdin,
    /// A path, its top entry named so.
    Path(PathBuf, String),
    /// A directory's children, at the top.
    Contents(PathBuf),
}

fn write_tar(source: Source, keep_owners: bool, out: ChunkSender) -> anyhow::Result<()> {
    match source {
        Source::Stdin => {
            let mut out = out;
            std::io::copy(&mut std::io::stdin().lock(), &mut out)?;
        }
        Source::Path(path, name) => {
            let mut tar = tar::Builder::new(out);
            append(&mut tar, &path, Path::new(&name), keep_owners)?;
            tar.finish()?;
        }
        Source::Contents(dir) => {
            let mut tar = tar::Builder::new(out);
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                append(&mut tar, &entry.path(), Path::new(&entry.file_name()), keep_owners)?;
            }
            tar.finish()?;
        }
    }
    Ok(())
}

/// Appends `path` (recursively) as `name`, symlinks as symlinks, owners root's unless kept.
fn append(tar: &mut tar::Builder<ChunkSender>, path: &Path, name: &Path, keep_owners: bool) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    if !keep_owners {
        header.set_uid(0);
        header.set_gid(0);
    }
    let kind = meta.file_type();
    if kind.is_symlink() {
        header.set_size(0);
        tar.append_link(&mut header, name, std::fs::read_link(path)?)?;
    } else if kind.is_dir() {
        header.set_size(0);
        tar.append_data(&mut header, name, std::io::empty())?;
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            append(tar, &entry.path(), &name.join(entry.file_name()), keep_owners)?;
        }
    } else if kind.is_file() {
        tar.append_data(&mut header, name, std::fs::File::open(path)?)?;
    } else {
        eprintln!(
            "berthctl: skipping {} (not a file, directory or symlink)",
            path.display()
        );
    }
    Ok(())
}

/// Writes into the request stream, in messages of up to 1 MiB.
struct ChunkSender(tokio::sync::mpsc::Sender<api::CopyToContainerChunk>);

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(1 << 20);
        let chunk = api::CopyToContainerChunk {
            data: data[..n].to_vec(),
            ..Default::default()
        };
        self.0
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "berthd stopped reading"))?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_told_from_host_paths() {
        assert_eq!(container_side("web:/etc/hosts"), Some(("web", "/etc/hosts")));
        assert_eq!(container_side("./a:b"), None);
        assert_eq!(container_side("/tmp/x:y"), None);
        assert_eq!(container_side("-"), None);
        assert_eq!(container_side("plain"), None);
    }

    #[test]
    fn placing_merges_directories_and_replaces_files() {
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("from");
        let to = d.path().join("to");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::create_dir_all(to.join("sub")).unwrap();
        std::fs::write(from.join("sub/new"), "n").unwrap();
        std::fs::write(from.join("f"), "new").unwrap();
        std::fs::write(to.join("f"), "old").unwrap();
        std::fs::write(to.join("sub/kept"), "k").unwrap();
        place(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("f")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(to.join("sub/new")).unwrap(), "n");
        assert_eq!(std::fs::read_to_string(to.join("sub/kept")).unwrap(), "k");
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("file"), "x").unwrap();
        assert!(place(&d.path().join("file"), &to.join("sub")).is_err());
    }
}
