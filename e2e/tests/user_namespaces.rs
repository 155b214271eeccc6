//! Pods with their own user namespace (`hostUsers: false`, CRI `NamespaceMode_POD`) on
//! runc: the container's root is an unprivileged host uid, its root filesystem and volumes
//! are idmapped so files show their usual owners inside, what it writes to its writable
//! layer belongs to the mapped uid on the host, and removing the pod leaves no namespace
//! pin or idmapped mount behind.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use berth_e2e::cri::v1 as cri;
use berth_e2e::workload::{env, Env};
use tonic::Code;

const HOST_ID: u32 = 300_000;
const LENGTH: u32 = 65_536;

fn mapping() -> Vec<cri::IdMapping> {
    vec![cri::IdMapping {
        container_id: 0,
        host_id: HOST_ID,
        length: LENGTH,
    }]
}

fn userns(mode: cri::NamespaceMode) -> cri::UserNamespace {
    let pod = mode == cri::NamespaceMode::Pod;
    cri::UserNamespace {
        mode: mode as i32,
        uids: if pod { mapping() } else { vec![] },
        gids: if pod { mapping() } else { vec![] },
    }
}

fn with_userns(config: &mut cri::PodSandboxConfig, mode: cri::NamespaceMode) {
    let ns = config
        .linux
        .get_or_insert_with(Default::default)
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options
        .get_or_insert_with(Default::default);
    ns.userns_options = Some(userns(mode));
}

async fn userns_pod(e: &mut Env, name: &str) -> (String, cri::PodSandboxConfig) {
    let mut config = berth_e2e::pod::pod_config(name);
    config.log_directory = e.logs.path().join(name).display().to_string();
    with_userns(&mut config, cri::NamespaceMode::Pod);
    let id = berth_e2e::pod::run(&mut e.cri, config.clone())
        .await
        .expect("run a pod with its own user namespace");
    (id, config)
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(String::from)
        .collect()
}

fn host_uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    line.split_whitespace()
        .nth(1)
        .and_then(|u| u.parse().ok())
        .expect("uid")
}

#[tokio::test]
async fn a_pod_with_its_own_user_namespace_runs_unprivileged_on_the_host() {
    let mut e = env(None).await;
    assert!(
        e.default_handler().await.user_namespaces,
        "the default handler reports user namespace support"
    );

    // A host directory as a volume: a root-owned file in it, which the pod's root may write.
    let volume = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(volume.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::write(volume.path().join("from-host"), "host\n").expect("write");

    let pod = userns_pod(&mut e, "userns").await;
    let (pod_status, _) = berth_e2e::pod::status(&mut e.cri, &pod.0).await.expect("pod status");
    let reported = pod_status
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .and_then(|o| o.userns_options)
        .expect("user namespace in the pod status");
    assert_eq!(reported, userns(cri::NamespaceMode::Pod));

    let mut config = e.container("app", &["sleep", "60"]);
    config.mounts = vec![cri::Mount {
        container_path: "/vol".into(),
        host_path: volume.path().display().to_string(),
        ..Default::default()
    }];
    let id = e.create(&pod, config).await.expect("create");
    e.start(&id).await;

    let run = |out: cri::ExecSyncResponse| {
        assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let script = "cat /proc/self/uid_map; id -u; stat -c %u:%g / /bin/busybox /vol/from-host; \
                  echo layer > /written; echo volume > /vol/from-pod; cat /vol/from-host";
    let out = run(e.exec(&id, &["sh", "-c", script], 10).await.expect("exec"));
    assert_eq!(
        out,
        format!("0 {HOST_ID} {LENGTH} 0 0:0 0:0 0:0 host"),
        "inside the pod"
    );

    // On the host: the process runs as the mapped uid; what it wrote to its writable layer
    // belongs to that uid; the volume keeps the pod's view of owners (root is 0 on disk).
    let pid = e.info(&id).await["pid"].as_u64().expect("pid") as u32;
    assert_eq!(host_uid_of(pid), HOST_ID, "the container's root on the host");
    let upper = e.berthd.root().join("containers").join(&id).join("upper");
    let written = std::fs::metadata(upper.join("written")).expect("written to the writable layer");
    assert_eq!((written.uid(), written.gid()), (HOST_ID, HOST_ID));
    let from_pod = std::fs::metadata(volume.path().join("from-pod")).expect("written to the volume");
    assert_eq!(
        (from_pod.uid(), from_pod.gid()),
        (0, 0),
        "idmapped volume: the pod's root is 0 on disk"
    );

    // A container must share its pod's user namespace.
    let mut node = e.container("node-userns", &["true"]);
    node.linux.get_or_insert_with(Default::default).security_context = Some(cri::LinuxContainerSecurityContext {
        namespace_options: Some(cri::NamespaceOption {
            userns_options: Some(userns(cri::NamespaceMode::Node)),
            ..Default::default()
        }),
        ..Default::default()
    });
    let err = e
        .create(&pod, node)
        .await
        .expect_err("the node's user namespace in this pod");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    // Taken down: no user namespace pin, no idmapped mount.
    let container_dir = e.berthd.root().join("containers").join(&id);
    assert!(
        !mounts_under(&container_dir.join("idmap")).is_empty(),
        "idmapped layers while it exists"
    );
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
    assert_eq!(mounts_under(&container_dir), Vec::<String>::new());
    assert!(
        !e.berthd.state().join("userns").join(&pod.0).exists(),
        "user namespace pin left"
    );
    assert!(mounts_under(&e.berthd.state().join("userns")).is_empty());
}

#[tokio::test]
async fn user_namespace_requests_berth_cannot_honour_are_refused() {
    let mut e = env(None).await;
    let mut host_net = berth_e2e::pod::pod_config("userns-hostnet");
    with_userns(&mut host_net, cri::NamespaceMode::Pod);
    if let Some(ns) = host_net
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    {
        ns.network = cri::NamespaceMode::Node as i32;
    }
    let mut two = berth_e2e::pod::pod_config("userns-two");
    with_userns(&mut two, cri::NamespaceMode::Pod);
    if let Some(u) = two
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
        .and_then(|n| n.userns_options.as_mut())
    {
        u.uids.push(cri::IdMapping {
            container_id: LENGTH,
            host_id: HOST_ID + LENGTH,
            length: 1,
        });
    }
    for (config, says) in [(host_net, "node's network"), (two, "exactly one uid mapping")] {
        let err = berth_e2e::pod::run(&mut e.cri, config).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(err.message().contains(says), "{}", err.message());
    }
    let left = e
        .cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .expect("list")
        .into_inner()
        .items;
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(berth_e2e::pod::count(&e.berthd.state().join("userns")), 0);
}
