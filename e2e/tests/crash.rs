//! Crashes: berthd killed with SIGKILL in the middle of a pull, a RunPodSandbox, a
//! CreateContainer, a RemoveContainer or a RemovePodSandbox; a shim killed under a running
//! container; a pull filling the disk. After each, berthd restarts into a consistent state:
//! nothing half-made is listed as usable, what is listed can be removed, in-flight work can
//! be retried, and once everything is removed nothing is left on the host: mounts, network
//! namespaces, veths, host-local addresses, iptables rules, cgroups, shims, infra processes.
//!
//! The windows are hit on purpose: wrapper scripts in front of the real CNI bridge plugin
//! and the real runc announce (by a marker file) that berthd is waiting on them and then
//! sleep, and the test kills berthd when the marker appears. The wrappers are one-shot: a
//! `slow-*` switch file arms them and they remove it.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_e2e::berthd::mounts_under;
use berth_e2e::cri::{v1 as cri, Cri};
use berth_e2e::image::{push_image, random_layer, Compression, ImageSpec};
use berth_e2e::pod::pod_config;
use berth_e2e::tmpfs::Tmpfs;
use berth_e2e::workload::{env_with_cni_bin, Env};
use berth_e2e::{Berthd, BerthdOpts, RegistryOpts, SlowProxy, TestRegistry};
use tonic::Code;

type Pod = (String, cri::PodSandboxConfig);

/// Wrapper scripts and their marker files, in a directory of their own.
struct Wrappers {
    dir: tempfile::TempDir,
}

impl Wrappers {
    fn new() -> Wrappers {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        // CNI: `bridge` runs the real plugin; an armed ADD then waits, an armed DEL waits first.
        let bridge = format!(
            "#!/bin/sh\n\
             D={d}\n\
             if [ \"$CNI_COMMAND\" = DEL ] && [ -e $D/slow-del ]; then rm -f $D/slow-del; touch $D/in-del; sleep 2; touch $D/out-del; fi\n\
             out=$(/usr/lib/cni/bridge); rc=$?\n\
             if [ \"$CNI_COMMAND\" = ADD ] && [ -e $D/slow-add ]; then rm -f $D/slow-add; touch $D/in-add; sleep 2; touch $D/out-add; fi\n\
             printf '%s' \"$out\"\n\
             exit $rc\n"
        );
        // OCI runtime: runc; an armed `create` waits after it, an armed `delete` before it.
        let runc = format!(
            "#!/bin/sh\n\
             D={d}\n\
             case \" $* \" in *' create '*) c=create;; *' delete '*) c=delete;; *) c=other;; esac\n\
             if [ $c = delete ] && [ -e $D/slow-delete ]; then rm -f $D/slow-delete; touch $D/in-delete; sleep 2; touch $D/out-delete; fi\n\
             runc \"$@\"; rc=$?\n\
             if [ $c = create ] && [ -e $D/slow-create ]; then s=$(cat $D/slow-create); rm -f $D/slow-create; touch $D/in-create; sleep ${{s:-2}}; touch $D/out-create; fi\n\
             exit $rc\n"
        );
        // Infra process: berth-pause; an armed one first waits before it starts (after
        // berthd spawned it, before it reports ready).
        let pause = berth_e2e::berthd::berthd_binary()
            .expect("berthd")
            .with_file_name("berth-pause");
        let infra = format!(
            "#!/bin/sh\n\
             D={d}\n\
             if [ -e $D/slow-infra ]; then rm -f $D/slow-infra; touch $D/in-infra; sleep 3; touch $D/out-infra; fi\n\
             exec {} \"$@\"\n",
            pause.display()
        );
        for (name, text) in [("bridge", bridge), ("slow-runc", runc), ("slow-pause", infra)] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write wrapper");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Wrappers { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Arms the one-shot wrapper `what` (add, del, create, delete, infra).
    fn arm(&self, what: &str) {
        for m in ["in", "out"] {
            let _ = std::fs::remove_file(self.path(&format!("{m}-{what}")));
        }
        std::fs::write(self.path(&format!("slow-{what}")), "").expect("arm");
    }

    /// Arms `what` to wait `secs` seconds instead of 2.
    fn arm_for(&self, what: &str, secs: u32) {
        self.arm(what);
        std::fs::write(self.path(&format!("slow-{what}")), secs.to_string()).expect("arm");
    }

    async fn wait_for(&self, marker: &str) {
        wait_until(&format!("marker {marker}"), Duration::from_secs(30), || {
            self.path(marker).exists()
        })
        .await;
    }
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A cgroup parent of the test's own, so its cgroups can be counted; rmdir'ed when dropped.
struct CgroupParent(String);

impl CgroupParent {
    fn new(tag: &str) -> CgroupParent {
        CgroupParent(format!("/berth-e2e-crash-{}-{tag}", std::process::id()))
    }

    /// Every cgroup directory under the parent, in every hierarchy.
    fn leaves(&self) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let dir = h.path().join(self.0.trim_start_matches('/'));
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    out.insert(e.path());
                }
            }
        }
        out
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        // A cgroup whose last process is still being reaped is busy for a moment.
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let dir = h.path().join(self.0.trim_start_matches('/'));
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// What the test's berthd could leak, each part scoped to this test.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    mounts: BTreeSet<PathBuf>,
    /// Entries of state/containers, state/sandboxes, state/netns and root/containers.
    dirs: BTreeSet<String>,
    /// Interfaces enslaved to the test's bridge.
    veths: usize,
    /// host-local's address files for the test's network.
    addresses: BTreeSet<String>,
    /// iptables rules naming the test's network or subnet.
    rules: usize,
    cgroups: BTreeSet<PathBuf>,
    /// Command lines of processes (other than berthd) naming the test's directory.
    processes: BTreeSet<String>,
    /// Containers known to the runtimes.
    runc: BTreeSet<String>,
}

