//! The shim API: newline-delimited JSON on `<bundle>/shim.sock`, one request line and one
//! response line at a time; a connection may carry many requests, one after another.
//!
//! Requests are tagged by `op`. Every failure is answered with `{"error":"message"}`.
//!
//! | request | response |
//! |---|---|
//! | `{"op":"state"}` | [`StateResponse`] |
//! | `{"op":"start"}` | `{"ok":true}` |
//! | `{"op":"kill","signal":N,"all":bool}` | `{"ok":true}` |
//! | `{"op":"wait","timeout_ms":N}` | [`WaitResponse`] |
//! | `{"op":"exec",...}` ([`ExecRequest`]) | [`ExecResponse`] |
//! | `{"op":"reopen_log"}` | `{"ok":true}` |
//! | `{"op":"delete"}` | `{"ok":true}`, then the shim exits |
//! | `{"op":"stdin","data":"<base64>","close":bool}` | `{"ok":true}` |
//! | `{"op":"attach","stdin":bool,"stdout":bool,"stderr":bool}` | `{"ok":true}`, then frames ([`crate::attach`]) |

use serde::{Deserialize, Serialize};

/// Name of the API socket in the bundle directory.
pub const SOCKET: &str = "shim.sock";
/// The shim writes its own pid here (in the bundle directory).
pub const PID_FILE: &str = "shim.pid";
/// The exit record ([`ExitRecord`]), written atomically when the container has stopped.
pub const EXIT_FILE: &str = "exit.json";

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The container's status.
    State,
    /// `runc start`: only from `created`.
    Start,
    /// `runc kill [--all] ID SIGNAL`; a stopped container answers ok.
    Kill {
        signal: i32,
        #[serde(default)]
        all: bool,
    },
    /// Answers once the container has stopped, or after `timeout_ms` with `timed_out`.
    /// `timeout_ms` 0 (or absent) waits without limit.
    Wait {
        #[serde(default)]
        timeout_ms: u64,
    },
    /// ExecSync: `runc exec` with captured output.
    Exec(ExecRequest),
    /// Close and reopen the log file at the log path (kubelet renamed the old one).
    ReopenLog,
    /// `runc delete -f`, only when stopped; the shim then removes its socket and exits.
    Delete,
    /// Write to the container's stdin (needs `--stdin`). `close` ends stdin when the shim
    /// was started with `--stdin-once` (with a tty: sends ^D); otherwise it is ignored.
    Stdin {
        /// Base64 (standard alphabet, padded).
        #[serde(default)]
        data: String,
        #[serde(default)]
        close: bool,
    },
    /// An interactive exec through the shim (containers of a shim v2, whose runtime berthd
    /// does not run itself): after `{"ok":true}` the connection carries [`crate::attach`]
    /// frames; [`crate::attach::EXIT`] carries the exit status (i32 big-endian). Closing
    /// the connection before that kills the process.
    ExecStream(ExecStreamRequest),
    /// Attach to the container's stdio: after `{"ok":true}` the connection carries
    /// [`crate::attach`] frames until the container stops or either side closes.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
}

/// User for an exec'd process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// ExecSync. The OCI process is the container's own `process` from config.json (so
/// capabilities, rlimits, AppArmor/SELinux, noNewPrivileges carry over) with these fields
/// replacing its `args`, and `env`/`cwd`/`user` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub args: Vec<String>,
    /// Empty: the container's env.
    #[serde(default)]
    pub env: Vec<String>,
    /// Empty: the container's cwd.
    #[serde(default)]
    pub cwd: String,
    /// Absent: the container's user.
    #[serde(default)]
    pub user: Option<User>,
    /// Must be false: exec with a terminal is not supported by ExecSync.
    #[serde(default)]
    pub tty: bool,
    /// 0: no timeout. On timeout the exec'd process is SIGKILLed.
    #[serde(default)]
    pub timeout_ms: u64,
    /// Bytes kept per stream (the rest is read and discarded); 0: 16 MiB.
    #[serde(default)]
    pub max_output: usize,
}

/// An interactive exec: the whole OCI process to run, and which streams it has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStreamRequest {
    pub process: serde_json::Value,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub stderr: bool,
}

/// Container status as the shim sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// How the container ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// Exit status, or 128 + signal number.
    pub exit_code: i32,
    /// Unix time in nanoseconds.
    pub finished_at: i64,
    #[serde(default)]
    pub oom_killed: bool,
}

/// The contents of `<bundle>/exit.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub exit_code: i32,
    pub finished_at: i64,
    #[serde(default)]
    pub oom_killed: bool,
    /// Unix ns of `runc start`; 0 when it never started.
    #[serde(default)]
    pub started_at: i64,
}

