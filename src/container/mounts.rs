//! Container mounts: the standard Linux filesystems, the pod's /dev/shm and /etc files, the CRI
//! `mounts` (bind mounts with kubelet's propagation modes) and the image's VOLUMEs, ordered so
//! that parents are mounted before their children (containerd's CRI plugin rules).

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path};

use oci_spec::runtime::{Mount, MountBuilder};

use super::model::{MountSpec, Propagation};

use super::spec_input::{SpecError, SpecInput};

/// The mounts of a container and the rootfs propagation they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPlan {
    pub mounts: Vec<Mount>,
    /// `linux.rootfsPropagation`: `rshared` with a Bidirectional mount, `rslave` with a
    /// HostToContainer one (runc needs the rootfs at least that shared), else unset.
    pub rootfs_propagation: Option<String>,
}

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, SpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(|e| SpecError::build("mount", e))
}

fn bind(dest: &str, source: &Path, extra: &[&str]) -> Result<Mount, SpecError> {
    let mut options = vec!["rbind"];
    options.extend_from_slice(extra);
    mount(dest, "bind", source, &options)
}

/// Lexically cleans an absolute container path (`//a/./b/../c/` -> `/a/c`).
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

fn depth(dest: &Path) -> usize {
    dest.components().filter(|c| matches!(c, Component::Normal(_))).count()
}

/// The mounts every container gets, before CRI overrides (containerd's defaults):
/// /proc, /dev (tmpfs), /dev/pts, /dev/mqueue, /sys (read-only unless privileged),
/// /sys/fs/cgroup (read-only unless privileged), /dev/shm (the pod's; the host's with host IPC;
/// else a private 64m tmpfs) and the pod's /etc/hosts, /etc/resolv.conf, /etc/hostname
/// (read-only with a read-only rootfs; skipped if the sandbox has none).
fn default_mounts(input: &SpecInput) -> Result<Vec<Mount>, SpecError> {
    let privileged = input.container.security.privileged;
    let ro_or_rw = if privileged { "rw" } else { "ro" };
    let mut m = vec![
        mount("/proc", "proc", Path::new("proc"), &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", ro_or_rw],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            Path::new("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", ro_or_rw],
        )?,
    ];
    let sb = input.sandbox;
    match (&sb.shm, sb.host_ipc) {
        (Some(shm), _) => m.push(bind("/dev/shm", shm, &["rprivate", "rw"])?),
        (None, true) => m.push(bind("/dev/shm", Path::new("/dev/shm"), &["rprivate", "rw"])?),
        (None, false) => m.push(mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?),
    }
    let etc_mode = if input.container.security.readonly_rootfs {
        "ro"
    } else {
        "rw"
    };
    for (dest, src) in [
        ("/etc/hosts", &sb.hosts),
        ("/etc/resolv.conf", &sb.resolv_conf),
        ("/etc/hostname", &sb.hostname_file),
    ] {
        if src.as_os_str().is_empty() || !src.exists() {
            tracing::debug!(dest, src = %src.display(), "sandbox file missing, not mounted");
            continue;
        }
        m.push(bind(dest, src, &["rprivate", etc_mode])?);
    }
    Ok(m)
}

/// One CRI mount as a bind mount: `rbind`, the propagation (Private -> `rprivate`,
/// HostToContainer -> `rslave`, Bidirectional -> `rshared`), `ro`/`rw`, and `rro` for
/// `recursive_read_only` (which needs `readonly` and Private propagation, per the CRI). The host
/// path is created as a directory if missing (kubelet expects it) and resolved if it is a
/// symlink (critest "host path is a symlink"). An image volume arrives here with its
/// mounted view as the host path, and is also `nosuid` and `nodev`.
fn cri_mount(index: usize, m: &MountSpec) -> Result<(String, Mount), SpecError> {
    if !m.container_path.starts_with('/') {
        return Err(SpecError::Invalid(format!(
            "mounts[{index}].container_path: {:?} is not absolute",
            m.container_path
        )));
    }
    if !m.host_path.starts_with('/') {
        return Err(SpecError::Invalid(format!(
            "mounts[{index}].host_path: {:?} is not absolute",
            m.host_path
        )));
    }
    if m.recursive_read_only && (!m.readonly || m.propagation != Propagation::Private) {
        return Err(SpecError::Invalid(format!(
            "mounts[{index}].recursive_read_only: needs readonly and private propagation ({})",
            m.container_path
        )));
    }
    let host = Path::new(&m.host_path);
    if fs::symlink_metadata(host).is_err() {
        fs::create_dir_all(host).map_err(|e| SpecError::io(host, e))?;
    }
    let source = fs::canonicalize(host).map_err(|e| SpecError::io(host, e))?;
    let dest = clean(&m.container_path);
    let mut options = vec![match m.propagation {
        Propagation::Private => "rprivate",
        Propagation::HostToContainer => "rslave",
        Propagation::Bidirectional => "rshared",
    }];
    options.push(if m.readonly { "ro" } else { "rw" });
    if m.recursive_read_only {
        options.push("rro");
    }
    if m.image.is_some() {
        // An image's files are programs to run, not devices or privileges to gain.
        options.extend(["nosuid", "nodev"]);
    }
    Ok((dest.clone(), bind(&dest, &source, &options)?))
}

