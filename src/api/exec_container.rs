use berth_proto::berth::v1 as pb;

use crate::cri::runtime::exec::{check_streams, stream_url};
use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::runtime::exec::{self, ExecOptions};
use crate::stream::exec::ExecRequest;

/// `Exec` with Docker's options: a streaming URL as the CRI's Exec gives, or, detached,
/// the command started with no streams and left to run (its runtime parent is reaped here).
pub async fn exec_container(d: &Daemon, req: pb::ExecRequest) -> Result<pb::ExecResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    if req.cmd.first().is_none_or(String::is_empty) {
        return Err(Error::InvalidArgument("cmd is required".into()));
    }
    let overrides = d
        .containers
        .exec_overrides(id, req.env, &req.workdir, &req.user)
        .await?;
    let (rec, target) = d.containers.running_target(id).await?;
    if req.detach {
        let opts = ExecOptions {
            args: req.cmd,
            tty: false,
            stdin: false,
            stdout: false,
            stderr: false,
            overrides,
        };
        let (mut process, _) =
            exec::spawn(&target, &opts).map_err(|e| Error::Internal(format!("starting the exec: {e}")))?;
        tokio::spawn(async move {
            let status = process.wait().await;
            tracing::debug!(container = %rec.id, ?status, "detached exec ended");
        });
        return Ok(pb::ExecResponse::default());
    }
    check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
    let url = stream_url(
        d,
        ExecRequest {
            container_id: rec.id,
            cmd: req.cmd,
            tty: req.tty,
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            overrides,
        },
    )?;
    Ok(pb::ExecResponse { url })
}
