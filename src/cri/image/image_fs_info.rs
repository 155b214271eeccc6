use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_proto as pb;

use crate::daemon::Daemon;
use crate::error::Result;

/// `ImageFsInfo`: bytes and inodes used by images (unpacked snapshots and stored blobs),
/// counted as layers are unpacked rather than by walking the tree on every call.
///
/// Containers' writable layers are reported as their own filesystem only when they live on
/// a different one (e.g. a disk mounted at the snapshot directory): kubelet tells a split
/// image filesystem by differing mountpoints and then collects images and containers
/// separately. On one filesystem both entries are the same, as kubelet expects, and count
/// images and writable layers together: what fills that filesystem is all there.
pub async fn image_fs_info(d: &Daemon, _req: pb::ImageFsInfoRequest) -> Result<pb::ImageFsInfoResponse> {
    let image_root = d.images.fs_mountpoint();
    let usage = d.images.fs_usage();
    let layers_root = crate::cri::stats::layers_mountpoint(d);
    let layers = crate::stats::query::writable_layers(&d.stats_sources()).await?;
    let (images, containers) = if same_filesystem(&image_root, Path::new(&layers_root)) {
        let both = filesystem(&image_root, usage.bytes + layers.bytes, usage.inodes + layers.inodes);
        (both.clone(), both)
    } else {
        (
            filesystem(&image_root, usage.bytes, usage.inodes),
            filesystem(Path::new(&layers_root), layers.bytes, layers.inodes),
        )
    };
    Ok(pb::ImageFsInfoResponse {
        image_filesystems: vec![images],
        container_filesystems: vec![containers],
    })
}

/// Whether two directories are on one filesystem; a directory that cannot be read counts
/// as the same (nothing is split that cannot be seen).
fn same_filesystem(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => true,
    }
}

fn filesystem(mountpoint: &Path, bytes: u64, inodes: u64) -> pb::FilesystemUsage {
    pb::FilesystemUsage {
        timestamp: crate::clock::now_nanos(),
        fs_id: Some(pb::FilesystemIdentifier {
            mountpoint: mountpoint.display().to_string(),
        }),
        used_bytes: Some(pb::UInt64Value { value: bytes }),
        inodes_used: Some(pb::UInt64Value { value: inodes }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_filesystems_apart_by_device() {
        assert!(same_filesystem(Path::new("/proc/self"), Path::new("/proc/1")));
        assert!(!same_filesystem(Path::new("/proc"), Path::new("/sys")));
        assert!(same_filesystem(Path::new("/nonexistent-berth"), Path::new("/")));
    }
}
