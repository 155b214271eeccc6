//! The container's lifecycle requests: state, start, kill, wait and delete, through runc,
//! runsc (a container joining a gVisor sandbox) or a shim v2's Task API.

use super::*;

impl Shim {
    pub(super) fn state(&self) -> Response {
        Response::State(StateResponse {
            status: self.status.get(),
            pid: self.init_pid as u32,
            started_at: self.started_at.get(),
            exit: self.exit.get(),
        })
    }

    pub(super) async fn start(&self) -> Response {
        if self.status.get() != Status::Created || self.starting.get() || self.init_exited.get() {
            let what = if self.starting.get() {
                "starting"
            } else {
                status_name(self.status.get())
            };
            return Response::error(format!("container is {what}, not created"));
        }
        self.starting.set(true);
        // Set before `runc start` so an init that exits at once still has its start time.
        self.started_at.set(now_ns());
        let r = match (&self.task, &self.joined) {
            (Some(t), _) => self.start_task(t).await,
            (None, Some(j)) => self.start_joined(j).await,
            (None, None) => self.runc(&["start", &self.id]).await,
        };
        self.starting.set(false);
        match r {
            Ok(()) => {
                if self.status.get() == Status::Created {
                    self.status.set(Status::Running);
                }
                Response::ok()
            }
            Err(e) => {
                if !self.init_exited.get() {
                    self.started_at.set(0);
                }
                Response::error(e)
            }
        }
    }

    pub(super) async fn kill(&self, signal: i32, all: bool) -> Response {
        if self.init_exited.get() {
            return Response::ok();
        }
        if let Some(t) = &self.task {
            return self.kill_task(t, signal, all).await;
        }
        if signal == 9
            && self.kill_through_init
            && self.status.get() == Status::Running
            && self.reaper.awaits(self.init_pid)
        {
            // The init is not reaped yet, so its pid is still its own; its death takes every
            // process of its PID namespace along, which is all of the container: what
            // `runc kill --all` does, without a runtime process.
            if let Some(pid) = Pid::from_raw(self.init_pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
            return Response::ok();
        }
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([self.id.as_str(), sig.as_str()]);
        if let Some(j) = self
            .joined
            .as_ref()
            .filter(|_| self.status.get() == Status::Created && !self.starting.get())
        {
            // Nothing of it runs in the sandbox yet; runsc may refuse the signal.
            let _ = self.runc(&args).await;
            if signal != 0 {
                self.killed_before_start(j, signal);
            }
            return Response::ok();
        }
        match self.runc(&args).await {
            Ok(()) => Response::ok(),
            // Raced with the exit: the container is (about to be) stopped.
            Err(e) if self.init_exited.get() || e.contains("not running") || e.contains("already finished") => {
                Response::ok()
            }
            Err(e) => Response::error(e),
        }
    }

    pub(super) async fn wait(&self, timeout_ms: u64) -> Response {
        let mut rx = self.stopped.subscribe();
        let stopped = rx.wait_for(|s| *s);
        let timed_out = if timeout_ms == 0 {
            let _ = stopped.await;
            false
        } else {
            tokio::time::timeout(Duration::from_millis(timeout_ms), stopped)
                .await
                .is_err()
        };
        Response::Wait(WaitResponse {
            timed_out,
            exit: if timed_out { None } else { self.exit.get() },
        })
    }

    pub(super) async fn delete(&self) -> (Response, bool) {
        if self.exit.get().is_none() {
            return (
                Response::error(format!("container is {}, not stopped", status_name(self.status.get()))),
                false,
            );
        }
        if self.deleting.replace(true) {
            return (Response::error("delete already in progress"), false);
        }
        let r = match &self.task {
            Some(t) => self.delete_task(t).await,
            None => self.runc(&["delete", "--force", &self.id]).await,
        };
        match r {
            Ok(()) => (Response::ok(), true),
            Err(e) if e.contains("does not exist") || e.contains("not exist") => (Response::ok(), true),
            Err(e) => {
                self.deleting.set(false);
                (Response::error(e), false)
            }
        }
    }
}

/// Whether a config.json gives the container a PID namespace of its own (a `pid` entry
/// without a path to join).
pub(super) fn owns_pid_namespace(config: &Value) -> bool {
    config
        .pointer("/linux/namespaces")
        .and_then(Value::as_array)
        .is_some_and(|all| {
            all.iter()
                .any(|ns| ns.get("type").and_then(Value::as_str) == Some("pid") && ns.get("path").is_none())
        })
}

#[cfg(test)]
mod tests {
    use super::owns_pid_namespace;
    use serde_json::json;

    #[test]
    fn a_pid_namespace_of_its_own_is_one_without_a_path() {
        let with = |ns: serde_json::Value| json!({"linux": {"namespaces": ns}});
        assert!(owns_pid_namespace(&with(json!([{"type": "mount"}, {"type": "pid"}]))));
        assert!(!owns_pid_namespace(&with(
            json!([{"type": "pid", "path": "/proc/1/ns/pid"}])
        )));
        assert!(!owns_pid_namespace(&with(
            json!([{"type": "mount"}, {"type": "network"}])
        )));
        assert!(!owns_pid_namespace(&json!({"linux": {}})));
    }
}
