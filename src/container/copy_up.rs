//! Docker's first-use copy: a volume that is empty when a container mounts it is filled
//! with what the image has at the mount's path, with owners, modes and symlinks as they
//! are. The image path is resolved inside the root filesystem (no symlink leads out) and
//! the copy never follows a symlink, so an image cannot make Berth read or write elsewhere.

use std::io;
use std::os::unix::fs::{lchown, MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use crate::sys::inroot;

/// Fills the empty directory `dest` with the content at `container_path` in `rootfs`;
/// whether anything was copied (nothing when `dest` is not empty or the image has no
/// directory there).
pub fn fill_if_empty(rootfs: &Path, container_path: &str, dest: &Path) -> io::Result<bool> {
    if std::fs::read_dir(dest)?.next().is_some() {
        return Ok(false);
    }
    let Some(inside) = inroot::resolve(rootfs, Path::new(container_path))? else {
        return Ok(false);
    };
    let source = inroot::host_path(rootfs, &inside);
    let meta = std::fs::symlink_metadata(&source)?;
    if !meta.is_dir() {
        return Ok(false);
    }
    copy_dir(&source, dest)?;
    // The volume's root takes the image directory's owner and mode, as in Docker.
    lchown(dest, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    Ok(true)
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_dir(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            // Devices, fifos and sockets are not volume content.
            continue;
        }
        lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
        if !kind.is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_volume_gets_the_images_content_and_nothing_leads_out() {
        let root = tempfile::tempdir().unwrap();
        let rootfs = root.path().join("rootfs");
        let data = rootfs.join("var/lib/db");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/table"), "rows").unwrap();
        std::fs::set_permissions(data.join("sub/table"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        // /srv in the image is a symlink meant to lead out of the rootfs.
        std::fs::write(root.path().join("secret"), "host").unwrap();
        std::os::unix::fs::symlink("../../secret-dir", rootfs.join("srv")).unwrap();
        std::fs::create_dir_all(root.path().join("secret-dir")).unwrap();
        std::fs::write(root.path().join("secret-dir/key"), "host").unwrap();

        let vol = root.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        assert!(fill_if_empty(&rootfs, "/var/lib/db", &vol).unwrap());
        assert_eq!(std::fs::read_to_string(vol.join("sub/table")).unwrap(), "rows");
        let mode = std::fs::metadata(vol.join("sub/table")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(std::fs::read_link(vol.join("link")).unwrap(), Path::new("/etc/passwd"));

        // Not empty any more: left alone.
        std::fs::remove_file(vol.join("sub/table")).unwrap();
        assert!(!fill_if_empty(&rootfs, "/var/lib/db", &vol).unwrap());
        assert!(!vol.join("sub/table").exists());

        let other = root.path().join("other");
        std::fs::create_dir(&other).unwrap();
        assert!(
            !fill_if_empty(&rootfs, "/srv", &other).unwrap(),
            "the escape resolves inside"
        );
        assert!(!other.join("key").exists());
        assert!(!fill_if_empty(&rootfs, "/no/such", &other).unwrap());
    }
}
