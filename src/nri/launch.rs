//! Plugins started by the runtime: executables named `NN-name` in the plugin directory,
//! each given one end of a socket pair as an inherited fd (`NRI_PLUGIN_SOCKET`), with
//! `NRI_PLUGIN_NAME` and `NRI_PLUGIN_IDX`. They are killed when dropped. Also the socket
//! external plugins connect to.

use std::os::fd::AsRawFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::{NriError, Result};
use super::plugin::Prestarted;

/// Clearing close-on-exec and spawning happen under this lock, so two plugins started at
/// once do not inherit each other's socket.
static SPAWN: Mutex<()> = Mutex::new(());

/// An installed plugin: its index, name and executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub index: String,
    pub name: String,
    pub path: PathBuf,
}

/// `NN-name` split into index and name.
pub fn parse_name(file: &str) -> Option<(String, String)> {
    let (idx, name) = file.split_at_checked(2)?;
    let name = name.strip_prefix('-')?;
    (idx.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()).then(|| (idx.to_string(), name.to_string()))
}

/// The executables of `dir` named `NN-name`, in index then name order (a missing
/// directory has none).
pub fn discover(dir: &Path) -> Vec<Installed> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Installed> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let (index, name) = parse_name(&file)?;
            let meta = std::fs::metadata(e.path()).ok()?;
            (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then(|| Installed {
                index,
                name,
                path: e.path(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.index, &a.name).cmp(&(&b.index, &b.name)));
    out
}

/// The plugin's configuration: `<dir>/NN-name.conf`, else `<dir>/name.conf`, else empty.
pub fn config(dir: &Path, p: &Installed) -> String {
    [format!("{}-{}.conf", p.index, p.name), format!("{}.conf", p.name)]
        .iter()
        .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .unwrap_or_default()
}

/// Starts `p` with one end of a new socket pair; the other end, for the runtime.
pub fn launch(p: &Installed, config_dir: &Path) -> Result<(tokio::net::UnixStream, Prestarted)> {
    let setup = |e: std::io::Error| NriError::Setup(format!("starting plugin {}: {e}", p.path.display()));
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(setup)?;
    ours.set_nonblocking(true).map_err(setup)?;
    let child = {
        let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty()).map_err(|e| setup(e.into()))?;
        let child = tokio::process::Command::new(&p.path)
            .env("NRI_PLUGIN_SOCKET", theirs.as_raw_fd().to_string())
            .env("NRI_PLUGIN_NAME", &p.name)
            .env("NRI_PLUGIN_IDX", &p.index)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        drop(theirs);
        child.map_err(setup)?
    };
    let stream = tokio::net::UnixStream::from_std(ours).map_err(setup)?;
    let pre = Prestarted {
        name: p.name.clone(),
        index: p.index.clone(),
        config: config(config_dir, p),
        child,
    };
    Ok((stream, pre))
}

/// Listens on `path` (mode 0600), creating its directory and replacing a stale socket.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener> {
    let setup = |what: &str, e: std::io::Error| NriError::Setup(format!("{what} {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| setup("creating the directory of", e))?;
    }
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(setup("removing stale", e));
        }
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| setup("binding", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| setup("chmod", e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_discovery() {
        assert_eq!(parse_name("10-env"), Some(("10".into(), "env".into())));
        for bad in ["1-env", "ab-env", "10env", "10-", "x"] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for (f, mode) in [("20-b", 0o755), ("10-a", 0o755), ("05-noexec", 0o644), ("junk", 0o755)] {
            let p = dir.path().join(f);
            std::fs::write(&p, "").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let found: Vec<String> = discover(dir.path()).into_iter().map(|p| p.name).collect();
        assert_eq!(found, ["a", "b"]);
        std::fs::write(dir.path().join("b.conf"), "by-name").expect("write");
        std::fs::write(dir.path().join("20-b.conf"), "by-id").expect("write");
        let b = Installed {
            index: "20".into(),
            name: "b".into(),
            path: dir.path().join("20-b"),
        };
        assert_eq!(config(dir.path(), &b), "by-id");
        assert_eq!(discover(&dir.path().join("missing")), Vec::new());
    }
}
