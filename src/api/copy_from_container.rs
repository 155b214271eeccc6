use berth_proto::berth::v1 as pb;

use super::chunks::stream_from_writer;
use crate::container::files;
use crate::container::lifecycle::Containers;
use crate::cri::{convert, instrument, BoxStream};
use crate::error::{Error, Result};

/// `CopyFromContainer`: streams a tar archive of a path of the container, its top entry
/// named after the path's last component (`.` for the root).
pub async fn copy_from_container(
    containers: &Containers,
    req: pb::CopyFromContainerRequest,
) -> Result<BoxStream<pb::CopyChunk>> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    let view = containers.fs_view(id).await?;
    let found = view
        .locate(&req.path, req.follow_link)
        .map_err(|e| Error::InvalidArgument(format!("path {:?}: {e}", req.path)))?
        .ok_or_else(|| Error::NotFound(format!("{} does not exist in container {id}", req.path)))?;
    let name = found
        .inside
        .file_name()
        .map_or_else(|| ".".to_string(), |n| n.to_string_lossy().into_owned());
    Ok(stream_from_writer(
        "archiving the container's files",
        |data| pb::CopyChunk { data },
        move |out| files::archive(&found, &name, out),
    ))
}
