//! Process security: capabilities (CRI `capabilities` add/drop/add_ambient, `privileged`),
//! masked and read-only paths (CRI `masked_paths` / `readonly_paths`), and seccomp (CRI
//! `seccomp` profile: RuntimeDefault, Unconfined, Localhost). AppArmor is not available on the
//! hosts Berth targets and is ignored.

use std::collections::BTreeSet;

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxCapabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use super::model::{ProfileKind, SecuritySpec};

use super::spec_input::{Host, SpecError, LAST_KNOWN_CAP};

/// Linux capabilities by number (`capability.h`), 0..=40.
pub(crate) const CAPS: [(&str, Capability); 41] = [
    ("CHOWN", Capability::Chown),
    ("DAC_OVERRIDE", Capability::DacOverride),
    ("DAC_READ_SEARCH", Capability::DacReadSearch),
    ("FOWNER", Capability::Fowner),
    ("FSETID", Capability::Fsetid),
    ("KILL", Capability::Kill),
    ("SETGID", Capability::Setgid),
    ("SETUID", Capability::Setuid),
    ("SETPCAP", Capability::Setpcap),
    ("LINUX_IMMUTABLE", Capability::LinuxImmutable),
    ("NET_BIND_SERVICE", Capability::NetBindService),
    ("NET_BROADCAST", Capability::NetBroadcast),
    ("NET_ADMIN", Capability::NetAdmin),
    ("NET_RAW", Capability::NetRaw),
    ("IPC_LOCK", Capability::IpcLock),
    ("IPC_OWNER", Capability::IpcOwner),
    ("SYS_MODULE", Capability::SysModule),
    ("SYS_RAWIO", Capability::SysRawio),
    ("SYS_CHROOT", Capability::SysChroot),
    ("SYS_PTRACE", Capability::SysPtrace),
    ("SYS_PACCT", Capability::SysPacct),
    ("SYS_ADMIN", Capability::SysAdmin),
    ("SYS_BOOT", Capability::SysBoot),
    ("SYS_NICE", Capability::SysNice),
    ("SYS_RESOURCE", Capability::SysResource),
    ("SYS_TIME", Capability::SysTime),
    ("SYS_TTY_CONFIG", Capability::SysTtyConfig),
    ("MKNOD", Capability::Mknod),
    ("LEASE", Capability::Lease),
    ("AUDIT_WRITE", Capability::AuditWrite),
    ("AUDIT_CONTROL", Capability::AuditControl),
    ("SETFCAP", Capability::Setfcap),
    ("MAC_OVERRIDE", Capability::MacOverride),
    ("MAC_ADMIN", Capability::MacAdmin),
    ("SYSLOG", Capability::Syslog),
    ("WAKE_ALARM", Capability::WakeAlarm),
    ("BLOCK_SUSPEND", Capability::BlockSuspend),
    ("AUDIT_READ", Capability::AuditRead),
    ("PERFMON", Capability::Perfmon),
    ("BPF", Capability::Bpf),
    ("CHECKPOINT_RESTORE", Capability::CheckpointRestore),
];

/// containerd's (and Docker's) default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Paths masked by default (runc/containerd's list plus powercap, as containerd 2).
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only by default.
pub const DEFAULT_READONLY_PATHS: [&str; 5] =
    ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The capability sets of the process, as capability numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub bounding: BTreeSet<usize>,
    pub effective: BTreeSet<usize>,
    pub permitted: BTreeSet<usize>,
    pub inheritable: BTreeSet<usize>,
    pub ambient: BTreeSet<usize>,
}

impl CapSets {
    /// Whether `name` (e.g. `SYS_ADMIN`) is in the bounding set.
    pub(crate) fn has(&self, name: &str) -> bool {
        CAPS.iter()
            .position(|(n, _)| *n == name)
            .is_some_and(|i| self.bounding.contains(&i))
    }