/// Fails with what differs between two footprints, field by field.
fn assert_same(after: &Footprint, before: &Footprint, what: &str) {
    if after == before {
        return;
    }
    let a = format!("{after:#?}");
    let b = format!("{before:#?}");
    let al: BTreeSet<&str> = a.lines().collect();
    let bl: BTreeSet<&str> = b.lines().collect();
    let added: Vec<&&str> = al.difference(&bl).collect();
    let gone: Vec<&&str> = bl.difference(&al).collect();
    panic!("{what} left something behind:\n  now there: {added:#?}\n  no longer there: {gone:#?}");
}

fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd).args(args).output().expect("run");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn footprint(e: &Env, cg: &CgroupParent) -> Footprint {
    let b = &e.berthd;
    let mut dirs = BTreeSet::new();
    for (tag, d) in [
        ("c", b.state().join("containers")),
        ("s", b.state().join("sandboxes")),
        ("n", b.state().join("netns")),
        ("r", b.root().join("containers")),
    ] {
        dirs.extend(ls(&d).into_iter().map(|n| format!("{tag}:{n}")));
    }
    let net = e.net();
    let veths = sh("ip", &["-o", "link", "show", "master", &net.bridge]).lines().count();
    let addresses = ls(&Path::new("/var/lib/cni/networks").join(&net.name))
        .into_iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    let rules = sh("iptables-save", &[])
        .lines()
        .filter(|l| l.starts_with('-') && (l.contains(&net.name) || l.contains(&format!("{}.", net.subnet_prefix))))
        .count();
    let needle = b.dir().to_string_lossy().into_owned();
    let me = b.pid();
    let mut processes = BTreeSet::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if Some(pid) == me || pid == std::process::id() {
            continue;
        }
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(p.path().join("cmdline")).unwrap_or_default()).replace('\0', " ");
        if cmdline.contains(&needle) {
            processes.insert(cmdline);
        }
    }
    let mut runc = BTreeSet::new();
    for root in ls(&b.state().join("runtimes")) {
        let r = b.state().join("runtimes").join(&root);
        for id in sh("runc", &["--root", &r.display().to_string(), "list", "-q"]).lines() {
            runc.insert(format!("{root}:{id}"));
        }
    }
    Footprint {
        mounts: mounts_under(b.dir()).into_iter().collect(),
        dirs,
        veths,
        addresses,
        rules,
        cgroups: cg.leaves(),
        processes,
        runc,
    }
}

