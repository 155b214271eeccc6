//! NVIDIA GPU discovery producing a Container Device Interface (CDI) spec.
//!
//! [`discover`] looks at the device nodes, the driver installation and (when present) `nvidia-smi`, and builds a
//! spec of kind `nvidia.com/gpu`, so that a container asking for `nvidia.com/gpu=all` (or `=0`, `=GPU-<uuid>`, …)
//! gets the GPUs, the control nodes, the driver's user-space libraries and tools — the equivalent of
//! `docker run --gpus all`. Nothing from NVIDIA is needed to build or test this module.
//!
//! The spec's `createContainer` hook runs `<hook_binary> cdi-hook update-ldcache --folder DIR…`, which the runtime
//! implements with [`update_ldcache`]: it adds the library folders to the container's `ld.so.conf.d` and rebuilds the
//! container's linker cache with the host's `ldconfig -r <rootfs>`. That also creates the soname links
//! (`libcuda.so.1` → `libcuda.so.<version>`) next to the mounted files, so only the real, versioned files are mounted.

mod cdi_spec;
mod devices;
mod driver;
mod gpus_flag;
mod hook;
mod ldcache;
mod smi;
mod types;

use cdi_spec::*;
use devices::*;
use driver::*;
use types::*;
pub use types::{Discovery, Gpu, Mig, Options, KIND, UNKNOWN_INSTANCE};

pub use gpus_flag::gpus_flag_to_cdi;
pub use hook::update_ldcache;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sys::inroot::host_path;

/// Discovers the node's NVIDIA GPUs and driver and builds the CDI spec.
///
/// None when the node has no NVIDIA GPU (no /dev/nvidia[0-9]+ under dev_root).
///
/// The spec has one device per GPU named by index and one by UUID (when known), one per MIG device named
/// `<gpu>:<N>` (`N` from nvidia-smi's `Device N`) and by MIG UUID, and `all`. The common edits carry
/// `NVIDIA_VISIBLE_DEVICES=void`, the control nodes present, read-only bind mounts of the driver libraries, tools,
/// firmware and daemon sockets found, and the `createContainer` ld-cache hook (left out when no library was found).
/// Only errors reading `<dev_root>/dev` are returned; anything else missing becomes a warning.
pub fn discover(opts: &Options) -> std::io::Result<Option<Discovery>> {
    let nodes = gpu_nodes(&opts.dev_root)?;
    if nodes.is_empty() {
        return Ok(None);
    }
    let mut warnings = Vec::new();
    let mut ctx = Ctx {
        opts,
        warnings: &mut warnings,
    };

    // Driver files first: nvidia-smi under a non-"/" driver root needs the library folders.
    let proc_version = ctx.proc_driver_version();
    let libs = ctx.find_libraries();
    let driver_version = proc_version.or_else(|| version_from_libraries(&libs));
    let libs = ctx.select_library_version(libs, driver_version.as_deref());

    let smi = ctx.run_nvidia_smi(&libs);
    let proc_uuids = ctx.proc_gpu_uuids();
    let gpus = ctx.assemble_gpus(&nodes, smi, &proc_uuids);

    let mut mounts: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let mut folders = BTreeSet::new();
    for lib in &libs {
        if let Some(parent) = lib.parent() {
            folders.insert(parent.to_path_buf());
        }
        mounts.insert(lib.clone(), host_path(&opts.driver_root, lib));
    }
    for (container, host) in ctx.find_binaries() {
        mounts.entry(container).or_insert(host);
    }
    if let Some(version) = &driver_version {
        let firmware = PathBuf::from(format!("/lib/firmware/nvidia/{version}"));
        if let Ok(real) = resolve_in_root(&opts.driver_root, &firmware) {
            if fs::metadata(host_path(&opts.driver_root, &real)).is_ok_and(|m| m.is_dir()) {
                mounts.insert(firmware, host_path(&opts.driver_root, &real));
            }
        }
    }
    for socket in SOCKETS {
        let container = Path::new("/").join(socket);
        if let Ok(real) = resolve_in_root(&opts.driver_root, &container) {
            let host = host_path(&opts.driver_root, &real);
            if fs::metadata(&host).is_ok_and(|m| m.file_type().is_socket()) {
                mounts.insert(container, host);
            }
        }
    }
    if libs.is_empty() {
        ctx.warn(format!(
            "no NVIDIA driver libraries found under {}",
            opts.driver_root.display()
        ));
    }

    let control: Vec<PathBuf> = CONTROL_NODES
        .iter()
        .map(|n| Path::new("/dev").join(n))
        .filter(|p| is_char_device(&host_path(&opts.dev_root, p)))
        .collect();
    if control.iter().all(|p| p != Path::new("/dev/nvidiactl")) {
        ctx.warn("/dev/nvidiactl not found: CUDA will not work in containers".to_string());
    }

    let spec = build_spec(opts, &gpus, &control, &mounts, &folders, ctx.warnings);
    let gpus = gpus.into_iter().map(|g| g.public).collect();
    Ok(Some(Discovery {
        spec,
        gpus,
        driver_version,
        warnings,
    }))
}

/// Whether any spec file in `dirs` (*.json, *.yaml, *.yml) already declares kind "nvidia.com/gpu" (cheap text/JSON
/// check; for YAML a line `kind: nvidia.com/gpu` with optional quotes).
///
/// Unreadable folders and files are skipped, and so are files named `except` (the spec that
/// discovery itself writes).
pub fn has_nvidia_spec(dirs: &[PathBuf], except: &str) -> bool {
    dirs.iter().any(|dir| {
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == except {
                return false;
            }
            let is_json = name.ends_with(".json");
            let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if !is_json && !is_yaml {
                return false;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                return false;
            };
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                return value.get("kind").and_then(Value::as_str) == Some(KIND);
            }
            is_yaml && yaml_declares_kind(&text)
        })
    })
}

/// Writes the spec atomically (temp file + rename, mode 0644) as `<dir>/<name>`, creating dir.
pub fn write_spec(dir: &Path, name: &str, spec: &serde_json::Value) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let target = dir.join(name);
    let mut text = serde_json::to_string_pretty(spec).map_err(io::Error::other)?;
    text.push('\n');
    write_atomic(dir, &target, text.as_bytes())?;
    // Make the rename durable; failing to sync a folder is not worth failing the write.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

// ---------------------------------------------------------------------------------------------------------------------
// Discovery internals.

/// Writes `target` (mode 0644) through a temporary file in `dir` and a rename, never following a symlink.
fn write_atomic(dir: &Path, target: &Path, data: &[u8]) -> io::Result<()> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(data)?;
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether YAML text has a top-level `kind: nvidia.com/gpu` line (the value optionally quoted).
fn yaml_declares_kind(text: &str) -> bool {
    text.lines().any(|line| {
        let Some(value) = line.strip_prefix("kind:") else {
            return false;
        };
        let value = value.split(" #").next().unwrap_or_default().trim();
        let value = strip_outer_quotes(value);
        value == KIND
    })
}

/// Removes one pair of matching outer `"` or `'` quotes.
fn strip_outer_quotes(text: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
