//! A container's files as its processes see them, for copying in and out (`cp`): a
//! running container's through `/proc/<pid>/root` (its mount namespace, volumes included),
//! a stopped one's from its root filesystem and the host sides of its mounts. Paths are
//! resolved inside that root (symlinks never lead out), archives are written without
//! following symlinks, and archives are extracted by the image unpacker, which creates
//! nothing outside the target directory.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::error::ContainerError;
use super::lifecycle::Containers;
use super::model::ContainerState;
use crate::image::unpack::{unpack_layer, UnpackError, UnpackLimits, UnpackStats};
use crate::sys::inroot;

/// Where a container's files are: `root`, and (for a stopped container) its mounts as
/// (container path, host path), deepest first.
#[derive(Debug, Clone)]
pub struct FsView {
    root: PathBuf,
    mounts: Vec<(PathBuf, PathBuf)>,
}

/// A path of the container found on the host.
#[derive(Debug, Clone)]
pub struct Located {
    /// The host path to read or write.
    pub host: PathBuf,
    /// The path inside the container, symlinks resolved.
    pub inside: PathBuf,
    pub meta: std::fs::Metadata,
}

impl Containers {
    /// The files of container `id`.
    pub async fn fs_view(&self, id: &str) -> Result<FsView, ContainerError> {
        let rec = self.get(id).await?;
        if rec.state == ContainerState::Running && rec.pid > 0 {
            let root = PathBuf::from(format!("/proc/{}/root", rec.pid));
            if root.join(".").exists() {
                return Ok(FsView {
                    root,
                    mounts: Vec::new(),
                });
            }
        }
        let root = self.driver.rootfs_dir(&rec.id);
        if !crate::sys::mount::is_mountpoint(&root) {
            return Err(ContainerError::FailedPrecondition(format!(
                "the filesystem of container {} is not mounted (it was removed or the node restarted)",
                rec.id
            )));
        }
        let mut mounts: Vec<(PathBuf, PathBuf)> = rec
            .spec
            .mounts
            .iter()
            .filter(|m| m.image.is_none())
            .map(|m| (PathBuf::from(&m.container_path), PathBuf::from(&m.host_path)))
            .collect();
        mounts.sort_by_key(|(c, _)| std::cmp::Reverse(c.components().count()));
        Ok(FsView { root, mounts })
    }
}

impl FsView {
    /// A plain directory tree seen as a root filesystem (a build context, a new layer).
    pub fn of_dir(root: PathBuf) -> FsView {
        FsView {
            root,
            mounts: Vec::new(),
        }
    }