/// The cgroup parent comes first so that it is dropped last, once `Env` has removed the
/// pods in it (locals drop in reverse order).
async fn env(cg_tag: &str) -> (CgroupParent, Env, Wrappers) {
    let w = Wrappers::new();
    let toml = format!(
        "infra_binary = \"{}\"\n[runtime_handlers]\nslow = \"{}\"\n",
        w.path("slow-pause").display(),
        w.path("slow-runc").display()
    );
    let bins = format!("{}:/usr/lib/cni", w.dir.path().display());
    let e = env_with_cni_bin(None, Some(toml), &bins).await;
    (CgroupParent::new(cg_tag), e, w)
}

fn pod_cfg(e: &Env, cg: &CgroupParent, name: &str) -> cri::PodSandboxConfig {
    let mut config = pod_config(name);
    config.log_directory = e.logs.path().join(name).display().to_string();
    config.linux.as_mut().expect("linux").cgroup_parent = cg.0.clone();
    config
}

fn run_req(config: cri::PodSandboxConfig, handler: &str) -> cri::RunPodSandboxRequest {
    cri::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: handler.into(),
    }
}

async fn run_pod(e: &mut Env, cg: &CgroupParent, name: &str, handler: &str) -> Pod {
    let config = pod_cfg(e, cg, name);
    let id = e
        .cri
        .runtime
        .run_pod_sandbox(run_req(config.clone(), handler))
        .await
        .expect("run pod")
        .into_inner()
        .pod_sandbox_id;
    (id, config)
}

async fn restart(e: &mut Env) {
    e.berthd.restart().await.expect("restart");
    e.cri = Cri::connect(e.berthd.socket()).await.expect("reconnect");
}

async fn pods(e: &mut Env) -> Vec<cri::PodSandbox> {
    e.cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .expect("list pods")
        .into_inner()
        .items
}

async fn containers(e: &mut Env) -> Vec<cri::Container> {
    e.cri
        .runtime
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .expect("list containers")
        .into_inner()
        .containers
}

async fn remove_container(e: &mut Env, id: &str) {
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.into(),
            timeout: 1,
        })
        .await
        .expect("stop container");
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.into(),
        })
        .await
        .expect("remove container");
}

/// A pod with one running `sleep` container, started before the crash: it must live on.
async fn survivor(e: &mut Env, cg: &CgroupParent) -> (Pod, String) {
    let pod = run_pod(e, cg, "survivor", "").await;
    let c = e
        .create(&pod, e.container("sleeper", &["sleep", "1000"]))
        .await
        .expect("create");
    e.start(&c).await;
    (pod, c)
}

async fn assert_survivor(e: &mut Env, (pod, c): &(Pod, String)) {
    let p = pods(e)
        .await
        .into_iter()
        .find(|p| p.id == pod.0)
        .expect("survivor pod listed");
    assert_eq!(p.state, cri::PodSandboxState::SandboxReady as i32, "survivor pod ready");
    let st = e.status(c).await;
    assert_eq!(
        st.state,
        cri::ContainerState::ContainerRunning as i32,
        "survivor container: {st:?}"
    );
    let r = e.exec(c, &["true"], 5).await.expect("exec in the survivor");
    assert_eq!(r.exit_code, 0);
}

