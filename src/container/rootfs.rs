//! A container's root filesystem: an overlay of its image's snapshots (read-only lower
//! layers) and a writable layer of its own, under `root/containers/<id>/`, and the
//! read-only views of the images it mounts as volumes (`images/<n>`).

use std::path::{Path, PathBuf};

use crate::sys;

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

    /// Mounts a read-only view of an image's layers (`lower`, top-most first) as the
    /// container's image volume `n`; returns where.
    pub fn mount_image(&self, n: usize, lower: &[PathBuf]) -> std::io::Result<PathBuf> {
        let target = self.images().join(n.to_string());
        std::fs::create_dir_all(&target)?;
        sys::mount::read_only_layers(&target, lower)?;
        Ok(target)
    }

    /// Creates the directories and mounts the overlay. `lower` is top-most layer first.
    pub fn mount(&self, lower: &[PathBuf]) -> std::io::Result<()> {
        for d in [self.mountpoint(), self.upper(), self.work(), self.volumes()] {
            std::fs::create_dir_all(&d)?;
        }
        if lower.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "image has no layers",
            ));
        }
        sys::mount::overlay(&self.mountpoint(), lower, &self.upper(), &self.work())
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
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
