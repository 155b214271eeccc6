//! GPU device nodes under the device root: the GPUs, their MIG capability nodes, and
//! where each appears in a container.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::types::*;
use crate::sys::dev;

/// GPU device nodes `<dev_root>/dev/nvidia<N>` (character devices), keyed by minor number.
pub(super) fn gpu_nodes(dev_root: &Path) -> io::Result<BTreeMap<u32, GpuNode>> {
    let dev = dev_root.join("dev");
    let entries = match fs::read_dir(&dev) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("nvidia"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let host = entry.path();
        let Some((_, minor)) = char_device_numbers(&host) else {
            continue;
        };
        out.insert(minor, GpuNode { number, host });
    }
    Ok(out)
}

/// (major, minor) of a character device; None for anything else.
pub(super) fn char_device_numbers(path: &Path) -> Option<(u32, u32)> {
    let meta = fs::metadata(path).ok()?;
    if !meta.file_type().is_char_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((dev::major(rdev) as u32, dev::minor(rdev) as u32))
}

pub(super) fn is_char_device(path: &Path) -> bool {
    char_device_numbers(path).is_some()
}

/// The `/dev/nvidia-caps` node with the given minor number (host path), preferring `nvidia-cap<minor>`.
pub(super) fn find_cap_node(dev_root: &Path, minor: u32) -> Option<PathBuf> {
    let dir = dev_root.join("dev/nvidia-caps");
    let named = dir.join(format!("nvidia-cap{minor}"));
    if char_device_numbers(&named).is_some_and(|(_, m)| m == minor) {
        return Some(named);
    }
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| char_device_numbers(p).is_some_and(|(_, m)| m == minor))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Container path (`/dev/...`) of a node found under `dev_root`.
pub(super) fn container_dev_path(dev_root: &Path, host: &Path) -> PathBuf {
    Path::new("/").join(host.strip_prefix(dev_root).unwrap_or(host))
}

/// Numbers N of the entries named `<prefix>N` in a folder.
pub(super) fn numbered_entries(dir: &Path, prefix: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(prefix)?.parse::<u32>().ok())
        .collect()
}
