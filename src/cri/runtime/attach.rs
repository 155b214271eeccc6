use berth_proto as pb;

use crate::cri::runtime::exec::{check_streams, too_many};
use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::stream::attach::AttachRequest;
use crate::stream::Pending;

/// `Attach`: returns a single-use URL that attaches to the running container's stdio.
pub async fn attach(d: &Daemon, req: pb::AttachRequest) -> Result<pb::AttachResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
    let (rec, _) = d.containers.running_target(id).await?;
    if req.stdin && !rec.spec.stdin {
        return Err(Error::FailedPrecondition(format!(
            "container {} was not created with stdin",
            rec.id
        )));
    }
    if req.tty != rec.spec.tty {
        return Err(Error::InvalidArgument(format!(
            "tty {} does not match the container's tty setting ({})",
            req.tty, rec.spec.tty
        )));
    }
    let url = d.streams.url_for(Pending::Attach(AttachRequest {
        container_id: rec.id,
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    }));
    Ok(pb::AttachResponse {
        url: url.ok_or_else(too_many)?,
    })
}