/// Everything listed besides the survivor must be real (a ready pod has its infra process,
/// netns and address; a running container answers an exec) or else harmless (not ready,
/// not running), and removable; removes it.
async fn remove_all_but(e: &mut Env, keep: &(Pod, String)) {
    for c in containers(e).await {
        if c.id == keep.1 {
            continue;
        }
        if c.state == cri::ContainerState::ContainerRunning as i32 {
            let r = e.exec(&c.id, &["true"], 5).await;
            assert!(r.is_ok_and(|r| r.exit_code == 0), "listed as running but not: {c:?}");
        }
        remove_container(e, &c.id).await;
    }
    for p in pods(e).await {
        if p.id == keep.0 .0 {
            continue;
        }
        if p.state == cri::PodSandboxState::SandboxReady as i32 {
            let (st, info) = berth_e2e::pod::status(&mut e.cri, &p.id).await.expect("status");
            let pid = info["infra_pid"].as_u64().unwrap_or(0);
            let netns = info["netns"].as_str().unwrap_or("/nonexistent");
            assert!(
                pid > 0 && Path::new(&format!("/proc/{pid}")).exists() && Path::new(netns).exists(),
                "listed as ready but not: {p:?} {info}"
            );
            assert!(
                st.network.is_some_and(|n| !n.ip.is_empty()),
                "ready without an address: {p:?}"
            );
        }
        berth_e2e::pod::stop_remove(&mut e.cri, &p.id).await;
    }
}

#[tokio::test]
async fn kill_during_run_pod_sandbox() {
    let (cg, mut e, w) = env("runpod").await;
    let keep = survivor(&mut e, &cg).await;
    let before = footprint(&e, &cg);

    // Killed while the pod's network is set up (after the plugin's ADD, before berthd has
    // its answer): netns, /dev/shm, cgroup, infra process, veth and address all exist.
    w.arm("add");
    let mut client = e.cri.clone();
    let config = pod_cfg(&e, &cg, "half");
    let call = tokio::spawn(async move { client.runtime.run_pod_sandbox(run_req(config, "")).await });
    w.wait_for("in-add").await;
    e.berthd.kill9();
    assert!(call.await.expect("join").is_err(), "the call died with berthd");
    w.wait_for("out-add").await;
    recovers_clean(&mut e, &keep, None, &cg, &before, "the interrupted RunPodSandbox").await;
    // The same pod runs now.
    let again = run_pod(&mut e, &cg, "half", "").await;
    berth_e2e::pod::stop_remove(&mut e.cri, &again.0).await;

    // Other windows, by timing: kill after 0..60 ms.
    for delay in (0..=60).step_by(15) {
        let mut client = e.cri.clone();
        let config = pod_cfg(&e, &cg, &format!("timed-{delay}"));
        let call = tokio::spawn(async move { client.runtime.run_pod_sandbox(run_req(config, "")).await });
        tokio::time::sleep(Duration::from_millis(delay)).await;
        e.berthd.kill9();
        let _ = call.await;
        tokio::time::sleep(Duration::from_millis(300)).await; // plugins still running finish
        recovers_clean(
            &mut e,
            &keep,
            None,
            &cg,
            &before,
            &format!("kill {delay} ms into RunPodSandbox"),
        )
        .await;
    }
}

#[tokio::test]
async fn kill_while_the_infra_process_starts() {
    let (cg, mut e, w) = env("infra").await;
    let keep = survivor(&mut e, &cg).await;
    let before = footprint(&e, &cg);

    // Killed after the infra process was spawned and before it reported ready: only the
    // pid berthd saw at spawn time names it.
    w.arm("infra");
    let mut client = e.cri.clone();
    let config = pod_cfg(&e, &cg, "infra-half");
    let call = tokio::spawn(async move { client.runtime.run_pod_sandbox(run_req(config, "")).await });
    w.wait_for("in-infra").await;
    e.berthd.kill9();
    assert!(call.await.expect("join").is_err(), "the call died with berthd");
    recovers_clean(
        &mut e,
        &keep,
        None,
        &cg,
        &before,
        "a crash while the infra process starts",
    )
    .await;
    // The armed wrapper was stopped by the sweep, not left to finish its wait.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !w.path("out-infra").exists(),
        "the half-started infra process outlived the sweep"
    );
}

