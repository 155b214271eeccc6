//! OCI runtime-spec generation for a CRI `CreateContainer` request.
//!
//! [`generate`] turns Berth's [`ContainerSpec`] plus the image's run defaults and the pod sandbox's
//! context into the `config.json` handed to runc. The rules follow what kubelet and critest expect
//! from a CRI runtime (and what containerd's CRI plugin does): the process (command, env, working
//! directory, user, capabilities, rlimits) is assembled here, the namespaces joined are the
//! sandbox's, and the specialised pieces live in the sibling modules:
//! `mounts`, `security`, `resources` and `user`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder,
};

use super::model::{ContainerSpec, SandboxContext};
use crate::sandbox::NsMode;

pub(crate) use super::spec_input::Host;
pub use super::spec_input::{ImageDefaults, SpecError, SpecInput, DEFAULT_NOFILE};
use super::{mounts, resources, security, user};

/// `PATH` given to a process whose image and request set none (the value containerd and Docker use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the OCI runtime spec of container `input.id`.
pub fn generate(input: &SpecInput) -> Result<Spec, SpecError> {
    generate_on(input, &Host::detect())
}

pub(crate) fn generate_on(input: &SpecInput, host: &Host) -> Result<Spec, SpecError> {
    let mut host = *host;
    if let Some(last) = input.runtime_last_cap {
        host.cap_last_cap = host.cap_last_cap.min(last);
    }
    let host = &host;
    let c = input.container;
    let sec = &c.security;
    // containerd: "no privileged container allowed in sandbox" unless the pod is privileged.
    if sec.privileged && !input.sandbox.privileged {
        return Err(SpecError::Invalid(
            "security.privileged: a privileged container needs a privileged sandbox".into(),
        ));
    }

    let args = process_args(c, input.image)?;
    let env = process_env(c, input.image, &input.sandbox.hostname)?;
    let cwd = working_dir(c, input.image)?;
    let user = user::resolve(input.rootfs, sec, input.image.user.as_deref())?;
    let caps = security::capabilities(sec, host, user.uid())?;
    let seccomp = security::seccomp(sec, &caps)?;
    let rlimit = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(host.nofile())
        .hard(host.nofile())
        .build()
        .map_err(|e| SpecError::build("rlimits", e))?;
    let process = ProcessBuilder::default()
        .terminal(c.tty)
        .args(args)
        .env(env)
        .cwd(cwd)
        .user(user)
        .capabilities(caps.to_oci())
        .rlimits(vec![rlimit])
        .no_new_privileges(sec.no_new_privs)
        .oom_score_adj(resources::oom_score_adj(
            c.resources.oom_score_adj,
            input.min_oom_score_adj,
        ))
        .build()
        .map_err(|e| SpecError::build("process", e))?;

    let plan = mounts::build(input)?;
    let devices = resources::devices(c)?;
    let mut linux_resources = resources::linux_resources(&c.resources, host.cgroup_v2, host.controllers)?;
    linux_resources.set_devices(Some(devices.rules));

    let namespaces = namespaces(input, host)?;
    // runc refuses `hostname` without a UTS namespace of its own; containers always join the
    // sandbox's (or the host's), so this only applies if that ever changes.
    let own_uts = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Uts && n.path().is_none());
    let (masked, readonly) = security::masked_and_readonly_paths(sec, input.sandbox.userns.is_some());

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(linux_resources)
        .cgroups_path(PathBuf::from(input.cgroups_path))
        .devices(devices.nodes)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .sysctl(sysctls(input.sandbox))
        .build()
        .map_err(|e| SpecError::build("linux", e))?;
    if let Some(userns) = &input.sandbox.userns {
        linux.set_uid_mappings(Some(vec![id_mapping(&userns.map.uids)?]));
        linux.set_gid_mappings(Some(vec![id_mapping(&userns.map.gids)?]));
    }
    linux.set_seccomp(seccomp);
    linux.set_rootfs_propagation(plan.rootfs_propagation);

    let root = RootBuilder::default()
        .path(input.rootfs)
        .readonly(sec.readonly_rootfs)
        .build()
        .map_err(|e| SpecError::build("root", e))?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(root)
        .mounts(plan.mounts)
        .process(process)
        .linux(linux)
        .annotations(annotations(input))
        .build()
        .map_err(|e| SpecError::build("spec", e))?;
    spec.set_hostname(
        own_uts
            .then(|| input.sandbox.hostname.clone())
            .filter(|h| !h.is_empty()),
    );
    Ok(spec)
}

