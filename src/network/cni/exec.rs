//! Running one CNI plugin binary: lookup in the plugin directories, the `CNI_*` environment,
//! stdin/stdout, the timeout, and mapping of the spec's error JSON.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::network::NetworkError;

/// Longest plugin message or stderr kept in errors and logs.
const MAX_TEXT: usize = 4096;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `ADD`.
    Add,
    /// `DEL`.
    Del,
    /// `CHECK`.
    Check,
}

impl Command {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// The per-sandbox part of the plugin environment.
#[derive(Debug, Clone)]
pub struct Env {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` (may be empty for DEL).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// `CNI_PATH`.
    pub path: String,
}

/// Finds the binary of plugin `plugin_type` in `bin_dirs`, first match wins.
pub fn find_plugin(bin_dirs: &[PathBuf], plugin_type: &str) -> Result<PathBuf, NetworkError> {
    bin_dirs
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|p| p.is_file())
        .ok_or_else(|| NetworkError::PluginNotFound {
            plugin: plugin_type.to_string(),
            searched: join_paths(bin_dirs),
        })
}

/// Joins directories with ':' (`CNI_PATH`).
pub fn join_paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs `binary` with `command`, feeding `stdin`; returns stdout on success. The child is killed
/// when `timeout` passes (or the future is dropped).
pub async fn invoke(
    binary: &Path,
    plugin: &str,
    command: Command,
    env: &Env,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, NetworkError> {
    tracing::debug!(plugin, command = command.as_str(), container = %env.container_id, "running CNI plugin");
    let run = async {
        let mut child = spawn(binary, command, env).await?;
        let mut pipe = child.stdin.take();
        let write = async move {
            if let Some(pipe) = pipe.as_mut() {
                // A plugin may exit without reading stdin; its exit status tells what happened.
                let _ = pipe.write_all(stdin).await;
                let _ = pipe.shutdown().await;
            }
            drop(pipe);
        };
        let ((), output) = tokio::join!(write, child.wait_with_output());
        output.map_err(|source| NetworkError::Io {
            context: format!("waiting for CNI plugin {plugin}"),
            source,
        })
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(output) => output?,
        Err(_) => {
            tracing::warn!(plugin, command = command.as_str(), "CNI plugin timed out; killed");
            return Err(NetworkError::Timeout {
                plugin: plugin.to_string(),
                command: command.as_str(),
                secs: u64::try_from(timeout.as_millis().div_ceil(1000)).unwrap_or(u64::MAX),
            });
        }
    };
    let stderr = truncate(String::from_utf8_lossy(&output.stderr).trim());
    if !stderr.is_empty() {
        tracing::debug!(plugin, command = command.as_str(), stderr = %stderr, "CNI plugin stderr");
    }
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(plugin_error(plugin, command, output.status, &output.stdout, &stderr))
    }
}

async fn spawn(binary: &Path, command: Command, env: &Env) -> Result<tokio::process::Child, NetworkError> {
    let mut attempt = 0u64;
    loop {
        let spawned = tokio::process::Command::new(binary)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &env.container_id)
            .env("CNI_NETNS", &env.netns)
            .env("CNI_IFNAME", &env.ifname)
            .env("CNI_ARGS", &env.args)
            .env("CNI_PATH", &env.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => return Ok(child),
            // ETXTBSY: the binary was just written and another fork still holds it open
            // (libcni retries the same way).
            Err(e) if e.raw_os_error() == Some(26) && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(source) => {
                return Err(NetworkError::Io {
                    context: format!("running CNI plugin {}", binary.display()),
                    source,
                })
            }
        }
    }
}

/// The spec's error object (`code`, `msg`, `details`) printed on stdout.
#[derive(Debug, Deserialize)]
struct ErrorJson {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    details: Option<String>,
}

/// Maps a failed run to [`NetworkError::Plugin`], preferring the plugin's own error JSON.
pub fn plugin_error(plugin: &str, command: Command, status: ExitStatus, stdout: &[u8], stderr: &str) -> NetworkError {
    let parsed = serde_json::from_slice::<ErrorJson>(stdout)
        .ok()
        .filter(|e| e.code.is_some() || e.msg.is_some());
    let (code, message, details) = match parsed {
        Some(e) => {
            let msg = e.msg.filter(|m| !m.is_empty());
            let message = msg.unwrap_or_else(|| format!("error code {}", e.code.unwrap_or_default()));
            (e.code, truncate(&message), truncate(&e.details.unwrap_or_default()))
        }
        None => {
            let stdout = truncate(String::from_utf8_lossy(stdout).trim());
            let message = [stdout.as_str(), stderr]
                .into_iter()
                .find(|s| !s.is_empty())
                .map_or_else(|| describe_status(status), truncate);
            (None, message, String::new())
        }
    };
    NetworkError::Plugin {
        plugin: plugin.to_string(),
        command: command.as_str(),
        code,
        message,
        details,
    }
}

fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code} and no error output"),
        None => format!("terminated abnormally ({status})"),
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The `CNI_NETNS` for DEL: the path as is, unless it exists but is no longer a mounted network
/// namespace (unmounted pin file), in which case empty, so plugins still release IPAM instead of
/// failing on "not a network namespace". A missing path is passed as is: plugins ignore it.
pub fn netns_for_del(path: &Path) -> String {
    let text = path.to_string_lossy().into_owned();
    if text.is_empty() || !path.exists() || path.starts_with("/proc") {
        return text;
    }
    let Ok(canonical) = std::fs::canonicalize(path) else {
        return text;
    };
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(info) if !is_ns_mount(&info, &canonical) => {
            tracing::info!(netns = %text, "netns pin is not mounted any more; running DEL without it");
            String::new()
        }
        _ => text,
    }
}

/// Whether `mountinfo` has a namespace (`nsfs`, or `proc` on old kernels) mounted at `path`.
pub fn is_ns_mount(mountinfo: &str, path: &Path) -> bool {
    mountinfo.lines().any(|line| {
        let mut halves = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            return false;
        };
        let mount_point = left.split(' ').nth(4).map(unescape_mountinfo);
        let fstype = right.split(' ').next();
        mount_point.is_some_and(|m| Path::new(&m) == path) && matches!(fstype, Some("nsfs" | "proc"))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        let decoded = octal.and_then(|d| {
            let n = d.iter().fold(0u16, |acc, b| acc * 8 + u16::from(b - b'0'));
            u8::try_from(n).ok()
        });
        match (bytes[i], decoded) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn env() -> Env {
        Env {
            container_id: "abc".into(),
            netns: "/run/netns/test".into(),
            ifname: "eth0".into(),
            args: "IgnoreUnknown=1".into(),
            path: "/a:/b".into(),
        }
    }

    #[test]
    fn maps_spec_error_json() {
        let out = br#"{"cniVersion": "1.0.0", "code": 11, "msg": "failed to allocate", "details": "range full"}"#;
        let err = plugin_error("host-local", Command::Add, ExitStatus::from_raw(256), out, "ignored");
        match &err {
            NetworkError::Plugin {
                plugin,
                command,
                code,
                message,
                details,
            } => {
                assert_eq!((plugin.as_str(), *command, *code), ("host-local", "ADD", Some(11)));
                assert_eq!(
                    (message.as_str(), details.as_str()),
                    ("failed to allocate", "range full")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "CNI plugin host-local ADD failed (code 11): failed to allocate; range full"
        );
    }

    #[test]
    fn maps_output_without_error_json() {
        let status = ExitStatus::from_raw(2 << 8);
        let message = |stdout: &[u8], stderr: &str| match plugin_error("p", Command::Del, status, stdout, stderr) {
            NetworkError::Plugin {
                message, code: None, ..
            } => message,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(message(b"plain text\n", "err"), "plain text");
        assert_eq!(message(b"", "from stderr"), "from stderr");
        assert_eq!(message(b"", ""), "exited with status 2 and no error output");
        assert!(message(b"", &"x".repeat(10_000)).len() < 5000);
        let killed = plugin_error("p", Command::Check, ExitStatus::from_raw(9), b"", "");
        assert!(killed.to_string().contains("terminated abnormally"), "{killed}");
    }

    #[tokio::test]
    async fn passes_env_and_stdin_and_returns_stdout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = script(
            dir.path(),
            "echoer",
            r#"read -r line; echo "{\"cmd\":\"$CNI_COMMAND\",\"id\":\"$CNI_CONTAINERID\",\"ns\":\"$CNI_NETNS\",\"if\":\"$CNI_IFNAME\",\"path\":\"$CNI_PATH\",\"args\":\"$CNI_ARGS\",\"in\":$line}""#,
        );
        let out = invoke(
            &bin,
            "echoer",
            Command::Check,
            &env(),
            b"{\"k\":1}\n",
            Duration::from_secs(10),
        )
        .await
        .expect("run");
        let value: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"cmd": "CHECK", "id": "abc", "ns": "/run/netns/test", "if": "eth0",
                "path": "/a:/b", "args": "IgnoreUnknown=1", "in": {"k": 1}})
        );
    }

    #[tokio::test]
    async fn kills_plugin_on_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let bin = script(
            dir.path(),
            "slow",
            &format!("echo $$ > {}\nexec sleep 30", pid_file.display()),
        );
        let start = std::time::Instant::now();
        let err = invoke(&bin, "slow", Command::Add, &env(), b"{}", Duration::from_millis(400))
            .await
            .expect_err("must time out");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&err, NetworkError::Timeout { plugin, command: "ADD", secs: 1 } if plugin == "slow"),
            "{err:?}"
        );
        let pid = std::fs::read_to_string(&pid_file)
            .expect("pid written")
            .trim()
            .to_string();
        let mut gone = false;
        for _ in 0..50 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => gone = true,
                Ok(stat) => {
                    gone = stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                }
            }
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "plugin process {pid} still running");
    }

    #[tokio::test]
    async fn missing_binary_and_spawn_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        let dirs = vec![other.path().to_path_buf(), dir.path().to_path_buf()];
        let err = find_plugin(&dirs, "bridge").expect_err("missing");
        assert!(err.to_string().contains("bridge") && err.to_string().contains(&join_paths(&dirs)));
        let found = script(dir.path(), "bridge", "exit 0");
        assert_eq!(find_plugin(&dirs, "bridge").expect("found"), found);
        std::fs::write(other.path().join("bridge"), "not executable").expect("write");
        let shadow = find_plugin(&dirs, "bridge").expect("first dir wins");
        assert_eq!(shadow, other.path().join("bridge"));
        let err = invoke(&shadow, "bridge", Command::Add, &env(), b"{}", Duration::from_secs(5))
            .await
            .expect_err("not executable");
        assert!(matches!(err, NetworkError::Io { .. }), "{err:?}");
    }

    #[test]
    fn recognises_netns_mounts() {
        let info = "\
36 25 0:4 net:[4026532290] /run/netns/pod\\040one rw shared:5 - nsfs nsfs rw
37 25 0:22 / /run/netns/plain rw shared:5 - tmpfs tmpfs rw
38 25 0:4 net:[4026532291] /run/netns/two rw - nsfs nsfs rw";
        assert!(is_ns_mount(info, Path::new("/run/netns/pod one")));
        assert!(is_ns_mount(info, Path::new("/run/netns/two")));
        assert!(!is_ns_mount(info, Path::new("/run/netns/plain")));
        assert!(!is_ns_mount(info, Path::new("/run/netns/other")));
        assert_eq!(unescape_mountinfo("a\\040b\\134c\\777"), "a b\\c\\777");
    }

    #[test]
    fn del_netns_drops_unmounted_pins_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone");
        assert_eq!(netns_for_del(&missing), missing.to_string_lossy());
        let plain = dir.path().join("unmounted");
        std::fs::write(&plain, "").expect("write");
        assert_eq!(netns_for_del(&plain), "");
        assert_eq!(netns_for_del(Path::new("")), "");
        assert_eq!(netns_for_del(Path::new("/proc/self/ns/net")), "/proc/self/ns/net");
    }
}