#[tokio::test]
async fn a_shim_stuck_in_runc_create_is_ended_by_the_sweep() {
    let (cg, mut e, w) = env("stuck").await;
    let keep = survivor(&mut e, &cg).await;
    let pod = run_pod(&mut e, &cg, "stuckpod", "slow").await;
    let before = footprint(&e, &cg);

    // `runc create` takes longer than the sweep's calls to the shim wait: the shim does
    // not answer while berthd, restarted, takes the unrecorded container down.
    w.arm_for("create", 40);
    let mut client = e.cri.clone();
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.0.clone(),
        config: Some(e.container("stuck", &["sleep", "1000"])),
        sandbox_config: Some(pod.1.clone()),
    };
    let call = tokio::spawn(async move { client.runtime.create_container(req).await });
    w.wait_for("in-create").await;
    e.berthd.kill9();
    assert!(call.await.expect("join").is_err(), "the call died with berthd");
    recovers_clean(&mut e, &keep, Some(&pod), &cg, &before, "a shim stuck in runc create").await;
    assert!(
        e.berthd.log().contains("ending a shim that does not answer"),
        "the sweep did not end the stuck shim"
    );
    // What ran under the shim (the slow runtime's wait) went with it.
    assert!(!w.path("out-create").exists(), "runc create outlived its shim");
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
}

#[tokio::test]
async fn kill_during_create_container() {
    let (cg, mut e, w) = env("create").await;
    let keep = survivor(&mut e, &cg).await;
    let pod = run_pod(&mut e, &cg, "slowpod", "slow").await;
    let before = footprint(&e, &cg);

    // Killed right after `runc create`, before the shim answered berthd: rootfs mounted,
    // shim and created container exist, no record yet.
    w.arm("create");
    let mut client = e.cri.clone();
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.0.clone(),
        config: Some(e.container("half", &["sleep", "1000"])),
        sandbox_config: Some(pod.1.clone()),
    };
    let call = tokio::spawn(async move { client.runtime.create_container(req).await });
    w.wait_for("in-create").await;
    e.berthd.kill9();
    assert!(call.await.expect("join").is_err(), "the call died with berthd");
    w.wait_for("out-create").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    recovers_clean(
        &mut e,
        &keep,
        Some(&pod),
        &cg,
        &before,
        "the interrupted CreateContainer",
    )
    .await;
    // The same container can be created and runs.
    let c = e
        .create(&pod, e.container("half", &["sleep", "1000"]))
        .await
        .expect("create again");
    e.start(&c).await;
    assert_eq!(e.status(&c).await.state, cri::ContainerState::ContainerRunning as i32);
    remove_container(&mut e, &c).await;

    for delay in (0..=60).step_by(15) {
        let mut client = e.cri.clone();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.0.clone(),
            config: Some(e.container(&format!("timed-{delay}"), &["sleep", "1000"])),
            sandbox_config: Some(pod.1.clone()),
        };
        let call = tokio::spawn(async move { client.runtime.create_container(req).await });
        tokio::time::sleep(Duration::from_millis(delay)).await;
        e.berthd.kill9();
        let _ = call.await;
        tokio::time::sleep(Duration::from_millis(500)).await; // a shim still starting finishes
        recovers_clean(
            &mut e,
            &keep,
            Some(&pod),
            &cg,
            &before,
            &format!("kill {delay} ms into CreateContainer"),
        )
        .await;
    }
}

