//! Running `berthctl` (the one built beside the berthd under test) and looking into the
//! archives it writes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::cri::Cri;
use crate::{Berthd, BerthdOpts};

/// What one `berthctl` run printed, and whether it succeeded.
#[derive(Debug)]
pub struct CtlOut {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `$BERTHCTL`, else `berthctl` beside [`crate::berthd::berthd_binary`].
pub fn berthctl_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTHCTL") {
        return Ok(p.into());
    }
    Ok(crate::berthd::berthd_binary()?.with_file_name("berthctl"))
}

/// Runs `berthctl -r <endpoint> ARGS` with `stdin` fed to it (an empty stdin otherwise)
/// and no `DOCKER_CONFIG` from the test's environment.
pub fn berthctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Result<CtlOut> {
    let mut child = Command::new(berthctl_binary()?)
        .args(["-r", endpoint])
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        if let Some(text) = stdin {
            input.write_all(text.as_bytes())?;
        }
    }
    let out = child.wait_with_output()?;
    Ok(CtlOut {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The member paths of a tar archive, in order.
pub fn tar_listing(path: &Path) -> Result<Vec<String>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        out.push(entry?.path()?.display().to_string());
    }
    Ok(out)
}

/// A berthd whose hosts config reaches `addr` (`host:port`) over plain HTTP, with `toml`
/// as its config file; the hosts directory lives as long as the returned `TempDir`.
pub async fn berthd_reaching(addr: &str, toml: Option<String>) -> Result<(Berthd, Cri, tempfile::TempDir)> {
    crate::require_root();
    let hosts = tempfile::tempdir()?;
    let dir = hosts.path().join(addr);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("hosts.toml"), format!("server = \"http://{addr}\"\n"))?;
    let berthd = Berthd::start(BerthdOpts {
        registry_config_dir: Some(hosts.path().to_path_buf()),
        config_toml: toml,
        ..Default::default()
    })
    .await?;
    let cri = Cri::connect(berthd.socket()).await?;
    Ok((berthd, cri, hosts))
}

/// The blob files of berthd's content store, sorted.
pub fn blobs(berthd: &Berthd) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(berthd.root().join("content/blobs/sha256"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    all.sort();
    all
}

/// Entries of a directory (0 when it does not exist).
pub fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Runs `berthctl -r <endpoint> ARGS`, insisting that it succeeds; its stdout.
pub fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = berthctl(endpoint, args, None).expect("berthctl");
    assert!(
        out.ok,
        "berthctl {args:?} failed: {}\nstdout: {}",
        out.stderr, out.stdout
    );
    out.stdout
}

/// Runs `berthctl -r <endpoint> ARGS`, insisting that it fails saying `says`.
pub fn fails(endpoint: &str, args: &[&str], says: &str) {
    let out = berthctl(endpoint, args, None).expect("berthctl");
    assert!(
        !out.ok && out.stderr.contains(says),
        "berthctl {args:?}: {}",
        out.stderr
    );
}
