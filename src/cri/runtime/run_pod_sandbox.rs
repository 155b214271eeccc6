use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::{Error, Result};

/// `RunPodSandbox`: creates the pod's namespaces, network (CNI ADD), files and infra
/// process, and returns the sandbox id once it is ready. On any failure everything done so
/// far is undone. A second sandbox with the same name, namespace, uid and attempt is
/// refused with AlreadyExists while the first exists. A pod with its own user namespace is
/// refused on a handler that cannot run one.
pub async fn run_pod_sandbox(d: &Daemon, req: pb::RunPodSandboxRequest) -> Result<pb::RunPodSandboxResponse> {
    let config = req
        .config
        .ok_or_else(|| Error::InvalidArgument("sandbox config is required".into()))?;
    let spec = convert::sandbox_spec(&config, &req.runtime_handler)?;
    d.check_runtime_handler(&req.runtime_handler)?;
    if spec.userns.is_some() {
        let features = d.containers.handler_features();
        if !features.get(&req.runtime_handler).is_some_and(|f| f.user_namespace) {
            return Err(Error::InvalidArgument(format!(
                "runtime handler {:?} does not support pods with their own user namespace here \
                 (its runtime lacks user namespaces, or this filesystem lacks idmapped mounts)",
                req.runtime_handler
            )));
        }
    }
    instrument::record_id(&spec.name);
    let id = d.sandboxes.run(spec).await?;
    instrument::record_id(&id);
    Ok(pb::RunPodSandboxResponse { pod_sandbox_id: id })
}
