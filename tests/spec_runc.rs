//! Runs containers from `generate()`'s specs with the host's runc (needs root, runc and a static
//! busybox; they fail without them): a non-root user gets no effective capabilities, and the
//! RuntimeDefault seccomp profile refuses `sethostname` unless CAP_SYS_ADMIN is added.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth::container::model::{
    ContainerSpec, DeviceSpec, MountSpec, Profile, ProfileKind, SandboxContext, SecuritySpec,
};
use berth::container::spec::{generate, ImageDefaults, SpecInput};
use berth::sandbox::NsMode;

const RUNC: &str = "runc";
const BUSYBOX: &str = "/bin/busybox";

fn usable() -> bool {
    let root = fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let runc = Command::new(RUNC)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // CI runs as root with runc and busybox-static installed (e2e/run.sh): never skip.
    assert!(
        root && runc && Path::new(BUSYBOX).exists(),
        "these tests need root, runc and {BUSYBOX}"
    );
    true
}

/// A bundle with a busybox rootfs; removes the container and all files when dropped.
struct Bundle {
    dir: tempfile::TempDir,
    id: String,
}

impl Bundle {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().expect("tempdir");
        let id = format!("berth-spec-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).expect("mkdir bin");
        fs::create_dir_all(rootfs.join("etc")).expect("mkdir etc");
        fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in ["sh", "echo", "cat", "id", "hostname", "grep", "touch", "ls"] {
            symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
        }
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
        fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
        let sb = dir.path().join("sandbox");
        fs::create_dir_all(&sb).expect("mkdir sandbox");
        fs::write(sb.join("hosts"), "127.0.0.1 localhost\n").expect("hosts");
        fs::write(sb.join("resolv.conf"), "nameserver 127.0.0.1\n").expect("resolv");
        fs::write(sb.join("hostname"), "testpod\n").expect("hostname");
        Self { dir, id }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn sandbox(&self) -> SandboxContext {
        let sb = self.dir.path().join("sandbox");
        SandboxContext {
            sandbox_id: "sandbox-test".into(),
            netns: None,
            host_network: true,
            host_ipc: true,
            pid_mode: NsMode::Container,
            hostname: "testpod".into(),
            hosts: sb.join("hosts"),
            resolv_conf: sb.join("resolv.conf"),
            hostname_file: sb.join("hostname"),
            ..Default::default()
        }
    }

    /// Writes config.json for `container` and runs it to completion.
    fn run(&self, container: &ContainerSpec, sandbox: &SandboxContext) -> Output {
        self.run_image(container, &ImageDefaults::default(), sandbox)
    }

    fn run_image(&self, container: &ContainerSpec, image: &ImageDefaults, sandbox: &SandboxContext) -> Output {
        let min_oom = fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let rootfs = self.rootfs();
        let volumes = self.dir.path().join("volumes");
        // A cgroup of its own at the top: a parent shared by the tests running at the same
        // time could be removed by one while runc creates another's child under it.
        let cgroups_path = format!("/{}", self.id);
        let spec = generate(&SpecInput {
            id: &self.id,
            container,
            image,
            sandbox,
            rootfs: &rootfs,
            cgroups_path: &cgroups_path,
            volumes_dir: &volumes,
            min_oom_score_adj: min_oom,
            runtime_last_cap: None,
        })
        .expect("generate");
        let config = serde_json::to_vec_pretty(&spec).expect("serialise");
        fs::write(self.dir.path().join("config.json"), config).expect("write config.json");
        Command::new("timeout")
            .arg("60")
            .arg(RUNC)
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(&self.id)
            .stdin(Stdio::null())
            .output()
            .expect("run runc")
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new(RUNC)
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .args(["delete", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Whatever runc left of this bundle's cgroup (delete normally removes it).
        if let Ok(controllers) = fs::read_dir("/sys/fs/cgroup") {
            for c in controllers.filter_map(Result::ok) {
                let _ = fs::remove_dir(c.path().join(&self.id));
            }
        }
    }
}

/// A process in UTS and IPC namespaces of its own, standing in for a pod's infra process, so that a
/// container allowed to set its hostname does not change the host's. Killed when dropped.
struct Infra(Child);

impl Infra {
    fn start() -> Self {
        let child = Command::new(BUSYBOX)
            .args(["unshare", "-u", "-i", BUSYBOX, "sleep", "120"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn infra");
        let infra = Self(child);
        let own = fs::read_link("/proc/self/ns/uts").expect("own uts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_link(format!("/proc/{}/ns/uts", infra.0.id())).ok().as_ref() == Some(&own) {
            assert!(Instant::now() < deadline, "infra never entered its UTS namespace");
            std::thread::sleep(Duration::from_millis(20));
        }
        infra
    }
}

impl Drop for Infra {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn non_root_user_has_no_effective_capabilities() {
    if !usable() {
        return;
    }
    let bundle = Bundle::new();
    let container = ContainerSpec {
        name: "caps".into(),
        command: sh("id; cat /proc/self/status | grep CapEff; grep '^Seccomp:' /proc/self/status; echo done"),
        security: SecuritySpec {
            run_as_user: Some(1000),
            pid_mode: NsMode::Container,
            ..Default::default()
        },
        ..Default::default()
    };
    let out = bundle.run(&container, &bundle.sandbox());
    eprintln!("{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("uid=1000"), "{}", text(&out));
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{}", text(&out));
    assert!(stdout.lines().any(|l| l == "done"), "{}", text(&out));
    assert!(
        !stdout.contains("Seccomp:\t2"),
        "no seccomp profile asked for: {}",
        text(&out)
    );
}

fn hostname_container(add: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: "hostname".into(),
        command: sh("grep '^Seccomp:' /proc/self/status; echo started; hostname foo && hostname"),
        security: SecuritySpec {
            add_capabilities: add.iter().map(|s| (*s).to_owned()).collect(),
            pid_mode: NsMode::Container,
            seccomp: Some(Profile {
                kind: ProfileKind::RuntimeDefault,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn runtime_default_seccomp_blocks_sethostname_without_sys_admin() {
    if !usable() {
        return;
    }
    let infra = Infra::start();
    let bundle = Bundle::new();
    let sandbox = SandboxContext {
        host_network: false,
        infra_pid: infra.0.id(),
        ..bundle.sandbox()
    };

    let out = bundle.run(&hostname_container(&[]), &sandbox);
    eprintln!("without SYS_ADMIN: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("started"), "the container must start: {}", text(&out));
    assert!(
        stdout.contains("Seccomp:\t2"),
        "a seccomp filter is loaded: {}",
        text(&out)
    );
    assert!(!out.status.success(), "sethostname must fail: {}", text(&out));
    assert!(!stdout.contains("foo"), "{}", text(&out));
    drop(bundle);

    let bundle = Bundle::new();
    let out = bundle.run(&hostname_container(&["SYS_ADMIN"]), &sandbox);
    eprintln!("with SYS_ADMIN: {}", text(&out));
    assert!(out.status.success(), "sethostname with SYS_ADMIN: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l == "foo"),
        "{}",
        text(&out)
    );
}

#[test]
fn mounts_devices_and_volumes_work_in_runc() {
    if !usable() {
        return;
    }
    let infra = Infra::start();
    let bundle = Bundle::new();
    let host_dir = bundle.dir.path().join("hostdata");
    fs::create_dir_all(&host_dir).expect("mkdir");
    fs::write(host_dir.join("file"), "from-host\n").expect("write");
    let link = bundle.dir.path().join("hostlink");
    symlink(&host_dir, &link).expect("symlink");
    let container = ContainerSpec {
        name: "mounts".into(),
        command: sh(
            "cat /data/file; touch /data/new && echo rw-data; touch /vol/x && echo rw-vol; \
             echo hi > /dev/mynull && echo dev-ok; cat /etc/hostname; grep ' /dev/shm ' /proc/mounts; echo done",
        ),
        mounts: vec![MountSpec {
            container_path: "/data".into(),
            host_path: link.display().to_string(),
            readonly: true,
            ..Default::default()
        }],
        devices: vec![DeviceSpec {
            container_path: "/dev/mynull".into(),
            host_path: "/dev/null".into(),
            permissions: "rwm".into(),
        }],
        security: SecuritySpec {
            pid_mode: NsMode::Container,
            ..Default::default()
        },
        ..Default::default()
    };
    let image = ImageDefaults {
        volumes: vec!["/vol".into()],
        ..Default::default()
    };
    let sandbox = SandboxContext {
        host_network: false,
        host_ipc: false,
        infra_pid: infra.0.id(),
        ..bundle.sandbox()
    };
    let out = bundle.run_image(&container, &image, &sandbox);
    eprintln!("{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    for want in ["from-host", "rw-vol", "dev-ok", "testpod", "done"] {
        assert!(stdout.lines().any(|l| l == want), "{want}: {}", text(&out));
    }
    assert!(
        !stdout.contains("rw-data"),
        "read-only bind mount was writable: {}",
        text(&out)
    );
    assert!(
        stdout.contains("/dev/shm tmpfs"),
        "the pod has no shm: a private tmpfs: {}",
        text(&out)
    );
    assert!(
        bundle.dir.path().join("volumes/vol/x").exists(),
        "volume lives under volumes_dir"
    );
}

#[test]
fn privileged_container_runs() {
    if !usable() {
        return;
    }
    let bundle = Bundle::new();
    let container = ContainerSpec {
        name: "priv".into(),
        command: sh("grep '^CapEff:' /proc/self/status; ls /dev/mem >/dev/null && echo has-mem; echo done"),
        security: SecuritySpec {
            privileged: true,
            pid_mode: NsMode::Container,
            ..Default::default()
        },
        ..Default::default()
    };
    let sandbox = SandboxContext {
        privileged: true,
        ..bundle.sandbox()
    };
    let out = bundle.run(&container, &sandbox);
    eprintln!("{}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == "done"), "{}", text(&out));
    if Path::new("/dev/mem").exists() {
        assert!(stdout.contains("has-mem"), "host devices are created: {}", text(&out));
    }
}