/// After a kill: restart berthd, check the survivor still runs, remove everything else
/// (keeping `pod`, but not its containers, when given) and compare the host with `before`.
async fn recovers_clean(
    e: &mut Env,
    keep: &(Pod, String),
    pod: Option<&Pod>,
    cg: &CgroupParent,
    before: &Footprint,
    what: &str,
) {
    restart(e).await;
    assert_survivor(e, keep).await;
    match pod {
        Some(pod) => remove_all_but_pod(e, keep, pod).await,
        None => remove_all_but(e, keep).await,
    }
    assert_same(&footprint(e, cg), before, what);
}

/// [`remove_all_but`], also keeping `pod` (but not its containers).
async fn remove_all_but_pod(e: &mut Env, keep: &(Pod, String), pod: &Pod) {
    for c in containers(e).await {
        if c.id == keep.1 {
            continue;
        }
        if c.state == cri::ContainerState::ContainerRunning as i32 {
            let r = e.exec(&c.id, &["true"], 5).await;
            assert!(r.is_ok_and(|r| r.exit_code == 0), "listed as running but not: {c:?}");
        }
        remove_container(e, &c.id).await;
    }
    let ids: Vec<String> = pods(e).await.into_iter().map(|p| p.id).collect();
    let mut want = vec![keep.0 .0.clone(), pod.0.clone()];
    want.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(ids, want, "pods after the restart");
}

#[tokio::test]
async fn kill_during_remove_container_and_remove_pod() {
    let (cg, mut e, w) = env("remove").await;
    let keep = survivor(&mut e, &cg).await;
    let before = footprint(&e, &cg);
    let pod = run_pod(&mut e, &cg, "doomed", "slow").await;
    let c = e
        .create(&pod, e.container("doomed", &["sleep", "1000"]))
        .await
        .expect("create");
    e.start(&c).await;

    // RemoveContainer killed while the runtime deletes the container.
    w.arm("delete");
    let mut client = e.cri.clone();
    let id = c.clone();
    let call = tokio::spawn(async move {
        client
            .runtime
            .remove_container(cri::RemoveContainerRequest { container_id: id })
            .await
    });
    w.wait_for("in-delete").await;
    e.berthd.kill9();
    let _ = call.await;
    w.wait_for("out-delete").await;
    restart(&mut e).await;
    assert_survivor(&mut e, &keep).await;
    for listed in containers(&mut e).await.into_iter().filter(|x| x.id == c) {
        assert_ne!(listed.state, cri::ContainerState::ContainerRunning as i32, "{listed:?}");
    }
    // Retried, the removal completes.
    remove_container(&mut e, &c).await;
    assert!(!containers(&mut e).await.iter().any(|x| x.id == c));

    // RemovePodSandbox killed while the plugin deletes the pod's network.
    w.arm("del");
    let mut client = e.cri.clone();
    let id = pod.0.clone();
    let call = tokio::spawn(async move {
        client
            .runtime
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await?;
        client
            .runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
    });
    w.wait_for("in-del").await;
    e.berthd.kill9();
    let _ = call.await;
    w.wait_for("out-del").await;
    recovers_clean(&mut e, &keep, None, &cg, &before, "interrupted removals").await;

    // By timing, a pod with a container removed in one call.
    for delay in (0..=60).step_by(20) {
        let pod = run_pod(&mut e, &cg, &format!("timed-{delay}"), "").await;
        let c = e
            .create(&pod, e.container("c", &["sleep", "1000"]))
            .await
            .expect("create");
        e.start(&c).await;
        let mut client = e.cri.clone();
        let id = pod.0.clone();
        let call = tokio::spawn(async move {
            client
                .runtime
                .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
        });
        tokio::time::sleep(Duration::from_millis(delay)).await;
        e.berthd.kill9();
        let _ = call.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The removal may not have begun: what is listed is whatever state it reached.
        recovers_clean(
            &mut e,
            &keep,
            None,
            &cg,
            &before,
            &format!("kill {delay} ms into RemovePodSandbox"),
        )
        .await;
    }
}