    pub(crate) fn to_oci(&self) -> LinuxCapabilities {
        let set = |s: &BTreeSet<usize>| -> Capabilities { s.iter().map(|&i| CAPS[i].1).collect() };
        // Every set is overwritten, so the default's contents do not matter.
        let mut caps = LinuxCapabilities::default();
        caps.set_bounding(Some(set(&self.bounding)));
        caps.set_effective(Some(set(&self.effective)));
        caps.set_permitted(Some(set(&self.permitted)));
        caps.set_inheritable(Some(set(&self.inheritable)));
        caps.set_ambient(Some(set(&self.ambient)));
        caps
    }
}

/// Parses a capability name: with or without `CAP_`, any case.
fn cap_index(name: &str, field: &str) -> Result<usize, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPS.iter()
        .position(|(n, _)| *n == bare)
        .ok_or_else(|| SpecError::Invalid(format!("security.{field}: unknown capability {name:?}")))
}

fn is_all(name: &str) -> bool {
    let upper = name.trim().to_ascii_uppercase();
    upper == "ALL" || upper == "CAP_ALL"
}

/// Capability sets (containerd's `TweakCapabilities`):
/// - base = "all" if privileged or `ALL` is added, else [`DEFAULT_CAPS`]; "all" is every
///   capability the kernel knows that the runtime itself holds (containerd's
///   `WithAllCurrentCapabilities`: runc cannot grant what it lacks);
/// - `ALL` dropped empties the base, otherwise the dropped ones are removed from it;
/// - the added ones are then added (an explicit add wins over a drop);
/// - ambient capabilities (`add_ambient_capabilities`) are also put in every other set, as
///   the kernel only keeps ambient capabilities that are permitted and inheritable;
/// - a non-root user gets empty effective and permitted sets (ambient ones excepted), like
///   containerd and kubelet expect; inheritable holds only the ambient ones.
pub(crate) fn capabilities(sec: &SecuritySpec, host: &Host, uid: u32) -> Result<CapSets, SpecError> {
    let kernel_all: BTreeSet<usize> = (0..=host.cap_last_cap.min(LAST_KNOWN_CAP) as usize)
        .filter(|&i| host.current_caps.is_none_or(|mask| mask & (1u64 << i) != 0))
        .collect();
    let add_all = sec.add_capabilities.iter().any(|c| is_all(c));
    let drop_all = sec.drop_capabilities.iter().any(|c| is_all(c));
    let mut base: BTreeSet<usize> = if sec.privileged || add_all {
        kernel_all.clone()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|n| cap_index(n, "default"))
            .collect::<Result<_, _>>()?
    };
    let drops = sec
        .drop_capabilities
        .iter()
        .filter(|c| !is_all(c))
        .map(|c| cap_index(c, "drop_capabilities"))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if drop_all && !sec.privileged {
        base.clear();
    } else if !sec.privileged {
        base.retain(|c| !drops.contains(c));
    }
    for c in sec.add_capabilities.iter().filter(|c| !is_all(c)) {
        base.insert(cap_index(c, "add_capabilities")?);
    }
    let ambient = sec
        .add_ambient_capabilities
        .iter()
        .map(|c| cap_index(c, "add_ambient_capabilities"))
        .collect::<Result<BTreeSet<_>, _>>()?;
    base.extend(&ambient);
    let (effective, permitted) = if uid == 0 {
        (base.clone(), base.clone())
    } else {
        (ambient.clone(), ambient.clone())
    };
    Ok(CapSets {
        bounding: base,
        effective,
        permitted,
        inheritable: ambient.clone(),
        ambient,
    })
}

