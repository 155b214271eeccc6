//! Just enough cgroup handling for Berth's own processes (the pod infra process): find the
//! hierarchies (v1, hybrid or v2), create a leaf cgroup under a parent, move a process in,
//! remove it. Both drivers are written as cgroupfs paths; with the systemd driver a slice
//! name such as `kubepods-besteffort-pod1.slice` is expanded into its nested slice path,
//! the layout systemd itself uses.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::CgroupDriver;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: one tree.
    Unified(PathBuf),
    /// cgroup v1 (also hybrid nodes): one mount per controller set.
    Legacy(Vec<PathBuf>),
}

impl Hierarchy {
    /// Reads the mounted hierarchies from /proc/self/mountinfo.
    pub fn detect() -> io::Result<Hierarchy> {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            return Ok(Hierarchy::Unified(root.into()));
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mut mounts: Vec<PathBuf> = mountinfo
            .lines()
            .filter_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let fstype = right.split_whitespace().next()?;
                let mountpoint = left.split_whitespace().nth(4)?;
                // The named "systemd" hierarchy (name=systemd) is systemd's own; leave it alone.
                let opts = right.split_whitespace().nth(2).unwrap_or("");
                (fstype == "cgroup" && !opts.contains("name=")).then(|| PathBuf::from(mountpoint))
            })
            .collect();
        mounts.sort();
        mounts.dedup();
        if mounts.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup hierarchy is mounted",
            ));
        }
        Ok(Hierarchy::Legacy(mounts))
    }

    fn roots(&self) -> Vec<PathBuf> {
        match self {
            Hierarchy::Unified(r) => vec![r.clone()],
            Hierarchy::Legacy(v) => v.clone(),
        }
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, Hierarchy::Unified(_))
    }
}

/// A cgroup path relative to the hierarchy roots, e.g. `/kubepods/pod1/<id>`.
pub fn leaf_path(driver: CgroupDriver, parent: &str, id: &str) -> Result<String, String> {
    let parent = match driver {
        CgroupDriver::Cgroupfs => {
            if !parent.is_empty() && !parent.starts_with('/') {
                return Err(format!(
                    "cgroup parent {parent:?} must be an absolute path with the cgroupfs driver"
                ));
            }
            if parent.is_empty() {
                "/berth".to_string()
            } else {
                parent.trim_end_matches('/').to_string()
            }
        }
        CgroupDriver::Systemd => expand_slice(if parent.is_empty() { "berth.slice" } else { parent })?,
    };
    if parent.split('/').any(|c| c == "..") {
        return Err(format!("cgroup parent {parent:?} may not contain '..'"));
    }
    Ok(match driver {
        CgroupDriver::Cgroupfs => format!("{parent}/{id}"),
        CgroupDriver::Systemd => format!("{parent}/berth-{id}.scope"),
    })
}

/// The hierarchy path of an OCI `cgroupsPath`: a path as it is, or the systemd driver's
/// `SLICE:PREFIX:NAME` as the scope `PREFIX-NAME.scope` inside the slice's nested path.
pub fn runtime_path(cgroups_path: &str) -> Result<String, String> {
    match cgroups_path.split(':').collect::<Vec<_>>()[..] {
        [path] => Ok(path.to_string()),
        [slice, prefix, name] => {
            let parent = if slice.is_empty() { "-.slice" } else { slice };
            let parent = if parent == "-.slice" {
                String::new()
            } else {
                expand_slice(parent)?
            };
            Ok(format!("{parent}/{prefix}-{name}.scope"))
        }
        _ => Err(format!(
            "cgroups path {cgroups_path:?} is neither a path nor SLICE:PREFIX:NAME"
        )),
    }
}

