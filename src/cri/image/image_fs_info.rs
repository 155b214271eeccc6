use berth_proto as pb;

use crate::daemon::Daemon;
use crate::error::Result;

/// `ImageFsInfo`: bytes and inodes used by images (unpacked snapshots and stored blobs),
/// counted as layers are unpacked rather than by walking the tree on every call.
pub async fn image_fs_info(d: &Daemon, _req: pb::ImageFsInfoRequest) -> Result<pb::ImageFsInfoResponse> {
    let usage = d.images.fs_usage();
    let fs = pb::FilesystemUsage {
        timestamp: crate::clock::now_nanos(),
        fs_id: Some(pb::FilesystemIdentifier {
            mountpoint: d.images.fs_mountpoint().display().to_string(),
        }),
        used_bytes: Some(pb::UInt64Value { value: usage.bytes }),
        inodes_used: Some(pb::UInt64Value { value: usage.inodes }),
    };
    Ok(pb::ImageFsInfoResponse {
        image_filesystems: vec![fs],
        container_filesystems: vec![],
    })
}
