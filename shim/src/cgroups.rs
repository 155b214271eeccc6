//! Where cgroups are, for berthd and the shim alike: whether the host mounts the unified
//! (v2) hierarchy, and the directory an OCI `cgroupsPath` names in a hierarchy, as runc
//! reads it (a path for the cgroupfs driver, `SLICE:PREFIX:NAME` for the systemd driver).

use std::path::Path;

/// Where the cgroup hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// Whether `/sys/fs/cgroup` is the unified (v2) hierarchy (else v1, or hybrid).
pub fn unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// A systemd slice as its nested path: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`.
pub fn expand_slice(slice: &str) -> Result<String, String> {
    let name = slice.strip_suffix(".slice").ok_or_else(|| {
        format!("cgroup parent {slice:?} must be a systemd slice (NAME.slice) with the systemd driver")
    })?;
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(format!("invalid systemd slice name {slice:?}"));
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push_str(&format!("/{prefix}.slice"));
    }
    Ok(path)
}

/// The hierarchy path of an OCI `cgroupsPath`: a path as it is; the systemd driver's
/// `SLICE:PREFIX:NAME` as the unit inside the slice's nested path (SLICE empty:
/// `system.slice`; `-.slice`: the root), the unit being NAME when it is a slice, else the
/// scope `PREFIX-NAME.scope` (`NAME.scope` without a prefix).
pub fn runtime_path(cgroups_path: &str) -> Result<String, String> {
    match cgroups_path.split(':').collect::<Vec<_>>()[..] {
        [path] => Ok(path.to_string()),
        [slice, prefix, name] => {
            let slice = if slice.is_empty() { "system.slice" } else { slice };
            let parent = if slice == "-.slice" {
                String::new()
            } else {
                expand_slice(slice)?
            };
            let unit = match (name.ends_with(".slice"), prefix.is_empty()) {
                (true, _) => name.to_string(),
                (false, true) => format!("{name}.scope"),
                (false, false) => format!("{prefix}-{name}.scope"),
            };
            Ok(format!("{parent}/{unit}"))
        }
        _ => Err(format!(
            "cgroups path {cgroups_path:?} is neither a path nor SLICE:PREFIX:NAME"
        )),
    }
}

/// Container `id`'s directory relative to a hierarchy's root, from its config's
/// `cgroupsPath` as runc places it: with none, `<id>` (cgroupfs) or
/// `system.slice/runc-<id>.scope` (systemd).
pub fn container_dir(cgroups_path: &str, id: &str, systemd: bool) -> String {
    let path = match (cgroups_path, systemd) {
        ("", false) => id.to_string(),
        ("", true) => format!(":runc:{id}"),
        (p, _) => p.to_string(),
    };
    runtime_path(&path)
        .unwrap_or_else(|_| id.to_string())
        .trim_start_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand() {
        assert_eq!(expand_slice("kubepods.slice").as_deref(), Ok("/kubepods.slice"));
        assert_eq!(
            expand_slice("kubepods-besteffort-pod12.slice").as_deref(),
            Ok("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice")
        );
        assert!(expand_slice("/kubepods").is_err());
        assert!(expand_slice("a--b.slice").is_err());
    }

    #[test]
    fn runtime_paths() {
        assert_eq!(runtime_path("/kubepods/pod1/c1").as_deref(), Ok("/kubepods/pod1/c1"));
        assert_eq!(
            runtime_path("kubepods-pod1.slice:berth:c1").as_deref(),
            Ok("/kubepods.slice/kubepods-pod1.slice/berth-c1.scope")
        );
        assert!(runtime_path("a:b").is_err());
    }

    #[test]
    fn container_dirs_as_runc_places_them() {
        let dir = |p: &str, systemd: bool| container_dir(p, "x", systemd);
        assert_eq!(dir("system.slice:runc:abc", true), "system.slice/runc-abc.scope");
        assert_eq!(
            dir("kubepods-besteffort-pod1.slice:cri-containerd:abc", true),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
        );
        assert_eq!(dir(":berth:abc", true), "system.slice/berth-abc.scope");
        assert_eq!(dir("-.slice::abc", true), "abc.scope");
        assert_eq!(dir("", true), "system.slice/runc-x.scope");
        assert_eq!(dir("", false), "x");
        assert_eq!(dir("/kubepods/pod1/abc", false), "kubepods/pod1/abc");
    }
}
