use berth_proto as pb;

use crate::cri::runtime::exec::too_many;
use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::stream::portforward::PortForwardRequest;
use crate::stream::Pending;

/// `PortForward`: returns a single-use URL that forwards to ports on the pod's loopback.
pub async fn port_forward(d: &Daemon, req: pb::PortForwardRequest) -> Result<pb::PortForwardResponse> {
    let id = convert::required_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    instrument::record_id(id);
    let mut ports = Vec::with_capacity(req.port.len());
    for p in req.port {
        match u16::try_from(p) {
            Ok(port) if port > 0 => ports.push(port),
            _ => return Err(Error::InvalidArgument(format!("port {p} is not a valid TCP port"))),
        }
    }
    let sandbox = d.sandboxes.get(id)?;
    if sandbox.state != crate::sandbox::SandboxState::Ready {
        return Err(Error::FailedPrecondition(format!(
            "pod sandbox {} is not ready",
            sandbox.id
        )));
    }
    let url = d.streams.url_for(Pending::PortForward(PortForwardRequest {
        sandbox_id: sandbox.id.clone(),
        netns: sandbox.netns.clone(),
        ports,
    }));
    Ok(pb::PortForwardResponse {
        url: url.ok_or_else(too_many)?,
    })
}