/// `linux.maskedPaths` / `linux.readonlyPaths`: none when privileged, else the CRI lists when
/// given, else the defaults. kubelet always sends the lists for its `Default` proc mount and
/// empty ones for `Unmasked`, which Kubernetes allows only in a pod with its own user
/// namespace; on the wire empty is also "not given", so in such a pod (`own_userns`) no
/// lists means none, and elsewhere (crictl and other clients) the defaults.
pub(crate) fn masked_and_readonly_paths(sec: &SecuritySpec, own_userns: bool) -> (Vec<String>, Vec<String>) {
    if sec.privileged || (own_userns && sec.masked_paths.is_none() && sec.readonly_paths.is_none()) {
        return (Vec::new(), Vec::new());
    }
    let or_default = |v: &Option<Vec<String>>, d: &[&str]| match v {
        Some(v) => v.clone(),
        None => d.iter().map(|s| (*s).to_owned()).collect(),
    };
    (
        or_default(&sec.masked_paths, &DEFAULT_MASKED_PATHS),
        or_default(&sec.readonly_paths, &DEFAULT_READONLY_PATHS),
    )
}

/// `linux.seccomp` per the CRI profile: none for privileged containers, `Unconfined`, or an
/// unset profile (kubelet sends none when the pod does not ask, and Kubernetes' default is
/// Unconfined); `Localhost` loads the OCI JSON profile at `localhost_ref` (`NotFound` if
/// missing); `RuntimeDefault` is [`default_profile`] for the final capability set.
pub(crate) fn seccomp(sec: &SecuritySpec, caps: &CapSets) -> Result<Option<LinuxSeccomp>, SpecError> {
    if sec.privileged {
        return Ok(None);
    }
    let Some(profile) = &sec.seccomp else { return Ok(None) };
    match profile.kind {
        ProfileKind::Unconfined => Ok(None),
        ProfileKind::RuntimeDefault => default_profile(caps).map(Some),
        ProfileKind::Localhost => {
            let path = profile
                .localhost_ref
                .strip_prefix("localhost/")
                .unwrap_or(&profile.localhost_ref);
            if path.is_empty() {
                return Err(SpecError::Invalid(
                    "security.seccomp: Localhost profile without a path".into(),
                ));
            }
            let text = match std::fs::read(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(SpecError::NotFound(format!(
                        "security.seccomp: profile {path:?} does not exist"
                    )))
                }
                Err(e) => return Err(SpecError::io(path, e)),
            };
            serde_json::from_slice::<LinuxSeccomp>(&text)
                .map(Some)
                .map_err(|e| SpecError::Invalid(format!("security.seccomp: profile {path:?}: {e}")))
        }
    }
}

/// Syscalls every container may make: the ordinary needs of programs (files, memory, signals,
/// sockets, timers, threads, IPC, scheduling, ids). Names unknown on the running architecture
/// are skipped by runc/libseccomp.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "alarm", "bind", "brk", "cachestat", "capget", "capset", "chdir", "chmod",
    "chown", "chown32", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
    "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown",
    "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
    "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
    "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat",
    "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
    "munlock", "munlockall", "munmap", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause",
    "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
    "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "removexattrat",
    "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
    "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
    "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid",
    "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32",
    "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
    "signalfd4", "sigpending", "sigprocmask", "sigreturn", "sigsuspend", "socket", "socketcall", "socketpair",
    "splice", "stat", "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
    // architecture-specific helpers
    "arch_prctl", "modify_ldt", "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
    "cacheflush", "set_tls", "riscv_flush_icache", "riscv_hwprobe",
];

