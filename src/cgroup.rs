//! Just enough cgroup handling for Berth's own processes (the pod infra process): find the
//! hierarchies (v1, hybrid or v2), create a leaf cgroup under a parent, move a process in,
//! remove it. Both drivers are written as cgroupfs paths; with the systemd driver a slice
//! name such as `kubepods-besteffort-pod1.slice` is expanded into its nested slice path,
//! the layout systemd itself uses.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::CgroupDriver;
pub use berth_shim::cgroups::{expand_slice, runtime_path, unified, ROOT};

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
        let root = Path::new(ROOT);
        if unified() {
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

/// Whether the hierarchies Berth and its OCI runtime use offer controller `name` (`hugetlb`,
/// `pids`, …): on cgroup v2 the root's `cgroup.controllers`, on v1 (and hybrid) a mounted v1
/// hierarchy with that controller. Read once; controllers do not come and go while berthd
/// runs. `true` when it cannot be told, so a limit is never dropped on a guess.
pub fn has_controller(name: &str) -> bool {
    static CONTROLLERS: std::sync::OnceLock<Option<Vec<String>>> = std::sync::OnceLock::new();
    let known = CONTROLLERS.get_or_init(|| {
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").ok();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok();
        controllers_from(v2.as_deref(), mountinfo.as_deref()?)
    });
    known.as_ref().is_none_or(|c| c.iter().any(|c| c == name))
}

/// Controller names of cgroup v1 (the other super options of a v1 mount are flags such as
/// `xattr`, `noprefix` or `clone_children`, or `name=`).
const V1_CONTROLLERS: [&str; 15] = [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "debug",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Whether the memory controller accounts swap, so a swap limit can be set: `memory.memsw.*`
/// in the v1 memory hierarchy (absent when the kernel boots without swap accounting),
/// `memory.swap.max` in berthd's own v2 cgroup (the root has none). Read once; `true` when
/// it cannot be told.
pub fn has_swap_accounting() -> bool {
    static SWAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SWAP.get_or_init(|| {
        let root = Path::new(ROOT);
        if unified() {
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
                return true;
            };
            let dir = root.join(rel.trim_start_matches('/'));
            return rel.trim_matches('/').is_empty() || !dir.exists() || dir.join("memory.swap.max").exists();
        }
        match Hierarchy::detect() {
            Ok(Hierarchy::Legacy(mounts)) => match mounts.iter().find(|m| m.join("memory.limit_in_bytes").exists()) {
                Some(memory) => memory.join("memory.memsw.limit_in_bytes").exists(),
                None => true,
            },
            _ => true,
        }
    })
}

/// The controllers offered, from the v2 root's `cgroup.controllers` (when /sys/fs/cgroup is
/// a v2 tree) or else from the super options of v1 `cgroup` mounts in `mountinfo`.
fn controllers_from(v2_root: Option<&str>, mountinfo: &str) -> Option<Vec<String>> {
    if let Some(list) = v2_root {
        return Some(list.split_whitespace().map(str::to_string).collect());
    }
    let mut out: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            let (_, right) = line.split_once(" - ")?;
            let mut fields = right.split_whitespace();
            (fields.next()? == "cgroup").then_some(())?;
            let opts = fields.nth(1)?;
            Some(
                opts.split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    out.sort();
    out.dedup();
    Some(out)
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

/// Creates `path` in every hierarchy and returns the leaf directories this call made: the
/// only ones the caller owns. Missing ancestors are made too (kubelet's `kubepods/*`, the
/// shared `/berth` parent) but belong to no one pod, so they are never handed back for
/// removal; a directory that appears meanwhile (another pod making the same ancestor at
/// the same moment) is fine.
pub fn create(h: &Hierarchy, path: &str) -> io::Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for root in h.roots() {
        let mut dir = root.clone();
        for (i, comp) in comps.iter().enumerate() {
            let parent = dir.clone();
            dir.push(comp);
            match std::fs::create_dir(&dir) {
                Ok(()) if i + 1 == comps.len() => created.push(dir.clone()),
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
            }
            // A new v1 cpuset cgroup starts with no CPUs or memory nodes: inherit them. Also
            // for one that already existed: whoever made it a moment ago may not have filled
            // it in yet, and a child copied from an empty parent could hold no process.
            if !h.is_v2() {
                inherit_cpuset(&parent, &dir)?;
            }
        }
    }
    Ok(created)
}

/// Copies `cpuset.cpus` and `cpuset.mems` from `parent` into a new v1 cpuset cgroup `dir`
/// (no-op in other hierarchies).
fn inherit_cpuset(parent: &Path, dir: &Path) -> io::Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let target = dir.join(file);
        if !target.exists() {
            continue;
        }
        let current = std::fs::read_to_string(&target).unwrap_or_default();
        if !current.trim().is_empty() {
            continue; // set already (by whoever raced us to make it)
        }
        if let Ok(v) = std::fs::read_to_string(parent.join(file)) {
            std::fs::write(&target, v.trim())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", target.display())))?;
        }
    }
    Ok(())
}

