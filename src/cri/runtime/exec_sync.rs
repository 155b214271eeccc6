use std::time::Duration;

use berth_proto as pb;

use crate::cri::{convert, instrument};
use crate::daemon::Daemon;
use crate::error::{Error, Result};

/// `ExecSync`: runs a command in a running container and returns its exit code and
/// output (each stream capped at 16 MiB, as kubelet caps it). A `timeout` (seconds) that
/// passes kills the command and answers DeadlineExceeded.
pub async fn exec_sync(d: &Daemon, req: pb::ExecSyncRequest) -> Result<pb::ExecSyncResponse> {
    let id = convert::required_id(&req.container_id, "container_id")?;
    instrument::record_id(id);
    if req.timeout < 0 {
        return Err(Error::InvalidArgument(format!("timeout {} is negative", req.timeout)));
    }
    if req.cmd.first().is_some_and(String::is_empty) || req.cmd.iter().any(|a| a.contains('\0')) {
        return Err(Error::InvalidArgument(
            "cmd: the program is empty or an argument contains a NUL byte".into(),
        ));
    }
    let timeout = (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64));
    let r = d.containers.exec_sync(id, req.cmd, timeout).await?;
    if r.timed_out {
        return Err(Error::DeadlineExceeded(format!(
            "command timed out after {}s",
            req.timeout
        )));
    }
    Ok(pb::ExecSyncResponse {
        stdout: r.stdout,
        stderr: r.stderr,
        exit_code: r.exit_code,
    })
}