    /// `path` (absolute) as a directory, made with its missing parents (root-owned, 0755)
    /// as `mkdir -p` run inside would make them; an existing non-directory is an error.
    pub fn make_dir(&self, path: &str) -> io::Result<Located> {
        let mut missing = Vec::new();
        let mut probe = PathBuf::from(path);
        loop {
            let text = probe.to_string_lossy().into_owned();
            if let Some(found) = self.locate(&text, true)? {
                if !found.meta.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is not a directory", found.inside.display()),
                    ));
                }
                let mut host = found.host;
                for name in missing.iter().rev() {
                    host.push(name);
                    match std::fs::create_dir(&host) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                        _ => {}
                    }
                }
                return self
                    .locate(path, true)?
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{path} vanished")));
            }
            match probe.file_name() {
                Some(name) => missing.push(name.to_os_string()),
                None => return Err(io::Error::new(io::ErrorKind::NotFound, "no root")),
            }
            probe.pop();
        }
    }

    /// Finds `path` (absolute, inside the container); `None` when it does not exist. A
    /// symlink as the last component is followed only with `follow`.
    pub fn locate(&self, path: &str, follow: bool) -> io::Result<Option<Located>> {
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the path must be absolute"));
        }
        let (root, rest, base) = self.split(path);
        let name = rest.file_name().map(|n| n.to_os_string());
        let inside = match (&name, follow) {
            (Some(name), false) => {
                let parent = rest.parent().unwrap_or(Path::new("/"));
                let Some(parent) = inroot::resolve(root, parent)? else {
                    return Ok(None);
                };
                parent.join(name)
            }
            _ => match inroot::resolve(root, &rest)? {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        let host = inroot::host_path(root, &inside);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) => Ok(Some(Located {
                inside: base.join(inside.strip_prefix("/").unwrap_or(&inside)),
                host,
                meta,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The root to resolve `path` in, the path relative to that root (absolute), and where
    /// that root sits in the container.
    fn split<'a>(&'a self, path: &Path) -> (&'a Path, PathBuf, PathBuf) {
        for (ctr, host) in &self.mounts {
            if let Ok(rest) = path.strip_prefix(ctr) {
                return (host, Path::new("/").join(rest), ctr.clone());
            }
        }
        (&self.root, path.to_path_buf(), PathBuf::from("/"))
    }
}

/// Writes a tar archive of `found` to `out`, its top entry named `name`; symlinks are
/// stored as symlinks.
pub fn archive(found: &Located, name: &str, out: impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    if found.meta.is_dir() {
        tar.append_dir_all(name, &found.host)?;
    } else {
        tar.append_path_with_name(&found.host, name)?;
    }
    tar.into_inner()?.flush()
}

/// Extracts the tar archive `input` into the directory `dir` of the container.
pub fn extract(dir: &Located, input: impl Read) -> Result<UnpackStats, ContainerError> {
    if !dir.meta.is_dir() {
        return Err(ContainerError::Invalid(format!(
            "{} is not a directory",
            dir.inside.display()
        )));
    }
    unpack_layer(input, &dir.host, &UnpackLimits::default()).map_err(|e| match e {
        UnpackError::Io { .. } => ContainerError::Setup {
            id: String::new(),
            message: format!("extracting into {}: {e}", dir.inside.display()),
        },
        // Anything else is the archive's fault.
        _ => ContainerError::Invalid(format!("the archive: {e}")),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root_and_its_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let vol = dir.path().join("vol");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(root.join("etc/hosts"), "h").unwrap();
        std::fs::write(vol.join("f"), "v").unwrap();
        std::os::unix::fs::symlink("/etc/hosts", root.join("link")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("out")).unwrap();
        let view = FsView {
            root: root.clone(),
            mounts: vec![(PathBuf::from("/data"), vol.clone())],
        };
        let f = view.locate("/data/f", false).unwrap().unwrap();
        assert_eq!((f.host, f.inside), (vol.join("f"), PathBuf::from("/data/f")));
        let l = view.locate("/link", false).unwrap().unwrap();
        assert!(l.meta.file_type().is_symlink());
        let followed = view.locate("/link", true).unwrap().unwrap();
        assert_eq!(followed.host, root.join("etc/hosts"));
        // A symlink climbing out resolves inside: to the image's /etc, not the host's.
        let out = view.locate("/out/hosts", true).unwrap().unwrap();
        assert_eq!(out.host, root.join("etc/hosts"));
        assert!(view.locate("/nope", false).unwrap().is_none());
        assert!(view.locate("relative", false).is_err());
    }

    #[test]
    fn archives_name_their_top_entry_and_extract_only_beneath() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a"), "A").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", src.join("sym")).unwrap();
        let view = FsView {
            root: dir.path().to_path_buf(),
            mounts: Vec::new(),
        };
        let found = view.locate("/src", false).unwrap().unwrap();
        let mut tar = Vec::new();
        archive(&found, "copy", &mut tar).unwrap();
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let target = view.locate("/dest", false).unwrap().unwrap();
        extract(&target, tar.as_slice()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("copy/sub/a")).unwrap(), "A");
        assert_eq!(
            std::fs::read_link(dest.join("copy/sym")).unwrap(),
            Path::new("/etc/shadow")
        );
        // An archive that climbs out through that symlink is refused.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        evil.append_data(&mut h, "copy/sym/../../../../escaped", &b"x"[..])
            .unwrap_or(());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        evil.append_data(&mut h, "copy/sym/x", &b"x"[..]).unwrap();
        let evil = evil.into_inner().unwrap();
        assert!(extract(&target, evil.as_slice()).is_err());
        assert!(!dir.path().join("escaped").exists());
    }
}
