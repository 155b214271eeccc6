//! What an OCI runtime binary can do, as its `features` subcommand reports it (the OCI
//! runtime-spec "features" document): the mount options it knows and the namespaces and
//! mount extensions it supports. A runtime without that subcommand (or not installed)
//! supports none of the optional features.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Optional features of one runtime handler's OCI runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Knows the `rro` mount option (recursive read-only bind mounts).
    pub recursive_read_only: bool,
    /// Creates user namespaces (`linux.namespaces` lists `user`).
    pub user_namespace: bool,
    /// Applies `uidMappings`/`gidMappings` of a mount (idmapped mounts).
    pub idmap_mounts: bool,
    /// The highest capability number it knows, where it knows fewer than the kernel
    /// (`None`: every one the kernel knows). A capability it does not know fails the start.
    pub last_cap: Option<u32>,
}

/// Reads a features document; anything it does not state is unsupported.
pub fn parse(json: &[u8]) -> Features {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Features::default();
    };
    let lists =
        |v: &serde_json::Value, what: &str| v.as_array().is_some_and(|a| a.iter().any(|x| x.as_str() == Some(what)));
    Features {
        recursive_read_only: lists(&doc["mountOptions"], "rro"),
        user_namespace: lists(&doc["linux"]["namespaces"], "user"),
        idmap_mounts: doc["linux"]["mountExtensions"]["idmap"]["enabled"].as_bool() == Some(true),
        last_cap: None,
    }
}

/// Runs `binary features` (at most `timeout`) and reads its answer.
pub fn probe(binary: &Path, timeout: Duration) -> Features {
    let mut cmd = Command::new(binary);
    cmd.arg("features");
    match stdout_within(cmd, timeout) {
        Some(out) => parse(&out),
        None => Features::default(),
    }
}

/// The standard output of `cmd` run to a successful end within `timeout` (its standard
/// input and error closed); None when it cannot start, fails or runs past the timeout (then
/// it is killed). Blocking.
pub fn stdout_within(mut cmd: Command, timeout: Duration) -> Option<Vec<u8>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(command = ?cmd.get_program(), args = ?cmd.get_args().collect::<Vec<_>>(), "did not answer in time");
                return None;
            }
            _ => return None,
        }
    }
    let mut out = Vec::new();
    child.stdout.take()?.read_to_end(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_document_states() {
        let doc = br#"{"ociVersionMin":"1.0.0","mountOptions":["ro","rbind","rro"],
            "linux":{"namespaces":["mount","user"],"mountExtensions":{"idmap":{"enabled":true}}}}"#;
        assert_eq!(
            parse(doc),
            Features {
                recursive_read_only: true,
                user_namespace: true,
                idmap_mounts: true,
                last_cap: None,
            }
        );
        let old = br#"{"mountOptions":["ro","rbind"],"linux":{"namespaces":["mount"]}}"#;
        assert_eq!(parse(old), Features::default());
        assert_eq!(parse(b"not json"), Features::default());
        assert_eq!(parse(b""), Features::default());
    }

    #[test]
    fn a_missing_or_failing_runtime_supports_nothing() {
        let t = Duration::from_secs(5);
        assert_eq!(probe(Path::new("/nonexistent/runtime"), t), Features::default());
        assert_eq!(probe(Path::new("/bin/false"), t), Features::default());
    }

    #[test]
    fn a_runtime_that_hangs_is_given_up_on() {
        let dir = std::env::temp_dir().join(format!("berth-features-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let bin = dir.join("slow-runtime");
        std::fs::write(&bin, "#!/bin/sh\nexec sleep 30\n").expect("write");
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let started = Instant::now();
        let f = probe(&bin, Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(f, Features::default());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up after {:?}",
            started.elapsed()
        );
    }
}
