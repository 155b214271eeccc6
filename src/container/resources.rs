//! cgroup resources (CRI `LinuxContainerResources`), the OOM score adjustment, and devices (CRI
//! `devices`, privileged host devices, and the device cgroup allow-list).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxResources,
};

use super::model::{ContainerSpec, DeviceSpec, Resources};

pub(crate) use super::spec_input::Controllers;
use super::spec_input::SpecError;
use crate::sys::dev::{major, minor};

/// `process.oomScoreAdj`: the CRI value raised to at least `min` (lowering a process's score
/// below its parent's needs `CAP_SYS_RESOURCE`, which the runtime may lack, and runc then fails
/// to start the container), within the kernel's -1000..=1000.
pub(crate) fn oom_score_adj(requested: i64, min: i64) -> i32 {
    // The clamp makes the cast lossless.
    requested.max(min).clamp(-1000, 1000) as i32
}

/// `linux.resources` from the CRI resources: CPU shares/quota/period and cpuset, memory limit,
/// swap (`memory_swap_limit_in_bytes`; 0 leaves it unset, -1 is unlimited), hugepage limits, and
/// `unified` (cgroup v2 files; `Invalid` on a cgroup v1 host). No pids limit. Zero values mean
/// "not set", as in the CRI. A limit whose controller the host lacks (see [`Controllers`]) is
/// validated, then left out with one warning per berthd: kubelet sets hugepage limits for
/// every page size the node has and a swap limit beside every memory limit, and the OCI
/// runtime would otherwise fail to create every container.
pub(crate) fn linux_resources(r: &Resources, cgroup_v2: bool, have: Controllers) -> Result<LinuxResources, SpecError> {
    let mut out = LinuxResources::default();

    if r.cpu_shares < 0 || r.cpu_period < 0 || r.cpu_quota < -1 {
        return Err(SpecError::Invalid(format!(
            "resources: negative cpu_shares {} / cpu_period {} / cpu_quota {}",
            r.cpu_shares, r.cpu_period, r.cpu_quota
        )));
    }
    if r.cpu_shares != 0
        || r.cpu_quota != 0
        || r.cpu_period != 0
        || !r.cpuset_cpus.is_empty()
        || !r.cpuset_mems.is_empty()
    {
        let mut cpu = LinuxCpuBuilder::default();
        if r.cpu_shares > 0 {
            cpu = cpu.shares(r.cpu_shares.unsigned_abs());
        }
        if r.cpu_quota != 0 {
            cpu = cpu.quota(r.cpu_quota);
        }
        if r.cpu_period > 0 {
            cpu = cpu.period(r.cpu_period.unsigned_abs());
        }
        if !r.cpuset_cpus.is_empty() {
            cpu = cpu.cpus(r.cpuset_cpus.clone());
        }
        if !r.cpuset_mems.is_empty() {
            cpu = cpu.mems(r.cpuset_mems.clone());
        }
        out.set_cpu(Some(cpu.build().map_err(|e| SpecError::build("resources.cpu", e))?));
    }

    if r.memory_limit_in_bytes < 0 {
        return Err(SpecError::Invalid(format!(
            "resources.memory_limit_in_bytes: {} is negative",
            r.memory_limit_in_bytes
        )));
    }
    if r.memory_swap_limit_in_bytes < -1 {
        return Err(SpecError::Invalid(format!(
            "resources.memory_swap_limit_in_bytes: {} is negative",
            r.memory_swap_limit_in_bytes
        )));
    }
    if r.memory_limit_in_bytes > 0 || r.memory_swap_limit_in_bytes != 0 {
        let mut mem = LinuxMemoryBuilder::default();
        if r.memory_limit_in_bytes > 0 {
            mem = mem.limit(r.memory_limit_in_bytes);
        }
        if r.memory_swap_limit_in_bytes != 0 {
            if have.swap {
                mem = mem.swap(r.memory_swap_limit_in_bytes);
            } else {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "the host's memory cgroup has no swap accounting: swap limits of containers are left out"
                    )
                });
            }
        }
        out.set_memory(Some(mem.build().map_err(|e| SpecError::build("resources.memory", e))?));
    }

    if !r.hugepage_limits.is_empty() {
        let mut limits = Vec::with_capacity(r.hugepage_limits.len());
        for (size, limit) in &r.hugepage_limits {
            if size.is_empty() {
                return Err(SpecError::Invalid("resources.hugepage_limits: empty page size".into()));
            }
            let limit = i64::try_from(*limit)
                .map_err(|_| SpecError::Invalid(format!("resources.hugepage_limits[{size}]: {limit} is too large")))?;
            limits.push(
                LinuxHugepageLimitBuilder::default()
                    .page_size(size.clone())
                    .limit(limit)
                    .build()
                    .map_err(|e| SpecError::build("resources.hugepage_limits", e))?,
            );
        }
        if have.hugetlb {
            out.set_hugepage_limits(Some(limits));
        } else {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!("the host has no hugetlb cgroup controller: hugepage limits of containers are left out")
            });
        }
    }

    if let Some(key) = r.unified.keys().next() {
        if !cgroup_v2 {
            return Err(SpecError::Invalid(format!(
                "resources.unified: {key:?} needs cgroup v2 but this host uses cgroup v1"
            )));
        }
        out.set_unified(Some(r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
    }
    Ok(out)
}

/// Device nodes to create in the container and the device cgroup rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Devices {
    pub nodes: Vec<LinuxDevice>,
    pub rules: Vec<LinuxDeviceCgroup>,
}

