use berth_proto::berth::v1 as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::Result;
use crate::image::commit::CommitSpec;

/// `CommitContainer`: the container's image plus its writable layer, as a new image.
pub async fn commit_container(daemon: &Daemon, req: pb::CommitContainerRequest) -> Result<pb::CommitContainerResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    // Frozen (with `pause`) until `source` is dropped, after the layer is written.
    let source = daemon.containers.commit_source(id, req.pause).await?;
    let spec = CommitSpec {
        base: source.image_id.clone(),
        upper: Some(source.upper.clone()),
        reference: req.reference,
        author: req.author,
        message: req.message,
        changes: req.changes,
        env: source.env.clone(),
        working_dir: source.working_dir.clone(),
        entrypoint: source.entrypoint.clone(),
        cmd: source.cmd.clone(),
        created_by: source.created_by.clone(),
        ..Default::default()
    };
    let record = daemon.images.commit(spec).await;
    drop(source);
    let record = record?;
    Ok(pb::CommitContainerResponse {
        image_id: record.id,
        tag: record.repo_tags.first().cloned().unwrap_or_default(),
    })
}
