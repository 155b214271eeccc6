use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::stream::exec::ExecRequest;
use crate::stream::Pending;

/// `Exec`: checks the request and the container, then returns a single-use URL on the
/// streaming server where the client runs the command.
pub async fn exec(d: &Daemon, req: pb::ExecRequest) -> Result<pb::ExecResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    if req.cmd.is_empty() || req.cmd[0].is_empty() {
        return Err(Error::InvalidArgument("cmd is required".into()));
    }
    check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
    let (rec, _) = d.containers.running_target(id).await?;
    let url = stream_url(
        d,
        ExecRequest {
            container_id: rec.id,
            cmd: req.cmd,
            tty: req.tty,
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            overrides: Default::default(),
        },
    )?;
    Ok(pb::ExecResponse { url })
}

/// A single-use streaming URL for the exec (CRI's and Berth's Exec).
pub fn stream_url(d: &Daemon, req: ExecRequest) -> Result<String> {
    d.streams.url_for(Pending::Exec(req)).ok_or_else(too_many)
}

/// The CRI's rules for the stream flags of Exec and Attach.
pub fn check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<()> {
    if !(stdin || stdout || stderr) {
        return Err(Error::InvalidArgument(
            "one of stdin, stdout and stderr must be set".into(),
        ));
    }
    if tty && stderr {
        return Err(Error::InvalidArgument(
            "stderr must be false with tty: a terminal merges it into stdout".into(),
        ));
    }
    Ok(())
}

pub fn too_many() -> Error {
    Error::ResourceExhausted("too many streaming requests are waiting for their client".into())
}