/// Default device cgroup allow-list (containerd's and Docker's): mknod of any node, /dev/null,
/// random, full, tty, zero, urandom, console, the pty slaves (136:*), /dev/ptmx and /dev/net/tun
/// (a tun device is only usable with CAP_NET_ADMIN anyway). `None` is a wildcard.
pub const DEFAULT_ALLOWED_DEVICES: [(char, Option<i64>, Option<i64>, &str); 12] = [
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"),
    ('c', Some(1), Some(8), "rwm"),
    ('c', Some(1), Some(7), "rwm"),
    ('c', Some(5), Some(0), "rwm"),
    ('c', Some(1), Some(5), "rwm"),
    ('c', Some(1), Some(9), "rwm"),
    ('c', Some(5), Some(1), "rwm"),
    ('c', Some(136), None, "rwm"),
    ('c', Some(5), Some(2), "rwm"),
    ('c', Some(10), Some(200), "rwm"),
];

fn dev_type(c: char) -> LinuxDeviceType {
    match c {
        'b' => LinuxDeviceType::B,
        'c' => LinuxDeviceType::C,
        _ => LinuxDeviceType::A,
    }
}

fn cgroup_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).access(access);
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().map_err(|e| SpecError::build("device cgroup rule", e))
}

/// The device node at `host` (following no symlink) as a `LinuxDevice` at `container`, or
/// `None` if it is not a character or block device.
fn device_at(host: &Path, container: &Path) -> Result<Option<LinuxDevice>, SpecError> {
    let meta = fs::symlink_metadata(host).map_err(|e| SpecError::io(host, e))?;
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    LinuxDeviceBuilder::default()
        .path(container)
        .typ(typ)
        .major(major(meta.rdev()))
        .minor(minor(meta.rdev()))
        .file_mode(meta.mode() & 0o7777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()
        .map(Some)
        .map_err(|e| SpecError::build("device", e))
}

/// Every device node under the host directory `host`, placed under `container` (containerd's
/// `getDevices`: the pts, shm, fd, mqueue and LXC/udev private directories and the console are
/// skipped, symlinks are not followed).
fn devices_under(host: &Path, container: &Path, out: &mut Vec<LinuxDevice>) -> Result<(), SpecError> {
    let entries = fs::read_dir(host).map_err(|e| SpecError::io(host, e))?;
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let Ok(ft) = e.file_type() else { continue };
        let (h, c) = (host.join(&name), container.join(&name));
        if ft.is_dir() {
            if matches!(
                name.to_str(),
                Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
            ) {
                continue;
            }
            devices_under(&h, &c, out)?;
        } else if name != "console" {
            match device_at(&h, &c) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {}
                // The node vanished while we walked: skip it.
                Err(SpecError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Validates CRI device permissions (some of `r`, `w`, `m`; empty means all).
fn permissions(index: usize, p: &str) -> Result<String, SpecError> {
    if p.is_empty() {
        return Ok("rwm".into());
    }
    if !p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(SpecError::Invalid(format!(
            "devices[{index}].permissions: {p:?} is not a subset of \"rwm\""
        )));
    }
    Ok(p.to_owned())
}

/// One CRI device: the host node (symlinks resolved; `NotFound` naming it if missing), or every
/// node beneath a host directory, each with an allow rule carrying the requested permissions.
fn cri_device(index: usize, d: &DeviceSpec, out: &mut Devices) -> Result<(), SpecError> {
    let access = permissions(index, &d.permissions)?;
    if !d.container_path.starts_with('/') {
        return Err(SpecError::Invalid(format!(
            "devices[{index}].container_path: {:?} is not absolute",
            d.container_path
        )));
    }
    let host = match fs::canonicalize(&d.host_path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SpecError::NotFound(format!(
                "devices[{index}].host_path: {:?} does not exist",
                d.host_path
            )))
        }
        Err(e) => return Err(SpecError::io(&d.host_path, e)),
    };
    let mut nodes = Vec::new();
    let container = PathBuf::from(&d.container_path);
    if host.is_dir() {
        devices_under(&host, &container, &mut nodes)?;
    } else {
        match device_at(&host, &container)? {
            Some(n) => nodes.push(n),
            None => {
                return Err(SpecError::Invalid(format!(
                    "devices[{index}].host_path: {:?} is not a device node",
                    d.host_path
                )))
            }
        }
    }
    for n in nodes {
        out.rules.push(cgroup_rule(
            true,
            Some(n.typ()),
            Some(n.major()),
            Some(n.minor()),
            &access,
        )?);
        out.nodes.retain(|e| e.path() != n.path());
        out.nodes.push(n);
    }
    Ok(())
}

/// Devices of the container: the device cgroup denies everything, then allows
/// [`DEFAULT_ALLOWED_DEVICES`] (privileged: everything, and every host device under /dev is
/// created), then each CRI device. runc itself creates the standard nodes (null, zero, ...).
pub(crate) fn devices(c: &ContainerSpec) -> Result<Devices, SpecError> {
    let mut out = Devices {
        nodes: Vec::new(),
        rules: vec![cgroup_rule(false, None, None, None, "rwm")?],
    };
    if c.security.privileged {
        devices_under(Path::new("/dev"), Path::new("/dev"), &mut out.nodes)?;
        out.rules.push(cgroup_rule(true, None, None, None, "rwm")?);
    } else {
        for (t, maj, min, access) in DEFAULT_ALLOWED_DEVICES {
            out.rules.push(cgroup_rule(true, Some(dev_type(t)), maj, min, access)?);
        }
    }
    for (i, d) in c.devices.iter().enumerate() {
        cri_device(i, d, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::model::SecuritySpec;
    use super::*;

    #[test]
    fn oom_score_adj_is_clamped() {
        assert_eq!(oom_score_adj(-998, 0), 0);
        assert_eq!(oom_score_adj(-998, -1000), -998);
        assert_eq!(oom_score_adj(500, 0), 500);
        assert_eq!(oom_score_adj(5000, 0), 1000);
        assert_eq!(oom_score_adj(-5000, -2000), -1000);
    }

    #[test]
    fn resources_map_to_linux() {
        let r = Resources {
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            memory_limit_in_bytes: 64 << 20,
            hugepage_limits: vec![("2MB".into(), 4 << 20)],
            ..Default::default()
        };
        let out = linux_resources(&r, false, Controllers::ALL).expect("resources");
        let cpu = out.cpu().clone().expect("cpu");
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (Some(512), Some(50_000), Some(100_000))
        );
        assert_eq!((cpu.cpus().as_deref(), cpu.mems().as_deref()), (Some("0-1"), Some("0")));
        let mem = out.memory().expect("memory");
        assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), None), "swap 0 stays unset");
        let huge = out.hugepage_limits().clone().expect("huge");
        assert_eq!((huge[0].page_size().as_str(), huge[0].limit()), ("2MB", 4 << 20));
        assert!(out.pids().is_none() && out.unified().is_none());

        let r = Resources {
            memory_limit_in_bytes: 1 << 30,
            memory_swap_limit_in_bytes: 2 << 30,
            ..Default::default()
        };
        assert_eq!(
            linux_resources(&r, false, Controllers::ALL)
                .expect("ok")
                .memory()
                .expect("mem")
                .swap(),
            Some(2 << 30)
        );
        let empty = linux_resources(&Resources::default(), false, Controllers::ALL).expect("ok");
        assert!(empty.cpu().is_none() && empty.memory().is_none());
    }

    #[test]
    fn limits_left_out_without_their_controller() {
        let r = Resources {
            memory_limit_in_bytes: 64 << 20,
            hugepage_limits: vec![("2MB".into(), 0), ("1GB".into(), 0)],
            ..Default::default()
        };
        let none = Controllers {
            hugetlb: false,
            swap: false,
        };
        let out = linux_resources(&r, false, none).expect("no hugetlb controller is not an error");
        assert!(out.hugepage_limits().is_none());
        assert_eq!(out.memory().expect("memory").limit(), Some(64 << 20), "the rest stays");
        let swap = Resources {
            memory_limit_in_bytes: 64 << 20,
            memory_swap_limit_in_bytes: 64 << 20,
            ..Default::default()
        };
        let out = linux_resources(&swap, false, none).expect("no swap accounting is not an error");
        assert_eq!(
            (
                out.memory().expect("memory").limit(),
                out.memory().expect("memory").swap()
            ),
            (Some(64 << 20), None)
        );
        let bad = Resources {
            hugepage_limits: vec![(String::new(), 1)],
            ..Default::default()
        };
        assert!(
            matches!(linux_resources(&bad, false, none), Err(SpecError::Invalid(_))),
            "still validated"
        );
    }

    #[test]
    fn unified_needs_cgroup_v2() {
        let mut r = Resources::default();
        r.unified.insert("memory.high".into(), "1000000".into());
        let err = linux_resources(&r, false, Controllers::ALL).expect_err("v1");
        assert!(matches!(&err, SpecError::Invalid(m) if m.contains("memory.high") && m.contains("unified")));
        let ok = linux_resources(&r, true, Controllers::ALL).expect("v2");
        assert_eq!(ok.unified().clone().expect("unified")["memory.high"], "1000000");
    }

    #[test]
    fn invalid_resources() {
        for r in [
            Resources {
                cpu_shares: -1,
                ..Default::default()
            },
            Resources {
                memory_limit_in_bytes: -5,
                ..Default::default()
            },
            Resources {
                memory_swap_limit_in_bytes: -2,
                ..Default::default()
            },
            Resources {
                hugepage_limits: vec![(String::new(), 1)],
                ..Default::default()
            },
        ] {
            assert!(
                matches!(linux_resources(&r, false, Controllers::ALL), Err(SpecError::Invalid(_))),
                "{r:?}"
            );
        }
    }

    fn spec_with(devices: Vec<DeviceSpec>) -> ContainerSpec {
        ContainerSpec {
            devices,
            ..Default::default()
        }
    }

    #[test]
    fn default_device_rules() {
        let d = devices(&ContainerSpec::default()).expect("devices");
        assert!(d.nodes.is_empty());
        assert_eq!(d.rules.len(), 1 + DEFAULT_ALLOWED_DEVICES.len());
        assert!(!d.rules[0].allow() && d.rules[0].typ().is_none());
        assert!(d
            .rules
            .iter()
            .any(|r| r.allow() && r.major() == Some(136) && r.minor().is_none()));
    }

    #[test]
    fn cri_device_from_real_node() {
        let d = devices(&spec_with(vec![DeviceSpec {
            container_path: "/dev/mynull".into(),
            host_path: "/dev/null".into(),
            permissions: "rw".into(),
        }]))
        .expect("devices");
        let n = &d.nodes[0];
        assert_eq!(
            (n.path().as_path(), n.typ(), n.major(), n.minor()),
            (Path::new("/dev/mynull"), LinuxDeviceType::C, 1, 3)
        );
        assert_eq!(n.file_mode(), Some(0o666));
        let last = d.rules.last().expect("rule");
        assert_eq!(
            (last.allow(), last.major(), last.minor(), last.access().as_deref()),
            (true, Some(1), Some(3), Some("rw"))
        );
    }

    #[test]
    fn cri_device_symlink_and_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("z")).expect("symlink");
        let d = devices(&spec_with(vec![DeviceSpec {
            container_path: "/dev/z".into(),
            host_path: dir.path().join("z").display().to_string(),
            permissions: String::new(),
        }]))
        .expect("devices");
        assert_eq!((d.nodes[0].major(), d.nodes[0].minor()), (1, 5));
        assert_eq!(d.rules.last().and_then(|r| r.access().clone()).as_deref(), Some("rwm"));
        // a directory holding no device nodes (only the symlink, which is not followed) yields none
        let d = devices(&spec_with(vec![DeviceSpec {
            container_path: "/dev/dir".into(),
            host_path: dir.path().display().to_string(),
            permissions: "r".into(),
        }]))
        .expect("devices");
        assert!(d.nodes.is_empty());
        // a real directory of nodes: /dev/net holds tun on most hosts
        if Path::new("/dev/net/tun").exists() {
            let d = devices(&spec_with(vec![DeviceSpec {
                container_path: "/dev/net".into(),
                host_path: "/dev/net".into(),
                permissions: "rwm".into(),
            }]))
            .expect("devices");
            assert!(d
                .nodes
                .iter()
                .any(|n| n.path() == Path::new("/dev/net/tun") && n.major() == 10));
        }
    }

    #[test]
    fn bad_devices() {
        let missing = DeviceSpec {
            container_path: "/dev/x".into(),
            host_path: "/dev/nonexistent-berth".into(),
            permissions: "rw".into(),
        };
        assert!(
            matches!(devices(&spec_with(vec![missing])), Err(SpecError::NotFound(m)) if m.contains("nonexistent-berth"))
        );
        let perms = DeviceSpec {
            container_path: "/dev/x".into(),
            host_path: "/dev/null".into(),
            permissions: "rwx".into(),
        };
        assert!(matches!(devices(&spec_with(vec![perms])), Err(SpecError::Invalid(_))));
        let file = DeviceSpec {
            container_path: "/dev/x".into(),
            host_path: "/etc/hostname".into(),
            permissions: "r".into(),
        };
        assert!(matches!(
            devices(&spec_with(vec![file])),
            Err(SpecError::Invalid(_)) | Err(SpecError::NotFound(_))
        ));
    }

    #[test]
    fn privileged_gets_host_devices_and_allow_all() {
        let c = ContainerSpec {
            security: SecuritySpec {
                privileged: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let d = devices(&c).expect("devices");
        assert!(d.nodes.iter().any(|n| n.path() == Path::new("/dev/null")));
        assert!(!d
            .nodes
            .iter()
            .any(|n| n.path().starts_with("/dev/pts") || n.path() == Path::new("/dev/console")));
        assert_eq!(d.rules.len(), 2);
        assert!(d.rules[1].allow() && d.rules[1].typ().is_none() && d.rules[1].major().is_none());
    }
}