/// Stop signal: request's, else image's, else SIGTERM; as a number.
///
/// Names are accepted with or without the `SIG` prefix, in any case, as `RTMIN+n` / `RTMAX-n`,
/// or as a plain number (the forms Docker and containerd accept in an image's `StopSignal`).
pub fn stop_signal(container: &ContainerSpec, image: &ImageDefaults) -> Result<i32, SpecError> {
    if !container.stop_signal.is_empty() {
        return parse_signal(&container.stop_signal)
            .ok_or_else(|| SpecError::Invalid(format!("stop_signal: unknown signal {:?}", container.stop_signal)));
    }
    match image.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_signal(s).ok_or_else(|| SpecError::Invalid(format!("image StopSignal: unknown signal {s:?}"))),
        None => Ok(15),
    }
}

/// Linux signal numbers (x86_64 and aarch64 share them); real-time signals start at 34 as glibc
/// reserves 32 and 33.
const SIGNALS: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
];
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=SIGRTMAX).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if name == "SYS" {
        return Some(31);
    }
    if let Some(&(_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Some(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off = if rest.is_empty() { 0 } else { rest.parse::<i32>().ok()? };
        let n = base + sign * off;
        (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(SIGRTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(SIGRTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    None
}

/// CRI `command` replaces the image Entrypoint and `args` replace its Cmd; when a command is
/// given without args the image Cmd is dropped (kubelet / Kubernetes `command` semantics).
pub(crate) fn process_args(c: &ContainerSpec, image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
    let entrypoint = if c.command.is_empty() {
        &image.entrypoint
    } else {
        &c.command
    };
    let cmd: &[String] = if !c.args.is_empty() {
        &c.args
    } else if !c.command.is_empty() {
        &[]
    } else {
        &image.cmd
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    if args.is_empty() {
        return Err(SpecError::Invalid("no command specified".into()));
    }
    Ok(args)
}

/// Image `Env` first, then the CRI envs (a key set again replaces the earlier value in place);
/// `HOSTNAME` is the sandbox's and `PATH` a default unless either sets them (containerd).
pub(crate) fn process_env(c: &ContainerSpec, image: &ImageDefaults, hostname: &str) -> Result<Vec<String>, SpecError> {
    fn key(entry: &str) -> &str {
        entry.split_once('=').map_or(entry, |(k, _)| k)
    }
    let mut env: Vec<String> = Vec::with_capacity(image.env.len() + c.envs.len() + 2);
    let mut set = |entry: String| match env.iter_mut().find(|e| key(e) == key(&entry)) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    };
    for e in image.env.iter().filter(|e| !key(e).is_empty()) {
        set(e.clone());
    }
    for (k, v) in &c.envs {
        if k.is_empty() || k.contains('=') {
            return Err(SpecError::Invalid(format!("envs: invalid variable name {k:?}")));
        }
        set(format!("{k}={v}"));
    }
    if !env.iter().any(|e| key(e) == "HOSTNAME") && !hostname.is_empty() {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if !env.iter().any(|e| key(e) == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    Ok(env)
}

/// CRI `working_dir`, else the image's `WorkingDir`, else `/`.
/// A directory under `/proc` is refused: `/proc/self/fd/N` would be a descriptor the runtime
/// holds open, possibly a host directory (CVE-2024-21626).
pub(crate) fn working_dir(c: &ContainerSpec, image: &ImageDefaults) -> Result<PathBuf, SpecError> {
    let cwd = if !c.working_dir.is_empty() {
        if !c.working_dir.starts_with('/') {
            return Err(SpecError::Invalid(format!(
                "working_dir: {:?} is not absolute",
                c.working_dir
            )));
        }
        PathBuf::from(&c.working_dir)
    } else {
        match image.working_dir.as_str() {
            "" => PathBuf::from("/"),
            // Docker resolves a relative WORKDIR against "/".
            d if !d.starts_with('/') => Path::new("/").join(d),
            d => PathBuf::from(d),
        }
    };
    if Path::new(&super::mounts::clean(&cwd.to_string_lossy())).starts_with("/proc") {
        return Err(SpecError::Invalid(format!(
            "working directory {} is under /proc",
            cwd.display()
        )));
    }
    Ok(cwd)
}

fn id_mapping(m: &crate::sandbox::IdMapping) -> Result<oci_spec::runtime::LinuxIdMapping, SpecError> {
    oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(m.container_id)
        .host_id(m.host_id)
        .size(m.length)
        .build()
        .map_err(|e| SpecError::build("id mapping", e))
}

fn ns(typ: LinuxNamespaceType, path: Option<PathBuf>) -> Result<LinuxNamespace, SpecError> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    let b = match path {
        Some(p) => b.path(p),
        None => b,
    };
    b.build().map_err(|e| SpecError::build("namespace", e))
}

/// Namespaces per CRI `NamespaceOption`: a new mount namespace; the sandbox's network namespace
/// (host networking: none); the infra process's IPC and UTS namespaces unless the pod uses the
/// host's; PID per the container's mode (POD joins the infra's when the pod shares one, CONTAINER
/// gets its own, NODE the host's, TARGET is unsupported); a cgroup namespace on cgroup v2; the
/// pod's own user namespace when it has one.
pub(crate) fn namespaces(input: &SpecInput, host: &Host) -> Result<Vec<LinuxNamespace>, SpecError> {
    let sb = input.sandbox;
    let infra_ns = |kind: &str| -> Result<Option<PathBuf>, SpecError> {
        if sb.infra_pid == 0 {
            return Err(SpecError::Invalid(format!(
                "sandbox {:?}: no infra process to join the {kind} namespace of",
                sb.sandbox_id
            )));
        }
        Ok(Some(PathBuf::from(format!("/proc/{}/ns/{kind}", sb.infra_pid))))
    };
    let mut out = vec![ns(LinuxNamespaceType::Mount, None)?];
    if let Some(userns) = &sb.userns {
        out.push(ns(LinuxNamespaceType::User, Some(userns.pin.clone()))?);
    }
    if let Some(netns) = &sb.netns {
        out.push(ns(LinuxNamespaceType::Network, Some(netns.clone()))?);
    }
    if !sb.host_ipc {
        out.push(ns(LinuxNamespaceType::Ipc, infra_ns("ipc")?)?);
    }
    if !sb.host_network {
        out.push(ns(LinuxNamespaceType::Uts, infra_ns("uts")?)?);
    }
    match input.container.security.pid_mode {
        NsMode::Pod if sb.pid_mode == NsMode::Pod => out.push(ns(LinuxNamespaceType::Pid, infra_ns("pid")?)?),
        NsMode::Pod | NsMode::Container => out.push(ns(LinuxNamespaceType::Pid, None)?),
        NsMode::Node => {}
        NsMode::Target => {
            return Err(SpecError::Invalid(format!(
                "security.pid_mode: TARGET (container {:?}) is not supported",
                input.container.security.target_id
            )))
        }
    }
    if host.cgroup_v2 {
        out.push(ns(LinuxNamespaceType::Cgroup, None)?);
    }
    Ok(out)
}

/// IPC sysctls kubelet accepts as namespaced (besides the `fs.mqueue.` prefix).
const IPC_SYSCTLS: [&str; 7] = [
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
];

/// The pod's sysctls that live in a namespace the container shares with the pod: `net.*` unless
/// the pod uses host networking, the IPC ones unless it uses host IPC. Others are dropped
/// (kubelet rejects pods asking for node-level sysctls).
pub(crate) fn sysctls(sb: &SandboxContext) -> HashMap<String, String> {
    sb.sysctls
        .iter()
        .filter(|(k, _)| {
            let net = k.starts_with("net.");
            let ipc = IPC_SYSCTLS.contains(&k.as_str()) || k.as_str() == "kernel.sem" || k.starts_with("fs.mqueue.");
            let keep = (net && !sb.host_network) || (ipc && !sb.host_ipc);
            if !keep {
                tracing::debug!(sysctl = %k, "dropping sysctl not namespaced for this container");
            }
            keep
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The request's annotations plus the `io.kubernetes.cri.*` ones containerd sets (used by NRI
/// plugins and hooks to recognise containers).
fn annotations(input: &SpecInput) -> HashMap<String, String> {
    let mut a: HashMap<String, String> = input
        .container
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    a.insert("io.kubernetes.cri.container-type".into(), "container".into());
    a.insert("io.kubernetes.cri.container-name".into(), input.container.name.clone());
    a.insert("io.kubernetes.cri.sandbox-id".into(), input.sandbox.sandbox_id.clone());
    a.insert("io.kubernetes.cri.image-name".into(), input.container.image.clone());
    a
}

#[cfg(test)]
mod tests {
    use super::super::model::{Profile, ProfileKind, SecuritySpec};
    use super::*;

    const V1: Host = Host {
        cgroup_v2: false,
        controllers: crate::container::spec_input::Controllers::ALL,
        cap_last_cap: 40,
        nofile_hard: None,
        current_caps: None,
    };

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageDefaults {
        ImageDefaults {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            ..Default::default()
        }
    }

    fn container(command: &[&str], args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            command: strings(command),
            args: strings(args),
            ..Default::default()
        }
    }

    #[test]
    fn command_merge() {
        let img = image(&["/entry"], &["cmd-arg"]);
        let cases: [(&[&str], &[&str], &[&str]); 4] = [
            (&[], &[], &["/entry", "cmd-arg"]),
            (&["/bin/sh"], &[], &["/bin/sh"]),
            (&[], &["x", "y"], &["/entry", "x", "y"]),
            (&["/bin/sh"], &["-c", "true"], &["/bin/sh", "-c", "true"]),
        ];
        for (cmd, args, want) in cases {
            assert_eq!(
                process_args(&container(cmd, args), &img).expect("args"),
                strings(want),
                "{cmd:?} {args:?}"
            );
        }
        assert_eq!(
            process_args(&container(&[], &[]), &image(&[], &["only-cmd"])).expect("args"),
            ["only-cmd"]
        );
        assert_eq!(
            process_args(&container(&[], &["a"]), &image(&[], &["ignored"])).expect("args"),
            ["a"]
        );
        let err = process_args(&container(&[], &[]), &image(&[], &[])).expect_err("empty");
        assert!(matches!(err, SpecError::Invalid(m) if m == "no command specified"));
    }

    #[test]
    fn env_merge() {
        let img = ImageDefaults {
            env: strings(&["A=1", "PATH=/img", "B=2", "EMPTY="]),
            ..Default::default()
        };
        let mut c = ContainerSpec {
            envs: vec![("B".into(), "override".into()), ("C".into(), "x=y".into())],
            ..Default::default()
        };
        let env = process_env(&c, &img, "pod-host").expect("env");
        assert_eq!(
            env,
            strings(&["A=1", "PATH=/img", "B=override", "EMPTY=", "C=x=y", "HOSTNAME=pod-host"])
        );
        c.envs.push(("HOSTNAME".into(), "mine".into()));
        let env = process_env(&c, &ImageDefaults::default(), "pod-host").expect("env");
        assert!(env.contains(&"HOSTNAME=mine".to_owned()) && !env.contains(&"HOSTNAME=pod-host".to_owned()));
        assert!(env.contains(&format!("PATH={DEFAULT_PATH}")));
        c.envs.push((String::new(), "v".into()));
        assert!(matches!(process_env(&c, &img, "h"), Err(SpecError::Invalid(_))));
    }

    #[test]
    fn working_dir_precedence() {
        let mut c = ContainerSpec::default();
        let mut img = ImageDefaults::default();
        assert_eq!(working_dir(&c, &img).expect("cwd"), Path::new("/"));
        img.working_dir = "/srv".into();
        assert_eq!(working_dir(&c, &img).expect("cwd"), Path::new("/srv"));
        for bad in ["/proc/self/fd/7", "/x/../proc/1/cwd", "proc/self/cwd"] {
            img.working_dir = bad.into();
            assert!(matches!(working_dir(&c, &img), Err(SpecError::Invalid(_))), "{bad}");
        }
        img.working_dir = "/srv".into();
        c.working_dir = "/work".into();
        assert_eq!(working_dir(&c, &img).expect("cwd"), Path::new("/work"));
        c.working_dir = "rel".into();
        assert!(matches!(working_dir(&c, &img), Err(SpecError::Invalid(m)) if m.contains("working_dir")));
    }

    #[test]
    fn stop_signals() {
        let mut c = ContainerSpec::default();
        let mut img = ImageDefaults::default();
        assert_eq!(stop_signal(&c, &img).expect("sig"), 15);
        img.stop_signal = Some("SIGQUIT".into());
        assert_eq!(stop_signal(&c, &img).expect("sig"), 3);
        c.stop_signal = "usr1".into();
        assert_eq!(stop_signal(&c, &img).expect("sig"), 10);
        for (name, n) in [
            ("9", 9),
            ("SIGRTMIN+3", 37),
            ("RTMAX", 64),
            ("RTMAX-1", 63),
            ("SIGWINCH", 28),
            ("SIGSYS", 31),
        ] {
            c.stop_signal = name.into();
            assert_eq!(stop_signal(&c, &img).expect(name), n, "{name}");
        }
        for bad in ["SIGFOO", "0", "65", "RTMIN+40"] {
            c.stop_signal = bad.into();
            assert!(
                matches!(stop_signal(&c, &img), Err(SpecError::Invalid(m)) if m.contains("stop_signal")),
                "{bad}"
            );
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        container: ContainerSpec,
        image: ImageDefaults,
        sandbox: SandboxContext,
        min_oom: i64,
        last_cap: Option<u32>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir_all(dir.path().join("rootfs/etc")).expect("mkdir");
            std::fs::write(dir.path().join("rootfs/etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
            let sandbox = SandboxContext {
                sandbox_id: "sb1".into(),
                infra_pid: 4242,
                netns: Some(PathBuf::from("/var/run/netns/cni-1")),
                hostname: "pod-host".into(),
                ..Default::default()
            };
            let container = ContainerSpec {
                name: "app".into(),
                command: strings(&["/bin/app"]),
                ..Default::default()
            };
            Self {
                dir,
                container,
                image: ImageDefaults::default(),
                sandbox,
                min_oom: 0,
                last_cap: None,
            }
        }

        fn generate(&self, host: &Host) -> Result<Spec, SpecError> {
            let rootfs = self.dir.path().join("rootfs");
            let volumes = self.dir.path().join("volumes");
            generate_on(
                &SpecInput {
                    id: "c1",
                    container: &self.container,
                    image: &self.image,
                    sandbox: &self.sandbox,
                    rootfs: &rootfs,
                    cgroups_path: "/kubepods/pod1/c1",
                    volumes_dir: &volumes,
                    min_oom_score_adj: self.min_oom,
                    runtime_last_cap: self.last_cap,
                },
                host,
            )
        }
    }

    fn ns_of(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        let linux = spec.linux().clone().expect("linux");
        linux
            .namespaces()
            .clone()
            .expect("ns")
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect()
    }

    #[test]
    fn generated_spec_shape() {
        let mut f = Fixture::new();
        f.container.resources.oom_score_adj = -998;
        f.container.tty = true;
        let spec = f.generate(&V1).expect("spec");
        let p = spec.process().clone().expect("process");
        assert_eq!(p.args().clone().expect("args"), ["/bin/app"]);
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.oom_score_adj(), Some(0), "clamped to the runtime's own score");
        assert_eq!(p.user().uid(), 0);
        let rl = p.rlimits().clone().expect("rlimits");
        assert_eq!(
            (rl[0].typ(), rl[0].soft(), rl[0].hard()),
            (PosixRlimitType::RlimitNofile, 1_048_576, 1_048_576)
        );
        let root = spec.root().clone().expect("root");
        assert_eq!(root.path(), &f.dir.path().join("rootfs"));
        assert_eq!(root.readonly(), Some(false));
        assert_eq!(spec.hostname(), &None, "the sandbox's UTS namespace is joined");
        let linux = spec.linux().clone().expect("linux");
        assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/kubepods/pod1/c1")));
        assert_eq!(linux.masked_paths().as_ref().map(Vec::len), Some(11));
        assert!(linux.seccomp().is_none(), "unset profile is Unconfined");
        assert_eq!(
            ns_of(&spec),
            vec![
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Network, Some(PathBuf::from("/var/run/netns/cni-1"))),
                (LinuxNamespaceType::Ipc, Some(PathBuf::from("/proc/4242/ns/ipc"))),
                (LinuxNamespaceType::Uts, Some(PathBuf::from("/proc/4242/ns/uts"))),
                (LinuxNamespaceType::Pid, Some(PathBuf::from("/proc/4242/ns/pid"))),
            ]
        );
        let ann = spec.annotations().clone().expect("annotations");
        assert_eq!(ann["io.kubernetes.cri.sandbox-id"], "sb1");
        // serialises
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(json["process"]["oomScoreAdj"], 0);
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], false);
    }

    #[test]
    fn nofile_limited_by_runtime_hard_limit() {
        let f = Fixture::new();
        let host = Host {
            nofile_hard: Some(20_000),
            ..V1
        };
        let spec = f.generate(&host).expect("spec");
        let rl = spec
            .process()
            .as_ref()
            .and_then(|p| p.rlimits().clone())
            .expect("rlimits");
        assert_eq!((rl[0].soft(), rl[0].hard()), (20_000, 20_000));
        assert_eq!(
            Host {
                nofile_hard: Some(u64::MAX),
                ..V1
            }
            .nofile(),
            DEFAULT_NOFILE
        );
        assert!(Host::detect().nofile() <= DEFAULT_NOFILE);
    }

    #[test]
    fn oom_score_adj_allowed_when_permitted() {
        let mut f = Fixture::new();
        f.container.resources.oom_score_adj = -998;
        f.min_oom = -1000;
        let spec = f.generate(&V1).expect("spec");
        assert_eq!(spec.process().as_ref().and_then(|p| p.oom_score_adj()), Some(-998));
    }

    #[test]
    fn namespace_modes() {
        let mut f = Fixture::new();
        f.sandbox.host_network = true;
        f.sandbox.netns = None;
        f.sandbox.host_ipc = true;
        f.container.security.pid_mode = NsMode::Container;
        let host = Host {
            cgroup_v2: true,
            controllers: crate::container::spec_input::Controllers::ALL,
            cap_last_cap: 40,
            nofile_hard: None,
            current_caps: None,
        };
        assert_eq!(
            ns_of(&f.generate(&host).expect("spec")),
            vec![
                (LinuxNamespaceType::Mount, None),
                (LinuxNamespaceType::Pid, None),
                (LinuxNamespaceType::Cgroup, None)
            ]
        );
        f.container.security.pid_mode = NsMode::Node;
        assert_eq!(
            ns_of(&f.generate(&V1).expect("spec")),
            vec![(LinuxNamespaceType::Mount, None)]
        );
        // POD in a pod that does not share its PID namespace: a namespace of its own
        f.container.security.pid_mode = NsMode::Pod;
        f.sandbox.pid_mode = NsMode::Container;
        assert!(ns_of(&f.generate(&V1).expect("spec")).contains(&(LinuxNamespaceType::Pid, None)));
        f.container.security.pid_mode = NsMode::Target;
        assert!(matches!(f.generate(&V1), Err(SpecError::Invalid(m)) if m.contains("pid_mode")));
        // joining needs an infra process
        f.container.security.pid_mode = NsMode::Container;
        f.sandbox.host_ipc = false;
        f.sandbox.infra_pid = 0;
        assert!(matches!(f.generate(&V1), Err(SpecError::Invalid(_))));
    }

    #[test]
    fn sysctls_only_namespaced_ones() {
        let mut sb = SandboxContext::default();
        for k in [
            "net.ipv4.ip_forward",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.sem",
            "vm.swappiness",
        ] {
            sb.sysctls.insert(k.into(), "1".into());
        }
        let mut keys: Vec<String> = sysctls(&sb).into_keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "fs.mqueue.msg_max",
                "kernel.sem",
                "kernel.shmmax",
                "net.ipv4.ip_forward"
            ]
        );
        sb.host_network = true;
        assert!(!sysctls(&sb).contains_key("net.ipv4.ip_forward"));
        sb.host_ipc = true;
        assert!(sysctls(&sb).is_empty());
    }

    #[test]
    fn unified_on_v1_is_invalid() {
        let mut f = Fixture::new();
        f.container.resources.unified.insert("memory.high".into(), "max".into());
        assert!(matches!(f.generate(&V1), Err(SpecError::Invalid(m)) if m.contains("memory.high")));
        let v2 = Host {
            cgroup_v2: true,
            controllers: crate::container::spec_input::Controllers::ALL,
            cap_last_cap: 40,
            nofile_hard: None,
            current_caps: None,
        };
        assert!(f.generate(&v2).is_ok());
    }

    #[test]
    fn privileged_needs_privileged_sandbox() {
        let mut f = Fixture::new();
        f.container.security.privileged = true;
        assert!(matches!(f.generate(&V1), Err(SpecError::Invalid(m)) if m.contains("privileged")));
        f.sandbox.privileged = true;
        let spec = f.generate(&V1).expect("spec");
        let linux = spec.linux().clone().expect("linux");
        assert_eq!(linux.masked_paths().as_ref().map(Vec::len), Some(0));
        assert!(linux.devices().as_ref().is_some_and(|d| !d.is_empty()));
        let bounding = |spec: &Spec| {
            let caps = spec
                .process()
                .clone()
                .and_then(|p| p.capabilities().clone())
                .expect("caps");
            caps.bounding().clone().unwrap_or_default().len()
        };
        assert_eq!(bounding(&spec), 41, "every capability the kernel knows (V1: 0..=40)");
        // A runtime that knows fewer (runsc: up to CAP_AUDIT_READ) gets only those.
        f.last_cap = Some(37);
        assert_eq!(bounding(&f.generate(&V1).expect("spec")), 38);
    }

    #[test]
    fn non_root_user_and_runtime_default_seccomp() {
        let mut f = Fixture::new();
        f.container.security = SecuritySpec {
            run_as_user: Some(1000),
            readonly_rootfs: true,
            no_new_privs: true,
            seccomp: Some(Profile {
                kind: ProfileKind::RuntimeDefault,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        };
        let spec = f.generate(&V1).expect("spec");
        let p = spec.process().clone().expect("process");
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 0));
        let caps = p.capabilities().clone().expect("caps");
        assert!(caps.effective().as_ref().is_some_and(|s| s.is_empty()));
        assert!(caps.bounding().as_ref().is_some_and(|s| s.len() == 14));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(spec.root().as_ref().and_then(|r| r.readonly()), Some(true));
        assert!(spec.linux().as_ref().and_then(|l| l.seccomp().clone()).is_some());
    }
}