/// The pod-level cgroup kubelet made (`cgroup_parent`), as a hierarchy path; `None` when the
/// sandbox has no parent of its own (then nothing but the sandbox's members are in it).
pub fn pod_path(driver: CgroupDriver, parent: &str) -> Option<String> {
    if parent.is_empty() {
        return None;
    }
    match driver {
        CgroupDriver::Cgroupfs => Some(parent.trim_end_matches('/').to_string()),
        CgroupDriver::Systemd => expand_slice(parent).ok(),
    }
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`.
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

/// Creates `path` in every hierarchy; returns the directories that did not exist before
/// (deepest last), so a failure or a removal can take back exactly those.
pub fn create(h: &Hierarchy, path: &str) -> io::Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    for root in h.roots() {
        let mut dir = root.clone();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            let parent = dir.clone();
            dir.push(comp);
            if !dir.exists() {
                std::fs::create_dir(&dir)?;
                created.push(dir.clone());
                // A new v1 cpuset cgroup starts with no CPUs or memory nodes: inherit them.
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    if let (Ok(v), true) = (std::fs::read_to_string(parent.join(file)), dir.join(file).exists()) {
                        if !h.is_v2() {
                            std::fs::write(dir.join(file), v.trim())?;
                        }
                    }
                }
            }
        }
    }
    Ok(created)
}

/// Moves a process into `path` in every hierarchy.
pub fn add_process(h: &Hierarchy, path: &str, pid: u32) -> io::Result<()> {
    for root in h.roots() {
        let procs = root.join(path.trim_start_matches('/')).join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", procs.display())))?;
    }
    Ok(())
}

/// Removes cgroup directories (deepest first); already gone is fine.
pub fn remove_dirs(dirs: &[PathBuf]) -> io::Result<()> {
    let mut sorted: Vec<&PathBuf> = dirs.iter().collect();
    sorted.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let mut first_err = None;
    for d in sorted {
        match std::fs::remove_dir(d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                first_err.get_or_insert(io::Error::new(e.kind(), format!("{}: {e}", d.display())));
            }
            _ => {}
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The leaf directories of `path` in every hierarchy.
pub fn leaf_dirs(h: &Hierarchy, path: &str) -> Vec<PathBuf> {
    h.roots()
        .into_iter()
        .map(|r| r.join(path.trim_start_matches('/')))
        .collect()
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
        assert_eq!(pod_path(CgroupDriver::Cgroupfs, ""), None);
        assert_eq!(
            pod_path(CgroupDriver::Systemd, "kubepods-pod1.slice").as_deref(),
            Some("/kubepods.slice/kubepods-pod1.slice")
        );
    }

    #[test]
    fn leaf_paths() {
        assert_eq!(
            leaf_path(CgroupDriver::Cgroupfs, "/kubepods/pod1", "abc").as_deref(),
            Ok("/kubepods/pod1/abc")
        );
        assert_eq!(
            leaf_path(CgroupDriver::Cgroupfs, "", "abc").as_deref(),
            Ok("/berth/abc")
        );
        assert!(leaf_path(CgroupDriver::Cgroupfs, "kubepods", "abc").is_err());
        assert!(leaf_path(CgroupDriver::Cgroupfs, "/a/../../etc", "abc").is_err());
        assert_eq!(
            leaf_path(CgroupDriver::Systemd, "kubepods-pod1.slice", "abc").as_deref(),
            Ok("/kubepods.slice/kubepods-pod1.slice/berth-abc.scope")
        );
    }

    #[test]
    fn create_move_remove_on_this_host() {
        let h = Hierarchy::detect().expect("cgroups mounted");
        let path = format!("/berth-unit-test/{}", std::process::id());
        let created = create(&h, &path).expect("create");
        assert!(!created.is_empty());
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        add_process(&h, &path, child.id()).expect("move");
        let procs = std::fs::read_to_string(leaf_dirs(&h, &path)[0].join("cgroup.procs")).expect("procs");
        assert!(procs.lines().any(|l| l == child.id().to_string()));
        child.kill().expect("kill");
        child.wait().expect("wait");
        remove_dirs(&created).expect("remove");
        assert!(leaf_dirs(&h, &path).iter().all(|d| !d.exists()));
    }
}