impl ExitRecord {
    pub fn exit(&self) -> Exit {
        Exit {
            exit_code: self.exit_code,
            finished_at: self.finished_at,
            oom_killed: self.oom_killed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResponse {
    pub status: Status,
    /// The container's init pid (host namespace).
    pub pid: u32,
    /// Unix ns; 0 until started.
    pub started_at: i64,
    pub exit: Option<Exit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResponse {
    pub timed_out: bool,
    /// Present when the container has stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResponse {
    /// The process's exit status (128 + signal when killed); -1 when unknown.
    pub exit_code: i32,
    /// Base64 of the captured stdout.
    pub stdout: String,
    /// Base64 of the captured stderr.
    pub stderr: String,
    pub timed_out: bool,
}

/// One response line. Serialized without a tag: each shape is told apart by its fields
/// (`error`, `status`, `exit_code`, `timed_out`, `ok`), in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Error { error: String },
    State(StateResponse),
    Exec(ExecResponse),
    Wait(WaitResponse),
    Ok { ok: bool },
}

impl Response {
    pub fn ok() -> Self {
        Response::Ok { ok: true }
    }

    pub fn error(msg: impl Into<String>) -> Self {
        Response::Error { error: msg.into() }
    }
}

/// The OCI process of an exec: the container's own `process` from its config.json (so
/// user, capabilities, rlimits, no_new_privileges and env carry over) with new `args` and
/// `terminal`; `cwd` defaults to `/`. Used by the shim (ExecSync) and by berthd (streaming).
pub fn exec_process(config: &serde_json::Value, args: &[String], tty: bool) -> Result<serde_json::Value, String> {
    use serde_json::json;
    let mut process = config.get("process").cloned().unwrap_or_else(|| json!({}));
    let p = process.as_object_mut().ok_or("config.json: process is not an object")?;
    p.insert("args".into(), json!(args));
    p.insert("terminal".into(), json!(tty));
    p.remove("consoleSize");
    if !p.contains_key("cwd") {
        p.insert("cwd".into(), json!("/"));
    }
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_on_the_wire() {
        let r: Request = serde_json::from_str(r#"{"op":"kill","signal":15,"all":true}"#).expect("kill");
        assert_eq!(r, Request::Kill { signal: 15, all: true });
        let r: Request = serde_json::from_str(r#"{"op":"reopen_log"}"#).expect("reopen");
        assert_eq!(r, Request::ReopenLog);
        let r: Request = serde_json::from_str(
            r#"{"op":"exec","args":["sh"],"env":[],"cwd":"/","user":{"uid":1,"gid":2,"additional_gids":[3]},"tty":false,"timeout_ms":5,"max_output":9}"#,
        )
        .expect("exec");
        let Request::Exec(e) = r else { panic!("not exec") };
        assert_eq!(
            e.user,
            Some(User {
                uid: 1,
                gid: 2,
                additional_gids: vec![3]
            })
        );
        assert_eq!(
            serde_json::to_string(&Request::State).expect("ser"),
            r#"{"op":"state"}"#
        );
    }

    #[test]
    fn responses_on_the_wire() {
        let s = Response::State(StateResponse {
            status: Status::Created,
            pid: 7,
            started_at: 0,
            exit: None,
        });
        let text = serde_json::to_string(&s).expect("ser");
        assert_eq!(text, r#"{"status":"created","pid":7,"started_at":0,"exit":null}"#);
        for r in [
            s,
            Response::error("x"),
            Response::ok(),
            Response::Wait(WaitResponse {
                timed_out: true,
                exit: None,
            }),
            Response::Wait(WaitResponse {
                timed_out: false,
                exit: Some(Exit::default()),
            }),
            Response::Exec(ExecResponse {
                exit_code: 1,
                stdout: "".into(),
                stderr: "".into(),
                timed_out: false,
            }),
        ] {
            let back: Response = serde_json::from_str(&serde_json::to_string(&r).expect("ser")).expect("de");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn exec_process_keeps_the_container_identity() {
        let config = serde_json::json!({"process": {"args": ["sleep"], "user": {"uid": 5, "gid": 6}, "env": ["A=1"],
            "terminal": false, "consoleSize": {"height": 1, "width": 2}, "noNewPrivileges": true}});
        let p = exec_process(&config, &["sh".into(), "-i".into()], true).expect("process");
        assert_eq!(p["args"], serde_json::json!(["sh", "-i"]));
        assert_eq!(p["terminal"], serde_json::json!(true));
        assert_eq!(p["user"]["uid"], serde_json::json!(5));
        assert_eq!(p["env"], serde_json::json!(["A=1"]));
        assert_eq!(p["cwd"], serde_json::json!("/"));
        assert_eq!(p["noNewPrivileges"], serde_json::json!(true));
        assert!(p.get("consoleSize").is_none());
        assert!(exec_process(&serde_json::json!({"process": 3}), &[], false).is_err());
    }
}
