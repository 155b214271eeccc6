//! A container's root filesystem: an overlay of its image's snapshots (read-only lower
//! layers) and a writable layer of its own, under `root/containers/<id>/`, and the
//! read-only views of the images it mounts as volumes (`images/<n>`). In a pod with its own
//! user namespace the layers and volumes are idmapped mounts under `idmap/`, shifted by the
//! pod's mapping, and the writable layer belongs to the pod's root.

use std::path::{Path, PathBuf};

use crate::sys;

/// Whether this host can run pods with their own user namespace under `root` and
/// `state`: idmapped mounts work where container files live (Berth makes them itself,
/// whatever the OCI runtime can do), and every directory above both may be traversed by
/// others, since a container's root is no owner of Berth's directories.
pub fn userns_supported(root: &Path, state: &Path) -> bool {
    if !crate::sys::userns::idmap_supported(root) {
        tracing::warn!(root = %root.display(), "no idmapped mounts here: pods with their own user namespace are refused");
        return false;
    }
    let closed = [root, state].into_iter().flat_map(Path::ancestors).find(|a| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0)
    });
    if let Some(dir) = closed {
        tracing::warn!(dir = %dir.display(), "not traversable by others: pods with their own user namespace are refused");
        return false;
    }
    true
}

/// A pod's user namespace to shift a container's files into: the namespace and the host
/// uid and gid of the pod's root.
#[derive(Debug)]
pub struct Idmap {
    pub userns: std::fs::File,
    pub root: (u32, u32),
}

/// Where a container's writable layer and mount point live.
#[derive(Debug, Clone)]
pub struct RootfsPaths {
    pub dir: PathBuf,
}

impl RootfsPaths {
    pub fn new(containers_root: &Path, id: &str) -> RootfsPaths {
        RootfsPaths {
            dir: containers_root.join(id),
        }
    }

    pub fn mountpoint(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Where image VOLUMEs get their directories.
    pub fn volumes(&self) -> PathBuf {
        self.dir.join("volumes")
    }

    fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    fn idmapped(&self) -> PathBuf {
        self.dir.join("idmap")
    }

    /// `lower` as idmapped mounts under `idmap/<prefix>-<i>`, or as they are without `idmap`.
    fn shifted(&self, prefix: &str, lower: &[PathBuf], idmap: Option<&Idmap>) -> std::io::Result<Vec<PathBuf>> {
        let Some(idmap) = idmap else { return Ok(lower.to_vec()) };
        let mut out = Vec::with_capacity(lower.len());
        for (i, layer) in lower.iter().enumerate() {
            let target = self.idmapped().join(format!("{prefix}-{i}"));
            std::fs::create_dir_all(&target)?;
            sys::userns::idmapped_bind(layer, &target, &idmap.userns, false)?;
            out.push(target);
        }
        Ok(out)
    }

    /// Mounts a read-only view of an image's layers (`lower`, top-most first) as the
    /// container's image volume `n`; returns where.
    pub fn mount_image(&self, n: usize, lower: &[PathBuf], idmap: Option<&Idmap>) -> std::io::Result<PathBuf> {
        let target = self.images().join(n.to_string());
        std::fs::create_dir_all(&target)?;
        let lower = self.shifted(&format!("image{n}"), lower, idmap)?;
        sys::mount::read_only_layers(&target, &lower)?;
        Ok(target)
    }

    /// Creates the directories and mounts the overlay. `lower` is top-most layer first.
    pub fn mount(&self, lower: &[PathBuf], idmap: Option<&Idmap>) -> std::io::Result<()> {
        for d in [self.mountpoint(), self.upper(), self.work(), self.volumes()] {
            std::fs::create_dir_all(&d)?;
        }
        if lower.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "image has no layers",
            ));
        }
        if let Some(idmap) = idmap {
            let (uid, gid) = idmap.root;
            for d in [self.upper(), self.work(), self.volumes()] {
                std::os::unix::fs::chown(&d, Some(uid), Some(gid))?;
            }
        }
        let lower = self.shifted("layer", lower, idmap)?;
        sys::mount::overlay(&self.mountpoint(), &lower, &self.upper(), &self.work())
    }

    /// An idmapped view of the volume source `source` for mount `n` (its submounts too);
    /// returns where.
    pub fn idmap_volume(&self, n: usize, source: &Path, idmap: &Idmap) -> std::io::Result<PathBuf> {
        let target = self.idmapped().join(format!("mount{n}"));
        std::fs::create_dir_all(self.idmapped())?;
        if source.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&target)?;
        }
        if let Err(e) = sys::userns::idmapped_bind(source, &target, &idmap.userns, true) {
            let _ = std::fs::remove_dir(&target).or_else(|_| std::fs::remove_file(&target));
            return Err(e);
        }
        Ok(target)
    }

    /// Gives this container's writable layer and image-volume directories to `to`, a new
    /// attempt of it not yet prepared (or, after that attempt failed, back): this root
    /// filesystem is unmounted first (the container has exited), `to`'s directory made.
    pub fn move_layer(&self, to: &RootfsPaths) -> std::io::Result<()> {
        sys::mount::unmount(&self.mountpoint())?;
        std::fs::create_dir_all(&to.dir)?;
        for (from, dest) in [(self.upper(), to.upper()), (self.volumes(), to.volumes())] {
            match std::fs::rename(&from, &dest) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from.exists() => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Unmounts and deletes everything; missing parts are fine. Nothing is deleted while
    /// something is still mounted (the image volumes are views of shared layers).
    pub fn remove(&self) -> std::io::Result<()> {
        if let Ok(entries) = std::fs::read_dir(self.images()) {
            for e in entries.flatten() {
                sys::mount::unmount(&e.path())?;
            }
        }
        sys::mount::unmount(&self.mountpoint())?;
        if let Ok(entries) = std::fs::read_dir(self.idmapped()) {
            for e in entries.flatten() {
                sys::mount::unmount(&e.path())?;
            }
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