/// Of `dirs` (as recorded), the ones that are leaves of `path`: what a sandbox may remove.
/// Records written before ownership was narrowed to leaves also list ancestors; those are
/// shared and left alone.
pub fn owned_leaves(dirs: &[PathBuf], path: &str) -> Vec<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    dirs.iter()
        .filter(|d| !rel.as_os_str().is_empty() && d.ends_with(rel))
        .cloned()
        .collect()
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
        match remove_dir_settled(d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                first_err.get_or_insert(io::Error::new(e.kind(), format!("{}: {e}", d.display())));
            }
            _ => {}
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// `rmdir`, retried for a moment while the kernel still counts a process that has just
/// exited (EBUSY right after the last member was reaped).
fn remove_dir_settled(dir: &Path) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The leaf directories of `path` in every hierarchy.
pub fn leaf_dirs(h: &Hierarchy, path: &str) -> Vec<PathBuf> {
    h.roots()
        .into_iter()
        .map(|r| r.join(path.trim_start_matches('/')))
        .collect()
}

/// Freezes (`frozen`) or thaws every process of the cgroup at `path`: cgroup v2's
/// `cgroup.freeze`, v1's freezer controller. Waits (up to 5 s) until the kernel reports the
/// new state, so a frozen cgroup's files are not changing when this returns.
pub fn set_frozen(h: &Hierarchy, path: &str, frozen: bool) -> io::Result<()> {
    let rel = path.trim_start_matches('/');
    let (file, value, state_file, settled): (PathBuf, &str, PathBuf, &str) = match h {
        Hierarchy::Unified(root) => {
            let dir = root.join(rel);
            let (value, settled) = if frozen { ("1", "frozen 1") } else { ("0", "frozen 0") };
            (dir.join("cgroup.freeze"), value, dir.join("cgroup.events"), settled)
        }
        Hierarchy::Legacy(roots) => {
            let root = roots
                .iter()
                .find(|r| {
                    r.file_name()
                        .is_some_and(|n| n.to_string_lossy().split(',').any(|c| c == "freezer"))
                })
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no freezer cgroup hierarchy is mounted"))?;
            let state = root.join(rel).join("freezer.state");
            let value = if frozen { "FROZEN" } else { "THAWED" };
            (state.clone(), value, state, value)
        }
    };
    std::fs::write(&file, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = std::fs::read_to_string(&state_file)?;
        if now.lines().any(|l| l.trim() == settled) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} did not become {settled:?}", state_file.display()),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_paths() {
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
        // Only the leaves are handed back, one per hierarchy; the shared parent is not.
        assert_eq!(created, leaf_dirs(&h, &path));
        assert!(create(&h, &format!("/berth-unit-test/{}-b", std::process::id())).is_ok());
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        add_process(&h, &path, child.id()).expect("move");
        let procs = std::fs::read_to_string(leaf_dirs(&h, &path)[0].join("cgroup.procs")).expect("procs");
        assert!(procs.lines().any(|l| l == child.id().to_string()));
        child.kill().expect("kill");
        child.wait().expect("wait");
        remove_dirs(&created).expect("remove");
        assert!(leaf_dirs(&h, &path).iter().all(|d| !d.exists()));
        let sibling = format!("/berth-unit-test/{}-b", std::process::id());
        remove_dirs(&leaf_dirs(&h, &sibling)).expect("remove sibling");
        for d in leaf_dirs(&h, "/berth-unit-test") {
            let _ = std::fs::remove_dir(d);
        }
    }

    #[test]
    fn concurrent_creates_share_ancestors() {
        let h = Hierarchy::detect().expect("cgroups mounted");
        let base = format!("/berth-unit-race-{}", std::process::id());
        let paths: Vec<String> = (0..8).map(|i| format!("{base}/qos/pod{i}/leaf")).collect();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = paths.iter().map(|p| s.spawn(|| create(&h, p))).collect();
            handles.into_iter().map(|t| t.join().expect("thread")).collect()
        });
        for (p, r) in paths.iter().zip(results) {
            assert_eq!(r.expect("create"), leaf_dirs(&h, p), "{p}");
        }
        // Every leaf can hold a process (a v1 cpuset copied from a parent that another
        // thread had made but not yet filled in could not).
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        for p in &paths {
            add_process(&h, p, child.id()).expect("a process fits in every leaf");
        }
        add_process(&h, "/", child.id()).expect("back to the root");
        child.kill().expect("kill");
        child.wait().expect("wait");
        // Removing one pod's leaf leaves its siblings and the shared ancestors in place.
        remove_dirs(&leaf_dirs(&h, &paths[0])).expect("remove");
        assert!(leaf_dirs(&h, &paths[1]).iter().all(|d| d.exists()));
        for p in &paths {
            let _ = remove_dirs(&leaf_dirs(&h, p));
            let pod = p.rsplit_once('/').expect("parent").0;
            let _ = remove_dirs(&leaf_dirs(&h, pod));
        }
        let _ = remove_dirs(&leaf_dirs(&h, &format!("{base}/qos")));
        let _ = remove_dirs(&leaf_dirs(&h, &base));
    }

    #[test]
    fn controllers_from_v1_and_v2() {
        let hybrid = "\
34 25 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 25 0:30 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd
38 25 0:33 / /sys/fs/cgroup/cpu rw shared:14 - cgroup cgroup rw,clone_children,cpu
39 25 0:34 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
40 25 0:35 / /sys/fs/cgroup/net_cls,net_prio rw shared:16 - cgroup cgroup rw,net_cls,net_prio
41 25 0:36 / /sys/fs/cgroup/pids rw shared:17 - cgroup cgroup rw,pids";
        let c = controllers_from(None, hybrid).expect("v1");
        assert_eq!(c, ["cpu", "memory", "net_cls", "net_prio", "pids"]);
        assert!(!c.iter().any(|c| c == "hugetlb" || c == "systemd"));
        let c = controllers_from(Some("cpuset cpu io memory hugetlb pids\n"), hybrid).expect("v2");
        assert!(c.iter().any(|c| c == "hugetlb") && !c.iter().any(|c| c == "net_cls"));
    }

    #[test]
    fn only_leaves_are_owned() {
        let dirs = vec![
            PathBuf::from("/sys/fs/cgroup/cpu/berth"),
            PathBuf::from("/sys/fs/cgroup/cpu/berth/abc"),
            PathBuf::from("/sys/fs/cgroup/memory/berth/abc"),
        ];
        assert_eq!(owned_leaves(&dirs, "/berth/abc"), dirs[1..].to_vec());
        assert!(owned_leaves(&dirs, "").is_empty());
    }
}