#[tokio::test]
async fn killed_shim_is_reported_and_removable() {
    let (cg, mut e, _w) = env("shim").await;
    let keep = survivor(&mut e, &cg).await;
    let before = footprint(&e, &cg);
    let pod = run_pod(&mut e, &cg, "shimless", "").await;
    let c = e
        .create(&pod, e.container("orphan", &["sleep", "1000"]))
        .await
        .expect("create");
    e.start(&c).await;
    let pid_file = e.berthd.state().join("containers").join(&c).join("shim.pid");
    let shim: u32 = std::fs::read_to_string(&pid_file)
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("pid");
    // Make sure it is the shim before killing it (never another process).
    let comm = std::fs::read_to_string(format!("/proc/{shim}/comm")).expect("comm");
    assert!(comm.starts_with("berth-shim"), "{comm}");
    let rc = std::process::Command::new("kill")
        .args(["-9", &shim.to_string()])
        .status()
        .expect("kill");
    assert!(rc.success());

    let deadline = Instant::now() + Duration::from_secs(5);
    let st = loop {
        let st = e.status(&c).await;
        if st.state != cri::ContainerState::ContainerRunning as i32 {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "still reported running 5 s after its shim died: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        st.state == cri::ContainerState::ContainerExited as i32
            || st.state == cri::ContainerState::ContainerUnknown as i32,
        "{st:?}"
    );
    assert!(
        !st.reason.is_empty() && !st.message.is_empty(),
        "reason and message: {st:?}"
    );
    remove_container(&mut e, &c).await;
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
    assert_survivor(&mut e, &keep).await;
    assert_same(&footprint(&e, &cg), &before, "the shimless container");
}

/// Blobs under `root/content/blobs/sha256` whose content does not hash to their name.
fn corrupt_blobs(root: &Path) -> Vec<String> {
    let dir = root.join("content/blobs/sha256");
    ls(&dir)
        .into_iter()
        .filter(|name| {
            let data = std::fs::read(dir.join(name)).unwrap_or_default();
            berth_e2e::sha256_digest(&data) != format!("sha256:{name}")
        })
        .collect()
}

/// Registry config for berthd: plain HTTP to `hosts`.
fn hosts_dir(hosts: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for h in hosts {
        std::fs::create_dir_all(dir.path().join(h)).expect("mkdir");
        std::fs::write(
            dir.path().join(h).join("hosts.toml"),
            format!("server = \"http://{h}\"\n"),
        )
        .expect("hosts");
    }
    dir
}

fn snapshot_dirs(root: &Path) -> Vec<String> {
    let snaps = root.join("snapshots");
    let mut v: Vec<String> = ls(&snaps).into_iter().filter(|n| n != ".ingest").collect();
    v.extend(ls(&snaps.join(".ingest")).into_iter().map(|n| format!(".ingest/{n}")));
    v
}

#[tokio::test]
async fn kill_during_pull() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let spec = ImageSpec {
        layers: vec![random_layer(3 << 20, 7, Compression::Gzip)],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    let pushed = push_image(&reg.addr(), "e2e/big", "1", &spec, None)
        .await
        .expect("push");
    // 64 KiB every 20 ms: about 1 s for the layer.
    let proxy = SlowProxy::start(&reg.addr(), 64 << 10, Duration::from_millis(20));
    let hosts = hosts_dir(&[proxy.addr()]);
    let mut berthd = Berthd::start(BerthdOpts {
        registry_config_dir: Some(hosts.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .expect("berthd");
    let image = pushed.image_ref(&proxy.addr());
    let mut client = Cri::connect(berthd.socket()).await.expect("connect");
    let img = image.clone();
    let call = tokio::spawn(async move { client.pull(&img, None).await });
    // Kill once part of the layer is in the ingest area.
    let ingest = berthd.root().join("content/ingest");
    wait_until("a partly downloaded layer", Duration::from_secs(30), || {
        std::fs::read_dir(&ingest)
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| f.metadata().is_ok_and(|m| m.len() > (256 << 10)))
    })
    .await;
    berthd.kill9();
    assert!(call.await.expect("join").is_err(), "the pull died with berthd");
    restart_plain(&mut berthd).await;
    let mut cri = Cri::connect(berthd.socket()).await.expect("reconnect");
    assert_eq!(
        cri.status(&image).await.expect("status"),
        None,
        "half-pulled image listed"
    );
    assert!(cri.list().await.expect("list").is_empty());
    let root = berthd.root().to_path_buf();
    assert!(ls(&root.join("content/ingest")).is_empty(), "ingest area swept");
    assert!(!ls(&root.join("content/blobs/sha256"))
        .contains(&pushed.layer_digests[0].trim_start_matches("sha256:").to_string()));
    assert!(corrupt_blobs(&root).is_empty(), "no half blob under a digest's name");
    assert_eq!(snapshot_dirs(&root), Vec::<String>::new(), "no snapshot left");
    assert!(mounts_under(berthd.dir()).is_empty(), "no mount left");

    // Retried, the pull succeeds and the image is whole.
    let image_ref = cri.pull(&image, None).await.expect("pull again");
    assert_eq!(image_ref, pushed.config_digest);
    let st = cri.status(&image).await.expect("status").expect("image present");
    assert_eq!(st.id, pushed.config_digest);
    assert!(st.repo_tags.contains(&image), "{st:?}");
    assert!(st.size >= 3 << 20, "{st:?}");
    assert!(corrupt_blobs(&root).is_empty());
    assert_eq!(snapshot_dirs(&root).len(), 1, "one layer unpacked");
}

async fn restart_plain(b: &mut Berthd) {
    b.restart().await.expect("restart");
}

#[tokio::test]
async fn full_disk_during_pull_is_a_clean_error() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let big = ImageSpec {
        layers: vec![random_layer(40 << 20, 11, Compression::Gzip)],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    let big = push_image(&reg.addr(), "e2e/huge", "1", &big, None)
        .await
        .expect("push big");
    let small = push_image(&reg.addr(), "e2e/small", "1", &ImageSpec::busybox(), None)
        .await
        .expect("push small");
    let hosts = hosts_dir(&[reg.addr()]);
    let mut berthd = Berthd::start(BerthdOpts {
        registry_config_dir: Some(hosts.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .expect("berthd");
    // berthd's root on a 24 MiB tmpfs.
    berthd.stop();
    let root = berthd.root().to_path_buf();
    let _tmpfs = Tmpfs::mount(&root, "24m");
    restart_plain(&mut berthd).await;
    let mut cri = Cri::connect(berthd.socket()).await.expect("connect");

    let err = cri.pull(&big.image_ref(&reg.addr()), None).await.expect_err("no room");
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::Internal)
            && err.message().to_lowercase().contains("no space left"),
        "{err:?}"
    );
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(cri.status(&big.image_ref(&reg.addr())).await.expect("status"), None);
    assert!(cri.list().await.expect("list").is_empty());
    assert!(corrupt_blobs(&root).is_empty(), "no partial blob");
    assert!(ls(&root.join("content/ingest")).is_empty(), "ingest area cleaned");
    assert!(ls(&root.join("snapshots/.ingest")).is_empty(), "no half snapshot");

    // The space is back: a small image pulls into the same root.
    cri.pull(&small.image_ref(&reg.addr()), None).await.expect("small pull");
    let st = cri
        .status(&small.image_ref(&reg.addr()))
        .await
        .expect("status")
        .expect("present");
    assert_eq!(st.id, small.config_digest);
    // And after a restart everything is still consistent.
    restart_plain(&mut berthd).await;
    let mut cri = Cri::connect(berthd.socket()).await.expect("reconnect");
    assert_eq!(cri.list().await.expect("list").len(), 1);
    assert!(corrupt_blobs(&root).is_empty());
    berthd.stop();
}
