use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::{Error, Result};

/// `CreateContainer`: mounts the container's root filesystem (image layers + a writable
/// layer), writes its OCI bundle from the config, the image and the sandbox, and has a
/// shim run `runc create`. The container is CREATED, not running. Unknown sandbox or image
/// is NotFound; a name already used in the sandbox is AlreadyExists; a failure at any step
/// leaves no mount, cgroup, shim or runc state behind.
pub async fn create_container(d: &Daemon, req: pb::CreateContainerRequest) -> Result<pb::CreateContainerResponse> {
    let sandbox_id = convert::required_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    let config = req
        .config
        .ok_or_else(|| Error::InvalidArgument("container config is required".into()))?;
    let spec = convert::container_spec(&config)?;
    instrument::record_id(&spec.name);
    let id = d.containers.create(sandbox_id, spec).await?;
    instrument::record_id(&id);
    Ok(pb::CreateContainerResponse { container_id: id })
}
