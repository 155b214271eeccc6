use std::os::unix::fs::PermissionsExt as _;

use berth_proto::berth::v1 as pb;

use crate::container::lifecycle::Containers;
use crate::cri::{convert, instrument};
use crate::error::{Error, Result};

/// `StatContainerPath`: what is at a path of the container (a symlink at the end is
/// followed, as `docker cp` does for a destination).
pub async fn stat_container_path(
    containers: &Containers,
    req: pb::StatContainerPathRequest,
) -> Result<pb::StatContainerPathResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    let view = containers.fs_view(id).await?;
    let found = view
        .locate(&req.path, true)
        .map_err(|e| Error::InvalidArgument(format!("path {:?}: {e}", req.path)))?;
    Ok(match found {
        None => pb::StatContainerPathResponse::default(),
        Some(f) => pb::StatContainerPathResponse {
            exists: true,
            is_dir: f.meta.is_dir(),
            resolved: f.inside.display().to_string(),
            mode: f.meta.permissions().mode(),
            size: f.meta.len(),
        },
    })
}
