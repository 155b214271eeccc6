//! The createContainer hook of generated NVIDIA specs: refresh the container's ld cache so the
//! mounted driver libraries resolve.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::write_atomic;

/// Name of the ld.so.conf.d file the hook writes in the container.
const LDCONF_NAME: &str = "00-berth-cdi.conf";

/// The createContainer hook body: given the OCI state JSON (read from stdin by the caller) and the folders, write
/// `<rootfs>/etc/ld.so.conf.d/00-berth-cdi.conf` listing the folders (one per line) and run `ldconfig -r <rootfs>`.
///
/// The host's ldconfig is used (`/sbin/ldconfig`, `/usr/sbin/ldconfig`, then `ldconfig` on `PATH`); it chroots into
/// the rootfs, rebuilds `/etc/ld.so.cache` there and creates the soname links in the folders it scans. The folders
/// are also given on its command line, so they are cached even when the image's `/etc/ld.so.conf` does not include
/// `ld.so.conf.d`. rootfs comes from the state's `bundle` + `<bundle>/config.json` `root.path` (relative to the
/// bundle unless absolute).
///
/// Symlinks on the way to `<rootfs>/etc/ld.so.conf.d` are followed as the host would follow them, and the write is
/// refused when any of them leads outside the rootfs (missing folders are created).
pub fn update_ldcache(state_json: &[u8], folders: &[PathBuf]) -> std::io::Result<()> {
    let state: Value = serde_json::from_slice(state_json)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid OCI state: {e}")))?;
    let bundle = state
        .get("bundle")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "OCI state has no \"bundle\""))?;
    let bundle = PathBuf::from(bundle);
    let config_path = bundle.join("config.json");
    let config: Value = serde_json::from_slice(&fs::read(&config_path)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: invalid JSON: {e}", config_path.display()),
        )
    })?;
    let root = config
        .pointer("/root/path")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no root.path", config_path.display()),
            )
        })?;
    let rootfs = fs::canonicalize(bundle.join(root))?;

    let mut conf = String::new();
    for folder in folders {
        let text = folder.to_str().unwrap_or_default();
        if !folder.is_absolute() || text.is_empty() || text.contains(['\n', '\r', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid library folder {folder:?}: must be an absolute path on one line"),
            ));
        }
        conf.push_str(text);
        conf.push('\n');
    }

    let conf_dir = ensure_dir_inside(&rootfs, &["etc", "ld.so.conf.d"])?;
    write_atomic(&conf_dir, &conf_dir.join(LDCONF_NAME), conf.as_bytes())?;

    let ldconfig =
        find_ldconfig().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "ldconfig not found on the host"))?;
    let output = Command::new(&ldconfig)
        .arg("-r")
        .arg(&rootfs)
        .args(folders)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{} -r {} failed ({}): {}",
            ldconfig.display(),
            rootfs.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Makes sure `rootfs/<components…>` is a folder inside `rootfs` (following symlinks as the host does, refusing any
/// that leads outside), creating missing folders. Returns its host path, free of symlinks.
fn ensure_dir_inside(rootfs: &Path, components: &[&str]) -> io::Result<PathBuf> {
    let mut current = rootfs.to_path_buf();
    for name in components {
        let next = current.join(name);
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let real = fs::canonicalize(&next).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("refusing {}: symlink cannot be resolved ({e})", next.display()),
                    )
                })?;
                if !real.starts_with(rootfs) {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "refusing {}: symlink leads outside the container rootfs to {}",
                            next.display(),
                            real.display()
                        ),
                    ));
                }
                if !fs::metadata(&real)?.is_dir() {
                    return Err(io::Error::other(format!("{} is not a folder", next.display())));
                }
                current = real;
            }
            Ok(meta) if meta.is_dir() => current = next,
            Ok(_) => return Err(io::Error::other(format!("{} is not a folder", next.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match fs::create_dir(&next) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(io::Error::other(format!(
                            "{} appeared while creating it",
                            next.display()
                        )))
                    }
                    Err(e) => return Err(e),
                }
                fs::set_permissions(&next, fs::Permissions::from_mode(0o755))?;
                current = next;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(current)
}

pub(super) fn find_ldconfig() -> Option<PathBuf> {
    for p in ["/sbin/ldconfig", "/usr/sbin/ldconfig"] {
        if Path::new(p).is_file() {
            return Some(PathBuf::from(p));
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ldconfig"))
        .find(|p| p.is_file())
}