/// Makes an image VOLUME's container path into a single directory name that cannot collide
/// with another volume's (`/var/lib/x` -> `var%2Flib%2Fx`).
pub(crate) fn volume_dir_name(dest: &str) -> String {
    let mut out = String::new();
    for b in dest.trim_start_matches('/').bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// All mounts of the container, in mount order.
///
/// CRI mounts replace default ones with the same destination, and a CRI mount of `/dev` drops
/// every default mount beneath it; image VOLUMEs that no other mount covers get a bind of a
/// fresh directory under `volumes_dir`. The result is sorted (stably) by the number of path
/// components of the destination so that parents come before children.
pub(crate) fn build(input: &SpecInput) -> Result<MountPlan, SpecError> {
    let mut cri = Vec::with_capacity(input.container.mounts.len());
    let mut propagation: Option<&str> = None;
    for (i, m) in input.container.mounts.iter().enumerate() {
        cri.push(cri_mount(i, m)?);
        match m.propagation {
            Propagation::Bidirectional => propagation = Some("rshared"),
            Propagation::HostToContainer if propagation.is_none() => propagation = Some("rslave"),
            _ => {}
        }
    }
    let cri_dests: HashSet<String> = cri.iter().map(|(d, _)| d.clone()).collect();
    let dev_mounted = cri_dests.contains("/dev");

    let mut mounts: Vec<Mount> = default_mounts(input)?
        .into_iter()
        .filter(|m| {
            let d = m.destination().to_string_lossy();
            let overridden = cri_dests.contains(d.as_ref()) || (dev_mounted && d.starts_with("/dev/"));
            !overridden
        })
        .collect();
    mounts.extend(cri.into_iter().map(|(_, m)| m));

    let mut taken: HashSet<String> = mounts
        .iter()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect();
    for v in &input.image.volumes {
        if v.trim().is_empty() {
            continue;
        }
        let dest = clean(v);
        if dest == "/" {
            return Err(SpecError::Invalid("image volume at \"/\" is not supported".into()));
        }
        if !taken.insert(dest.clone()) {
            continue;
        }
        let dir = input.volumes_dir.join(volume_dir_name(&dest));
        fs::create_dir_all(&dir).map_err(|e| SpecError::io(&dir, e))?;
        mounts.push(bind(&dest, &dir, &["rprivate", "rw"])?);
    }

    mounts.sort_by_key(|m| depth(m.destination()));
    Ok(MountPlan {
        mounts,
        rootfs_propagation: propagation.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::{ContainerSpec, SandboxContext};
    use super::super::spec_input::ImageDefaults;
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    struct Fixture {
        dir: tempfile::TempDir,
        container: ContainerSpec,
        image: ImageDefaults,
        sandbox: SandboxContext,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let sb = dir.path().join("sandbox");
            fs::create_dir_all(&sb).expect("mkdir");
            for f in ["hosts", "resolv.conf", "hostname"] {
                fs::write(sb.join(f), "x\n").expect("write");
            }
            fs::create_dir_all(sb.join("shm")).expect("mkdir");
            let sandbox = SandboxContext {
                hosts: sb.join("hosts"),
                resolv_conf: sb.join("resolv.conf"),
                hostname_file: sb.join("hostname"),
                shm: Some(sb.join("shm")),
                ..Default::default()
            };
            Self {
                dir,
                container: ContainerSpec::default(),
                image: ImageDefaults::default(),
                sandbox,
            }
        }

        fn plan(&self) -> Result<MountPlan, SpecError> {
            let rootfs = self.dir.path().join("rootfs");
            let volumes = self.dir.path().join("volumes");
            build(&SpecInput {
                id: "c1",
                container: &self.container,
                image: &self.image,
                sandbox: &self.sandbox,
                rootfs: &rootfs,
                cgroups_path: "/berth/c1",
                volumes_dir: &volumes,
                min_oom_score_adj: 0,
                runtime_last_cap: None,
            })
        }

        fn host(&self, p: &str) -> String {
            self.dir.path().join(p).display().to_string()
        }
    }

    fn destinations(mounts: &[Mount]) -> Vec<PathBuf> {
        mounts.iter().map(|m| m.destination().clone()).collect()
    }

    fn find<'a>(plan: &'a MountPlan, dest: &str) -> &'a Mount {
        plan.mounts
            .iter()
            .find(|m| m.destination() == Path::new(dest))
            .expect(dest)
    }

    fn opts(m: &Mount) -> Vec<String> {
        m.options().clone().unwrap_or_default()
    }

    #[test]
    fn defaults_in_order() {
        let f = Fixture::new();
        let plan = f.plan().expect("plan");
        let d: Vec<String> = destinations(&plan.mounts)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            d,
            [
                "/proc",
                "/dev",
                "/sys",
                "/dev/pts",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/sys/fs/cgroup"
            ]
        );
        assert!(opts(find(&plan, "/sys")).contains(&"ro".to_owned()));
        assert!(opts(find(&plan, "/sys/fs/cgroup")).contains(&"ro".to_owned()));
        assert_eq!(find(&plan, "/dev/shm").typ().as_deref(), Some("bind"));
        assert_eq!(find(&plan, "/dev").typ().as_deref(), Some("tmpfs"));
        assert!(opts(find(&plan, "/dev/pts")).contains(&"newinstance".to_owned()));
        assert!(opts(find(&plan, "/etc/hosts")).contains(&"rw".to_owned()));
        assert_eq!(plan.rootfs_propagation, None);
    }

    #[test]
    fn privileged_and_readonly_rootfs_and_shm_variants() {
        let mut f = Fixture::new();
        f.container.security.privileged = true;
        f.container.security.readonly_rootfs = true;
        f.sandbox.shm = None;
        let plan = f.plan().expect("plan");
        assert!(opts(find(&plan, "/sys")).contains(&"rw".to_owned()));
        assert!(opts(find(&plan, "/sys/fs/cgroup")).contains(&"rw".to_owned()));
        assert!(opts(find(&plan, "/etc/resolv.conf")).contains(&"ro".to_owned()));
        assert_eq!(find(&plan, "/dev/shm").typ().as_deref(), Some("tmpfs"));
        f.sandbox.host_ipc = true;
        let plan = f.plan().expect("plan");
        assert_eq!(find(&plan, "/dev/shm").source().as_deref(), Some(Path::new("/dev/shm")));
        f.sandbox.hosts = PathBuf::new();
        f.sandbox.hostname_file = f.dir.path().join("nope");
        let plan = f.plan().expect("plan");
        assert!(!plan.mounts.iter().any(|m| m.destination() == Path::new("/etc/hosts")));
        assert!(!plan
            .mounts
            .iter()
            .any(|m| m.destination() == Path::new("/etc/hostname")));
    }

    #[test]
    fn cri_mounts_options_sorting_and_override() {
        let mut f = Fixture::new();
        let data = f.host("data");
        let etc = f.host("myhosts");
        fs::write(&etc, "h").expect("write");
        f.container.mounts = vec![
            MountSpec {
                container_path: "/data/sub/".into(),
                host_path: f.host("sub"),
                ..Default::default()
            },
            MountSpec {
                container_path: "/data".into(),
                host_path: data.clone(),
                readonly: true,
                ..Default::default()
            },
            MountSpec {
                container_path: "/etc/hosts".into(),
                host_path: etc.clone(),
                propagation: Propagation::HostToContainer,
                ..Default::default()
            },
        ];
        let plan = f.plan().expect("plan");
        let d = destinations(&plan.mounts);
        let pos = |p: &str| d.iter().position(|x| x == Path::new(p)).expect(p);
        assert!(pos("/data") < pos("/data/sub"), "parents first");
        assert_eq!(
            d.iter().filter(|x| *x == Path::new("/etc/hosts")).count(),
            1,
            "CRI overrides default"
        );
        let hosts = find(&plan, "/etc/hosts");
        assert_eq!(hosts.source().as_deref(), Some(Path::new(&etc)));
        assert_eq!(opts(hosts), ["rbind", "rslave", "rw"]);
        assert_eq!(opts(find(&plan, "/data")), ["rbind", "rprivate", "ro"]);
        assert!(Path::new(&f.host("sub")).is_dir(), "missing host path created");
        assert_eq!(plan.rootfs_propagation.as_deref(), Some("rslave"));

        f.container.mounts[0].propagation = Propagation::Bidirectional;
        let plan = f.plan().expect("plan");
        assert_eq!(opts(find(&plan, "/data/sub")), ["rbind", "rshared", "rw"]);
        assert_eq!(plan.rootfs_propagation.as_deref(), Some("rshared"));
    }

    #[test]
    fn dev_mount_replaces_dev_children() {
        let mut f = Fixture::new();
        f.container.mounts = vec![MountSpec {
            container_path: "/dev".into(),
            host_path: "/dev".into(),
            ..Default::default()
        }];
        let plan = f.plan().expect("plan");
        let d = destinations(&plan.mounts);
        assert!(
            !d.iter().any(|p| p.starts_with("/dev") && p != Path::new("/dev")),
            "{d:?}"
        );
        assert_eq!(find(&plan, "/dev").typ().as_deref(), Some("bind"));
    }

    #[test]
    fn symlinked_host_path_is_resolved() {
        let mut f = Fixture::new();
        let target = f.host("target");
        fs::create_dir_all(&target).expect("mkdir");
        symlink(&target, f.host("link")).expect("symlink");
        f.container.mounts = vec![MountSpec {
            container_path: "/mnt".into(),
            host_path: f.host("link"),
            ..Default::default()
        }];
        let plan = f.plan().expect("plan");
        let src = find(&plan, "/mnt").source().clone().expect("source");
        assert_eq!(src, fs::canonicalize(&target).expect("canon"));
    }

    #[test]
    fn invalid_mounts() {
        let mut f = Fixture::new();
        f.container.mounts = vec![MountSpec {
            container_path: "rel".into(),
            host_path: f.host("x"),
            ..Default::default()
        }];
        assert!(matches!(f.plan(), Err(SpecError::Invalid(m)) if m.contains("mounts[0].container_path")));
        f.container.mounts = vec![MountSpec {
            container_path: "/x".into(),
            host_path: f.host("x"),
            recursive_read_only: true,
            ..Default::default()
        }];
        assert!(matches!(f.plan(), Err(SpecError::Invalid(m)) if m.contains("recursive_read_only")));
        f.container.mounts[0].readonly = true;
        assert!(opts(find(&f.plan().expect("plan"), "/x")).contains(&"rro".to_owned()));
    }

    #[test]
    fn image_volumes_get_fresh_dirs_unless_covered() {
        let mut f = Fixture::new();
        f.image.volumes = vec!["/var/lib/db".into(), "/cache/".into(), "/data".into(), "rel/vol".into()];
        f.container.mounts = vec![MountSpec {
            container_path: "/data".into(),
            host_path: f.host("d"),
            ..Default::default()
        }];
        let plan = f.plan().expect("plan");
        let vol = find(&plan, "/var/lib/db");
        let dir = f.dir.path().join("volumes").join("var%2Flib%2Fdb");
        assert_eq!(vol.source().as_deref(), Some(dir.as_path()));
        assert!(dir.is_dir());
        assert!(f.dir.path().join("volumes/cache").is_dir());
        assert!(f.dir.path().join("volumes/rel%2Fvol").is_dir());
        assert_eq!(
            find(&plan, "/data").source().as_deref(),
            Some(fs::canonicalize(f.host("d")).expect("c").as_path())
        );
        assert!(!f.dir.path().join("volumes/data").exists());
        assert_ne!(volume_dir_name("/a_b"), volume_dir_name("/a/b"));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("//a/./b/../c/"), "/a/c");
        assert_eq!(clean("/../.."), "/");
        assert_eq!(clean("rel"), "/rel");
    }
}
