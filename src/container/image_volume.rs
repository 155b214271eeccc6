//! Image volumes (KEP-4639): an image's filesystem mounted read-only into a container,
//! whole or one path of it. The images are leased while the container exists, so
//! RemoveImage cannot take their layers away; the read-only views are mounted by the driver
//! and go with the container's root filesystem.

use std::path::{Component, Path, PathBuf};

use super::error::ContainerError;
use super::lifecycle::Containers;
use super::model::{ContainerSpec, MountSpec, PodUserNs};
use crate::image::ImageRecord;

/// Checks an image volume's request: read-only, no host path, and a sub path that stays
/// inside the image.
pub(super) fn validate(index: usize, m: &MountSpec) -> Result<(), String> {
    let Some(v) = &m.image else { return Ok(()) };
    if !m.readonly {
        return Err(format!(
            "mounts[{index}] ({}): an image volume must be read-only",
            m.container_path
        ));
    }
    if !m.host_path.is_empty() {
        return Err(format!(
            "mounts[{index}] ({}): an image volume has no host_path",
            m.container_path
        ));
    }
    let sub = Path::new(&v.sub_path);
    if v.sub_path.contains('\0') || sub.is_absolute() || sub.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "mounts[{index}] ({}): image_sub_path {:?} must be relative, without '..'",
            m.container_path, v.sub_path
        ));
    }
    Ok(())
}

/// The host path of `sub_path` inside a mounted image view at `root`. Symbolic links are
/// followed only while they stay inside the image; a missing path is refused.
pub(super) fn source(root: &Path, sub_path: &str, image: &str) -> Result<PathBuf, ContainerError> {
    let path = root.join(sub_path);
    let resolved = std::fs::canonicalize(&path)
        .map_err(|_| ContainerError::Invalid(format!("image_sub_path {sub_path:?} does not exist in image {image}")))?;
    let root =
        std::fs::canonicalize(root).map_err(|e| ContainerError::Invalid(format!("image volume of {image}: {e}")))?;
    if !resolved.starts_with(&root) {
        return Err(ContainerError::Invalid(format!(
            "image_sub_path {sub_path:?} leads out of image {image}"
        )));
    }
    Ok(resolved)
}

impl Containers {
    /// Leases each image volume's image for container `id` and records its id in `spec`.
    /// Unknown images are NotFound (kubelet pulls them first).
    pub(super) fn lease_image_volumes(
        &self,
        id: &str,
        spec: &mut ContainerSpec,
    ) -> Result<Vec<ImageRecord>, ContainerError> {
        let mut images = Vec::new();
        for m in &mut spec.mounts {
            let Some(v) = &mut m.image else { continue };
            let image = self.images.lease(id, &v.image).ok_or_else(|| {
                ContainerError::NotFound(format!("image {} (image volume at {})", v.image, m.container_path))
            })?;
            v.id = image.id.clone();
            images.push(image);
        }
        Ok(images)
    }

    /// Mounts the image volumes of `spec` (whose images are `images`, in order) and returns
    /// the mounts as the OCI spec gets them: each image volume a bind of its view.
    pub(super) fn mount_image_volumes(
        &self,
        id: &str,
        spec: &ContainerSpec,
        images: &[ImageRecord],
        userns: Option<&PodUserNs>,
    ) -> Result<Vec<MountSpec>, ContainerError> {
        let mut images = images.iter();
        let mut out = Vec::with_capacity(spec.mounts.len());
        for (n, m) in spec.mounts.iter().enumerate() {
            let mut m = m.clone();
            if let (Some(v), Some(image)) = (&m.image, images.next()) {
                let root = self.driver.mount_image(id, n, image, userns)?;
                m.host_path = source(&root, &v.sub_path, &v.image)?.display().to_string();
            }
            out.push(m);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::container::model::ImageVolume;

    fn volume(readonly: bool, host: &str, sub: &str) -> MountSpec {
        MountSpec {
            container_path: "/mnt/image".into(),
            host_path: host.into(),
            readonly,
            image: Some(ImageVolume {
                image: "sha256:abc".into(),
                sub_path: sub.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn requests_are_checked() {
        assert!(validate(0, &volume(true, "", "")).is_ok());
        assert!(validate(0, &volume(true, "", "etc/ssl")).is_ok());
        assert!(validate(0, &volume(false, "", "")).unwrap_err().contains("read-only"));
        assert!(validate(0, &volume(true, "/tmp", ""))
            .unwrap_err()
            .contains("host_path"));
        for bad in ["/etc", "../x", "a/../../b", "a\0b"] {
            assert!(
                validate(1, &volume(true, "", bad))
                    .unwrap_err()
                    .contains("image_sub_path"),
                "{bad:?}"
            );
        }
        let plain = MountSpec {
            container_path: "/x".into(),
            host_path: "/tmp".into(),
            ..Default::default()
        };
        assert!(validate(0, &plain).is_ok(), "not an image volume");
    }

    #[test]
    fn sub_paths_resolve_inside_the_image_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("image");
        std::fs::create_dir_all(root.join("etc/ssl")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("etc", root.join("config")).unwrap();
        std::os::unix::fs::symlink("/", root.join("host")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("etc/up")).unwrap();
        let root_real = std::fs::canonicalize(&root).unwrap();
        assert_eq!(source(&root, "", "img").unwrap(), root_real);
        assert_eq!(source(&root, "etc", "img").unwrap(), root_real.join("etc"));
        assert_eq!(
            source(&root, "etc/passwd", "img").unwrap(),
            root_real.join("etc/passwd")
        );
        assert_eq!(source(&root, "config/ssl", "img").unwrap(), root_real.join("etc/ssl"));
        for bad in ["host", "etc/up", "host/etc"] {
            let e = source(&root, bad, "img").unwrap_err();
            assert!(
                matches!(&e, ContainerError::Invalid(m) if m.contains("out of image")),
                "{bad}: {e}"
            );
        }
        let e = source(&root, "not-existing", "img").unwrap_err();
        assert!(
            matches!(&e, ContainerError::Invalid(m) if m.contains("does not exist")),
            "{e}"
        );
    }
}
