//! ExecSync: `runc exec` of the container's own process with new arguments, output
//! captured up to a limit, killed when its time is up.

use super::*;

impl Shim {
    pub(super) async fn exec(&self, req: ExecRequest) -> Response {
        if req.tty {
            return Response::error("exec with a tty is not supported");
        }
        if req.args.is_empty() {
            return Response::error("exec needs args");
        }
        if self.init_exited.get() {
            return Response::error("container is not running");
        }
        let n = self.exec_seq.get() + 1;
        self.exec_seq.set(n);
        if let Some(t) = &self.task {
            return self.exec_task(t, &req, n).await.unwrap_or_else(Response::error);
        }
        let (process_file, pid_file) = (format!("exec-{n}.json"), format!("exec-{n}.pid"));
        let r = match exec_process(&req) {
            Ok(process) => match write_private(&process_file, &process) {
                Ok(()) => self.exec_run(&req, &process_file, &pid_file).await,
                Err(e) => Err(format!("{process_file}: {e}")),
            },
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        r.unwrap_or_else(Response::error)
    }

    pub(super) async fn exec_run(
        &self,
        req: &ExecRequest,
        process_file: &str,
        pid_file: &str,
    ) -> Result<Response, String> {
        let (out_r, out_w) = fdio::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = fdio::pipe().map_err(|e| format!("pipe: {e}"))?;
        let internal_pid_file = format!("{pid_file}.internal");
        let mut cmd = if self.joined.is_some() {
            self.runc.exec_in_sandbox(
                Path::new(process_file),
                Path::new(pid_file),
                Path::new(&internal_pid_file),
                &self.id,
            )
        } else {
            self.runc.exec(Path::new(process_file), Path::new(pid_file), &self.id)
        };
        cmd.stdin(Stdio::null()).stdout(out_w).stderr(err_w);
        let (runc_pid, exited) =
            fdio::spawn(cmd, &self.reaper).map_err(|e| format!("{}: {e}", self.runc.bin.display()))?;
        let out_rx = fdio::receiver(out_r).map_err(|e| format!("pipe: {e}"))?;
        let err_rx = fdio::receiver(err_r).map_err(|e| format!("pipe: {e}"))?;
        let kill = async {
            if self.joined.is_some() {
                self.kill_in_sandbox(&internal_pid_file).await;
            }
            kill_exec(pid_file, runc_pid).await;
        };
        let r = capture(req, &out_rx, &err_rx, async { exited.await.ok() }, kill).await;
        let _ = std::fs::remove_file(&internal_pid_file);
        Ok(r)
    }
}

/// ExecSync's capture: both outputs (up to the request's cap each) and the exit status;
/// past the request's timeout, `kill` runs and the rest is awaited for at most 5 s (the
/// process's own children may hold the output open).
pub(super) async fn capture(
    req: &ExecRequest,
    out_rx: &Receiver,
    err_rx: &Receiver,
    exited: impl std::future::Future<Output = Option<i32>>,
    kill: impl std::future::Future<Output = ()>,
) -> Response {
    let max = if req.max_output == 0 {
        DEFAULT_MAX_OUTPUT
    } else {
        req.max_output
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let exit_code = Cell::new(-1);
    let mut timed_out = false;
    {
        let work = async {
            let (_, _, code) = tokio::join!(
                fdio::read_capped(out_rx, max, &mut stdout),
                fdio::read_capped(err_rx, max, &mut stderr),
                exited
            );
            if let Some(code) = code {
                exit_code.set(code);
            }
        };
        tokio::pin!(work);
        if req.timeout_ms == 0 {
            work.await;
        } else if tokio::time::timeout(Duration::from_millis(req.timeout_ms), &mut work)
            .await
            .is_err()
        {
            timed_out = true;
            kill.await;
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut work).await;
        }
    }
    Response::Exec(ExecResponse {
        exit_code: exit_code.get(),
        stdout: b64::encode(&stdout),
        stderr: b64::encode(&stderr),
        timed_out,
    })
}

/// SIGKILLs the exec'd process (its pid from `runc exec --pid-file`); if runc never got
/// that far, runc itself.
pub(super) async fn kill_exec(pid_file: &str, runc_pid: i32) {
    for _ in 0..100 {
        if let Some(pid) = read_pid(pid_file).and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::KILL);
            return;
        }
        let Some(runc) = Pid::from_raw(runc_pid) else { return };
        if test_kill_process(runc).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(runc) = Pid::from_raw(runc_pid) {
        let _ = kill_process(runc, Signal::KILL);
    }
}

/// The OCI process for an exec: the container's own `process` (capabilities, rlimits,
/// LSM labels, noNewPrivileges carry over) with the request's fields on top.
pub(super) fn exec_process(req: &ExecRequest) -> Result<Value, String> {
    let config: Value = std::fs::read("config.json")
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("config.json: {e}"))?;
    let mut process = berth_shim::api::exec_process(&config, &req.args, false)?;
    let p = process.as_object_mut().ok_or("config.json: process is not an object")?;
    if !req.env.is_empty() {
        p.insert("env".into(), json!(req.env));
    }
    if !req.cwd.is_empty() {
        p.insert("cwd".into(), json!(req.cwd));
    }
    if let Some(u) = &req.user {
        let mut user = json!({"uid": u.uid, "gid": u.gid});
        if !u.additional_gids.is_empty() {
            user["additionalGids"] = json!(u.additional_gids);
        }
        if let Some(umask) = p.get("user").and_then(|old| old.get("umask")) {
            user["umask"] = umask.clone();
        }
        p.insert("user".into(), user);
    }
    Ok(process)
}

pub(super) fn write_private(path: &str, value: &Value) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_process_overrides() {
        let req = ExecRequest {
            args: vec!["ls".into()],
            user: Some(berth_shim::api::User {
                uid: 5,
                gid: 6,
                additional_gids: vec![],
            }),
            ..Default::default()
        };
        // No config.json in the test's working directory.
        assert!(exec_process(&req).is_err());
    }
}