/// Syscalls allowed only when the container has the capability that the kernel checks for them
/// anyway (Docker's grouping); without it they fail with EPERM before reaching the kernel.
#[rustfmt::skip]
const CAP_GATED: &[(&str, &[&str])] = &[
    ("SYS_ADMIN", &[
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
        "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open", "pivot_root",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
    ]),
    ("SYS_BOOT", &["reboot"]),
    ("SYS_CHROOT", &["chroot"]),
    ("SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("SYS_PACCT", &["acct"]),
    ("SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
    ("SYS_RAWIO", &["iopl", "ioperm"]),
    ("SYS_TIME", &[
        "settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64",
    ]),
    ("SYS_TTY_CONFIG", &["vhangup"]),
    ("SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("SYSLOG", &["syslog"]),
    ("BPF", &["bpf"]),
    ("PERFMON", &["perf_event_open"]),
    ("DAC_READ_SEARCH", &["open_by_handle_at"]),
];

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`: the namespace flags `clone` may not carry without `CAP_SYS_ADMIN`.
pub(crate) const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// `personality(2)` values that are safe: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26,
/// and the 0xffffffff query.
pub(crate) const SAFE_PERSONALITIES: [u64; 5] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

const ENOSYS: u32 = 38;

fn rule(names: Vec<String>, action: LinuxSeccompAction) -> Result<LinuxSyscall, SpecError> {
    LinuxSyscallBuilder::default()
        .names(names)
        .action(action)
        .build()
        .map_err(|e| SpecError::build("seccomp syscall", e))
}

fn arg_rule(
    name: &str,
    index: usize,
    value: u64,
    value_two: u64,
    op: LinuxSeccompOperator,
) -> Result<LinuxSyscall, SpecError> {
    let arg = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .value_two(value_two)
        .op(op)
        .build()
        .map_err(|e| SpecError::build("seccomp arg", e))?;
    LinuxSyscallBuilder::default()
        .names(vec![name.to_owned()])
        .action(LinuxSeccompAction::ScmpActAllow)
        .args(vec![arg])
        .build()
        .map_err(|e| SpecError::build("seccomp syscall", e))
}

/// The architectures a filter covers: the native one plus its compat ABIs.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

/// Berth's RuntimeDefault profile: deny (EPERM) by default, allow [`ALLOWED`], allow each
/// [`CAP_GATED`] group whose capability is in the bounding set, and:
/// - `clone` without `CAP_SYS_ADMIN` only when no `CLONE_NEW*` flag is set (masked-eq filter on
///   the flags argument, argument 0 on x86_64/aarch64, 1 on s390x);
/// - `clone3` without `CAP_SYS_ADMIN` fails with ENOSYS (its flags cannot be inspected), which
///   makes glibc fall back to `clone`;
/// - `personality` only with [`SAFE_PERSONALITIES`].
///
/// Everything else is refused: kexec_*, swapon/swapoff, keyctl/add_key/request_key,
/// userfaultfd, nfsservctl, vm86*, uselib, _sysctl, io_uring_*, ...
pub(crate) fn default_profile(caps: &CapSets) -> Result<LinuxSeccomp, SpecError> {
    let mut allowed: BTreeSet<&str> = ALLOWED.iter().copied().collect();
    for (cap, names) in CAP_GATED {
        if caps.has(cap) {
            allowed.extend(names.iter().copied());
        }
    }
    let sys_admin = caps.has("SYS_ADMIN");
    let mut syscalls = vec![rule(
        allowed.iter().map(|s| (*s).to_owned()).collect(),
        LinuxSeccompAction::ScmpActAllow,
    )?];
    for value in SAFE_PERSONALITIES {
        syscalls.push(arg_rule("personality", 0, value, 0, LinuxSeccompOperator::ScmpCmpEq)?);
    }
    if !sys_admin {
        let flags_arg = if cfg!(target_arch = "s390x") { 1 } else { 0 };
        syscalls.push(arg_rule(
            "clone",
            flags_arg,
            CLONE_NS_FLAGS,
            0,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        )?);
        let mut clone3 = rule(vec!["clone3".into()], LinuxSeccompAction::ScmpActErrno)?;
        clone3.set_errno_ret(Some(ENOSYS));
        syscalls.push(clone3);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(1u32)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()
        .map_err(|e| SpecError::build("seccomp", e))
}

#[cfg(test)]
mod tests {
    use super::super::model::Profile;
    use super::*;

    const HOST: Host = Host {
        cgroup_v2: false,
        controllers: super::super::spec_input::Controllers::ALL,
        cap_last_cap: 40,
        nofile_hard: None,
        current_caps: None,
    };

    fn names(s: &BTreeSet<usize>) -> Vec<&'static str> {
        s.iter().map(|&i| CAPS[i].0).collect()
    }

    fn sorted(v: &[&'static str]) -> Vec<&'static str> {
        let mut v = v.to_vec();
        v.sort_by_key(|n| CAPS.iter().position(|(c, _)| c == n));
        v
    }

    #[test]
    fn cap_table_matches_kernel_numbers() {
        assert_eq!(CAPS[21].0, "SYS_ADMIN");
        assert_eq!(CAPS[24].0, "SYS_RESOURCE");
        assert_eq!(CAPS[40].0, "CHECKPOINT_RESTORE");
        // names agree with oci-spec's own
        for (name, cap) in CAPS {
            assert_eq!(cap.to_string(), name);
        }
    }

    #[test]
    fn default_caps_for_root() {
        let c = capabilities(&SecuritySpec::default(), &HOST, 0).expect("caps");
        assert_eq!(names(&c.bounding), sorted(&DEFAULT_CAPS));
        assert_eq!(c.effective, c.bounding);
        assert_eq!(c.permitted, c.bounding);
        assert!(c.inheritable.is_empty() && c.ambient.is_empty());
    }

    #[test]
    fn add_and_drop_with_any_spelling() {
        let sec = SecuritySpec {
            add_capabilities: vec!["cap_sys_admin".into(), "NET_ADMIN".into(), "Cap_Kill".into()],
            drop_capabilities: vec!["CAP_CHOWN".into(), "mknod".into(), "kill".into()],
            ..Default::default()
        };
        let c = capabilities(&sec, &HOST, 0).expect("caps");
        let n = names(&c.bounding);
        assert!(n.contains(&"SYS_ADMIN") && n.contains(&"NET_ADMIN"));
        assert!(!n.contains(&"CHOWN") && !n.contains(&"MKNOD"));
        assert!(n.contains(&"KILL"), "an explicit add wins over a drop");
    }

    #[test]
    fn all_in_add_and_drop() {
        let host = Host {
            cap_last_cap: 37,
            ..HOST
        };
        let sec = SecuritySpec {
            add_capabilities: vec!["ALL".into()],
            ..Default::default()
        };
        let c = capabilities(&sec, &host, 0).expect("caps");
        assert_eq!(c.bounding.len(), 38, "every capability the kernel knows");
        // ... that the runtime holds (here: all but SYS_RESOURCE)
        let host = Host {
            current_caps: Some(0x1ff_feff_ffff),
            ..HOST
        };
        let c = capabilities(&sec, &host, 0).expect("caps");
        assert_eq!(c.bounding.len(), 40);
        assert!(!c.has("SYS_RESOURCE") && c.has("SYS_ADMIN"));
        let sec = SecuritySpec {
            add_capabilities: vec!["all".into()],
            drop_capabilities: vec!["NET_RAW".into()],
            ..Default::default()
        };
        let c = capabilities(&sec, &HOST, 0).expect("caps");
        assert_eq!(c.bounding.len(), 40);
        assert!(!c.has("NET_RAW"));
        let sec = SecuritySpec {
            add_capabilities: vec!["SETUID".into()],
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        };
        assert_eq!(
            names(&capabilities(&sec, &HOST, 0).expect("caps").bounding),
            vec!["SETUID"]
        );
        let sec = SecuritySpec {
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        };
        assert!(capabilities(&sec, &HOST, 0).expect("caps").bounding.is_empty());
    }

    #[test]
    fn unknown_capability_is_invalid() {
        for sec in [
            SecuritySpec {
                add_capabilities: vec!["CAP_FLY".into()],
                ..Default::default()
            },
            SecuritySpec {
                drop_capabilities: vec!["FLY".into()],
                ..Default::default()
            },
            SecuritySpec {
                add_ambient_capabilities: vec!["".into()],
                ..Default::default()
            },
        ] {
            let err = capabilities(&sec, &HOST, 0).expect_err("unknown");
            assert!(
                matches!(&err, SpecError::Invalid(m) if m.contains("capabilit")),
                "{err}"
            );
        }
    }

    #[test]
    fn non_root_loses_effective_and_permitted_but_keeps_ambient() {
        let c = capabilities(&SecuritySpec::default(), &HOST, 1000).expect("caps");
        assert!(c.effective.is_empty() && c.permitted.is_empty());
        assert_eq!(names(&c.bounding), sorted(&DEFAULT_CAPS));
        let sec = SecuritySpec {
            add_ambient_capabilities: vec!["NET_ADMIN".into()],
            ..Default::default()
        };
        let c = capabilities(&sec, &HOST, 1000).expect("caps");
        for set in [&c.effective, &c.permitted, &c.inheritable, &c.ambient] {
            assert_eq!(names(set), vec!["NET_ADMIN"]);
        }
        assert!(c.has("NET_ADMIN"));
    }

    #[test]
    fn privileged_gets_everything() {
        let sec = SecuritySpec {
            privileged: true,
            drop_capabilities: vec!["ALL".into()],
            masked_paths: Some(vec!["/x".into()]),
            seccomp: Some(Profile {
                kind: ProfileKind::RuntimeDefault,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        };
        let c = capabilities(&sec, &HOST, 0).expect("caps");
        assert_eq!(c.bounding.len(), 41);
        assert_eq!(c.effective, c.bounding);
        assert_eq!(masked_and_readonly_paths(&sec, false), (vec![], vec![]));
        assert_eq!(seccomp(&sec, &c).expect("seccomp"), None);
    }

    #[test]
    fn masked_and_readonly_defaults_and_overrides() {
        assert_eq!(
            masked_and_readonly_paths(&SecuritySpec::default(), true),
            (vec![], vec![])
        );
        let (m, r) = masked_and_readonly_paths(&SecuritySpec::default(), false);
        assert_eq!(m.len(), 11);
        assert!(m.contains(&"/sys/devices/virtual/powercap".to_owned()));
        assert_eq!(r, DEFAULT_READONLY_PATHS.map(String::from).to_vec());
        let sec = SecuritySpec {
            masked_paths: Some(vec![]),
            readonly_paths: Some(vec!["/a".into()]),
            ..Default::default()
        };
        assert_eq!(masked_and_readonly_paths(&sec, false), (vec![], vec!["/a".to_owned()]));
        assert_eq!(masked_and_readonly_paths(&sec, true), (vec![], vec!["/a".to_owned()]));
    }

    fn rules_for<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls().as_ref().map_or(vec![], |s| {
            s.iter().filter(|r| r.names().iter().any(|n| n == name)).collect()
        })
    }

    fn profile(add: &[&str]) -> LinuxSeccomp {
        let sec = SecuritySpec {
            add_capabilities: add.iter().map(|s| (*s).to_owned()).collect(),
            seccomp: Some(Profile {
                kind: ProfileKind::RuntimeDefault,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        };
        let caps = capabilities(&sec, &HOST, 0).expect("caps");
        seccomp(&sec, &caps).expect("seccomp").expect("a profile")
    }

    #[test]
    fn runtime_default_shape() {
        let p = profile(&[]);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        let arches = p.architectures().clone().expect("arches");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(arches, vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]);
        }
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "futex",
            "mmap",
            "socket",
            "exit_group",
            "chroot",
        ] {
            assert!(rules_for(&p, name).iter().any(|r| r.args().is_none()), "{name} allowed");
        }
        for name in [
            "sethostname",
            "setdomainname",
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "kexec_load",
            "init_module",
            "reboot",
            "swapon",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "ptrace",
            "process_vm_readv",
            "settimeofday",
            "clock_settime",
            "adjtimex",
            "open_by_handle_at",
            "userfaultfd",
            "acct",
            "quotactl",
            "vm86",
        ] {
            assert!(rules_for(&p, name).is_empty(), "{name} must be blocked");
        }
        // clone only without namespace flags; clone3 -> ENOSYS
        let clone = rules_for(&p, "clone");
        assert_eq!(clone.len(), 1);
        let arg = clone[0].args().clone().expect("args")[0];
        assert_eq!(
            (arg.value(), arg.value_two(), arg.op()),
            (CLONE_NS_FLAGS, Some(0), LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
        let clone3 = rules_for(&p, "clone3");
        assert_eq!(
            (clone3[0].action(), clone3[0].errno_ret()),
            (LinuxSeccompAction::ScmpActErrno, Some(38))
        );
        assert_eq!(rules_for(&p, "personality").len(), SAFE_PERSONALITIES.len());
        // serialises to what runc reads
        let json = serde_json::to_value(&p).expect("json");
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
    }

    #[test]
    fn runtime_default_follows_capabilities() {
        let p = profile(&["SYS_ADMIN", "SYS_TIME", "SYS_PTRACE"]);
        for name in [
            "sethostname",
            "setdomainname",
            "mount",
            "unshare",
            "setns",
            "settimeofday",
            "adjtimex",
            "ptrace",
        ] {
            assert!(rules_for(&p, name).iter().any(|r| r.args().is_none()), "{name} allowed");
        }
        let clone = rules_for(&p, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_none(), "clone unrestricted with SYS_ADMIN");
        assert_eq!(rules_for(&p, "clone3")[0].action(), LinuxSeccompAction::ScmpActAllow);
        // dropping a default capability removes its syscalls
        let sec = SecuritySpec {
            drop_capabilities: vec!["SYS_CHROOT".into()],
            seccomp: Some(Profile {
                kind: ProfileKind::RuntimeDefault,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        };
        let p = seccomp(&sec, &capabilities(&sec, &HOST, 0).expect("caps"))
            .expect("ok")
            .expect("profile");
        assert!(rules_for(&p, "chroot").is_empty());
    }

    #[test]
    fn unconfined_and_unset_mean_no_filter() {
        let caps = CapSets::default();
        assert_eq!(seccomp(&SecuritySpec::default(), &caps).expect("ok"), None);
        let sec = SecuritySpec {
            seccomp: Some(Profile {
                kind: ProfileKind::Unconfined,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(seccomp(&sec, &caps).expect("ok"), None);
    }

    #[test]
    fn localhost_profile_is_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("profile.json");
        std::fs::write(
            &path,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        )
        .expect("write");
        let profile = |r: String| SecuritySpec {
            seccomp: Some(Profile {
                kind: ProfileKind::Localhost,
                localhost_ref: r,
            }),
            ..Default::default()
        };
        let caps = CapSets::default();
        let p = seccomp(&profile(path.display().to_string()), &caps)
            .expect("ok")
            .expect("profile");
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(rules_for(&p, "chmod")[0].action(), LinuxSeccompAction::ScmpActErrno);
        // the kubelet "localhost/" prefix is accepted
        assert!(seccomp(&profile(format!("localhost/{}", path.display())), &caps).is_ok());
        let missing = dir.path().join("missing.json").display().to_string();
        assert!(matches!(seccomp(&profile(missing), &caps), Err(SpecError::NotFound(m)) if m.contains("missing.json")));
        std::fs::write(&path, "not json").expect("write");
        assert!(matches!(
            seccomp(&profile(path.display().to_string()), &caps),
            Err(SpecError::Invalid(_))
        ));
        assert!(matches!(
            seccomp(&profile(String::new()), &caps),
            Err(SpecError::Invalid(_))
        ));
    }
}
