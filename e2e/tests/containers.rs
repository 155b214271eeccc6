//! Containers end to end: images the test builds (static busybox), a real registry, a
//! real pod sandbox with CNI, runc through Berth's shim, real cgroups.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_e2e::cri::{v1 as cri, Cri};
use berth_e2e::pod::pod_config;
use berth_e2e::workload::{env, env_with};
use tonic::Code;

fn log_lines(log: &str) -> Vec<(String, String)> {
    log.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next().unwrap_or("");
            assert!(ts.ends_with('Z') && ts.contains('T'), "timestamp {ts:?}");
            let stream = parts.next().unwrap_or("").to_string();
            assert_eq!(parts.next(), Some("F"), "full line in {l:?}");
            (stream, parts.next().unwrap_or("").to_string())
        })
        .collect()
}

#[tokio::test]
async fn container_prints_exits_and_logs_in_cri_format() {
    let mut e = env(None).await;
    let pod = e.pod("logs").await;
    let (code, reason, log) = e
        .run_to_exit(
            &pod,
            e.container("hello", &["sh", "-c", "echo hello; echo oops >&2; exit 0"]),
        )
        .await;
    assert_eq!((code, reason.as_str()), (0, "Completed"));
    let lines = log_lines(&log);
    assert!(lines.contains(&("stdout".into(), "hello".into())), "{lines:?}");
    assert!(lines.contains(&("stderr".into(), "oops".into())), "{lines:?}");
    let (code, reason, _) = e.run_to_exit(&pod, e.container("fail", &["sh", "-c", "exit 3"])).await;
    assert_eq!((code, reason.as_str()), (3, "Error"));
    // Names are unique per sandbox.
    let err = e
        .create(&pod, e.container("fail", &["true"]))
        .await
        .expect_err("same name");
    assert_eq!(err.code(), Code::AlreadyExists);
    // Unknown sandbox / image.
    let err = e
        .create(&("0123456789abcdef".into(), pod.1.clone()), e.container("x", &["true"]))
        .await
        .expect_err("no sandbox");
    assert_eq!(err.code(), Code::NotFound);
    let mut no_image = e.container("y", &["true"]);
    no_image.image = Some(cri::ImageSpec {
        image: "never/pulled:1".into(),
        ..Default::default()
    });
    assert_eq!(
        e.create(&pod, no_image).await.expect_err("no image").code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn oom_kill_is_reported() {
    let mut e = env(None).await;
    let pod = e.pod("oom").await;
    let mut c = e.container("hog", &["sh", "-c", "tail /dev/zero"]);
    c.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 32 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let (code, reason, _) = e.run_to_exit(&pod, c).await;
    assert_eq!(reason, "OOMKilled", "exit {code}");
    assert_eq!(code, 137);
}

#[tokio::test]
async fn mounts_users_and_security() {
    let mut e = env(Some("1000")).await;
    let pod = e.pod("sec").await;
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("greeting"), "from the host").expect("write");
    let mut c = e.container(
        "mount",
        &[
            "sh",
            "-c",
            "cat /data/greeting; echo; id -u; touch /data/new && echo writable || echo readonly",
        ],
    );
    c.mounts = vec![cri::Mount {
        container_path: "/data".into(),
        host_path: host.path().display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    let (code, _, log) = e.run_to_exit(&pod, c).await;
    let out: Vec<String> = log_lines(&log)
        .into_iter()
        .filter(|(s, _)| s == "stdout")
        .map(|(_, l)| l)
        .collect();
    assert_eq!(out, vec!["from the host", "1000", "readonly"], "exit {code}");

    // Read-only root filesystem.
    let mut c = e.container(
        "rofs",
        &["sh", "-c", "touch /newfile && echo writable || echo readonly"],
    );
    c.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            readonly_rootfs: true,
            run_as_user: Some(cri::Int64Value { value: 0 }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let (_, _, log) = e.run_to_exit(&pod, c).await;
    assert!(log.contains("stdout F readonly"), "{log}");

    // A dropped capability is enforced: root without CHOWN cannot chown.
    let run_as_root_dropping = |drop: Vec<String>| cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 0 }),
            capabilities: Some(cri::Capability {
                drop_capabilities: drop,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut c = e.container(
        "chown-ok",
        &["sh", "-c", "touch /tmp/f && chown 1000 /tmp/f && echo chowned"],
    );
    c.linux = Some(run_as_root_dropping(vec![]));
    let (code, _, _) = e.run_to_exit(&pod, c).await;
    assert_eq!(code, 0, "root may chown by default");
    let mut c = e.container("chown-denied", &["sh", "-c", "touch /tmp/f && chown 1000 /tmp/f"]);
    c.linux = Some(run_as_root_dropping(vec!["CHOWN".into()]));
    let (code, _, _) = e.run_to_exit(&pod, c).await;
    assert_ne!(code, 0, "chown without CAP_CHOWN must fail");

    // RuntimeDefault seccomp blocks swapoff even with every capability: EPERM instead of ENOENT.
    let seccomp = |kind: i32| cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 0 }),
            capabilities: Some(cri::Capability {
                add_capabilities: vec!["ALL".into()],
                ..Default::default()
            }),
            seccomp: Some(cri::SecurityProfile {
                profile_type: kind,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut c = e.container("seccomp-default", &["sh", "-c", "swapoff /nonexistent-swap 2>&1; true"]);
    c.linux = Some(seccomp(cri::security_profile::ProfileType::RuntimeDefault as i32));
    let (_, _, log) = e.run_to_exit(&pod, c).await;
    assert!(log.contains("not permitted"), "seccomp should refuse swapoff: {log}");
    let mut c = e.container(
        "seccomp-unconfined",
        &["sh", "-c", "swapoff /nonexistent-swap 2>&1; true"],
    );
    c.linux = Some(seccomp(cri::security_profile::ProfileType::Unconfined as i32));
    let (_, _, log) = e.run_to_exit(&pod, c).await;
    assert!(
        !log.contains("not permitted") && log.contains("No such file"),
        "unconfined swapoff reaches the kernel: {log}"
    );
}

#[tokio::test]
async fn resources_exec_and_stop_timeout() {
    let mut e = env(None).await;
    let pod = e.pod("res").await;
    let mut c = e.container("limited", &["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]);
    c.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = e.create(&pod, c).await.expect("create");
    e.start(&id).await;
    assert_eq!(e.memory_limit(&id).await, (64u64 << 20).to_string());

    let req = cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 96 << 20,
            ..Default::default()
        }),
        ..Default::default()
    };
    e.cri.runtime.update_container_resources(req).await.expect("update");
    assert_eq!(
        e.memory_limit(&id).await,
        (96u64 << 20).to_string(),
        "UpdateContainerResources applied"
    );
    // ContainerStatus reports the resources in force (kubelet follows in-place resizes there).
    let reported = e
        .status(&id)
        .await
        .resources
        .and_then(|r| r.linux)
        .expect("resources in ContainerStatus");
    assert_eq!(reported.memory_limit_in_bytes, 96 << 20);

    let r = e
        .exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 7"], 0)
        .await
        .expect("exec");
    assert_eq!(
        (r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()),
        (7, &b"out\n"[..], &b"err\n"[..])
    );
    let t = Instant::now();
    let err = e.exec(&id, &["sleep", "30"], 1).await.expect_err("timeout");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(t.elapsed() < Duration::from_secs(10));

    // The container ignores SIGTERM: stop waits the timeout, then kills.
    let t = Instant::now();
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 2,
        })
        .await
        .expect("stop");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "stop took {took:?}"
    );
    let st = e.status(&id).await;
    assert_eq!(
        (st.state, st.exit_code),
        (cri::ContainerState::ContainerExited as i32, 137)
    );
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 2,
        })
        .await
        .expect("stop again");
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove");
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("remove again");
    let err = e
        .cri
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: id,
            verbose: false,
        })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn containers_survive_kill_9_of_berthd() {
    let mut e = env(None).await;
    let pod = e.pod("survive").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = e
            .create(&pod, e.container(&format!("c{i}"), &["sleep", "1000"]))
            .await
            .expect("create");
        e.start(&id).await;
        ids.push(id);
    }
    e.berthd.kill9();
    e.berthd.restart().await.expect("restart");
    e.cri = Cri::connect(e.berthd.socket()).await.expect("reconnect");
    let list = e
        .cri
        .runtime
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .expect("list")
        .into_inner();
    let running: HashMap<String, i32> = list.containers.iter().map(|c| (c.id.clone(), c.state)).collect();
    for id in &ids {
        assert_eq!(
            running.get(id),
            Some(&(cri::ContainerState::ContainerRunning as i32)),
            "{id} still running"
        );
    }
    // An exit after the restart is reported.
    let r = e.exec(&ids[0], &["kill", "1"], 5).await;
    assert!(r.is_ok(), "{r:?}");
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: ids[1].clone(),
            timeout: 1,
        })
        .await
        .expect("stop");
    let st = e.wait_exit(&ids[1]).await;
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    // Removing the pod removes its containers and their shims.
    berth_e2e::pod::stop_remove(&mut e.cri, &pod.0).await;
    let list = e
        .cri
        .runtime
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .expect("list")
        .into_inner();
    assert!(list.containers.is_empty());
    assert_eq!(
        std::fs::read_dir(e.berthd.state().join("containers"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "bundles removed"
    );
}

/// A RuntimeClass handler maps to its own OCI runtime binary: here a wrapper that records
/// each call and then runs runc. (Debian's crun 1.8 refuses this machine's hybrid cgroup
/// layout, whose v2 tree holds the hugetlb controller, so runc stands behind the wrapper.)
#[tokio::test]
async fn runtime_handlers_pick_their_own_runtime() {
    let bin = tempfile::tempdir().expect("tempdir");
    let calls = bin.path().join("calls.log");
    let wrapper = bin.path().join("wrapped-runc");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\necho \"$@\" >> {}\nexec runc \"$@\"\n", calls.display()),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let toml = format!("[runtime_handlers]\nwrapped = \"{}\"\n", wrapper.display());
    let mut e = env_with(None, Some(toml)).await;
    let mut config = pod_config("wrapped-pod");
    config.log_directory = e.logs.path().join("wrapped-pod").display().to_string();
    let req = cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: "wrapped".into(),
    };
    let pod_id = e
        .cri
        .runtime
        .run_pod_sandbox(req)
        .await
        .expect("run pod")
        .into_inner()
        .pod_sandbox_id;
    let pod = (pod_id, config);
    let (code, reason, log) = e
        .run_to_exit(&pod, e.container("via-handler", &["sh", "-c", "echo handled"]))
        .await;
    assert_eq!((code, reason.as_str()), (0, "Completed"));
    assert!(log.contains("stdout F handled"), "{log}");
    let seen = std::fs::read_to_string(&calls).expect("the handler's runtime was called");
    assert!(seen.contains("create") && seen.contains("start"), "{seen}");
    let bad = cri::RunPodSandboxRequest {
        config: Some(pod_config("nope")),
        runtime_handler: "no-such-handler".into(),
    };
    let err = e.cri.runtime.run_pod_sandbox(bad).await.expect_err("unknown handler");
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// Whether a host process runs `sleep SECONDS` itself (not a shell naming it); the tests'
/// markers are numbers nothing else sleeps.
fn sleeping(seconds: &str) -> bool {
    let cmdline = format!("sleep {seconds} ");
    berth_e2e::probe::processes_with(&cmdline)
        .iter()
        .any(|(_, cmd)| *cmd == cmdline)
}

async fn until_sleeping(markers: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !markers.iter().all(|m| sleeping(m)) {
        assert!(Instant::now() < deadline, "not all of {markers:?} started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stopping a container ends every process in it, its main one's children and what an exec
/// left running: alone in its PID namespace (SIGKILL through its init) and sharing the pod's
/// (the runtime kills the whole cgroup); StopPodSandbox does the same to running containers.
#[tokio::test]
async fn stop_ends_every_process_of_a_container() {
    let mut e = env(None).await;
    let own = e.pod("own-pids").await;
    let mut config = berth_e2e::pod::pod_config("shared-pids");
    config.log_directory = e.logs.path().join("shared-pids").display().to_string();
    let ns = |c: &mut Option<cri::LinuxPodSandboxConfig>| {
        c.as_mut()
            .and_then(|l| l.security_context.as_mut())
            .and_then(|s| s.namespace_options.as_mut())
            .map(|n| n.pid = cri::NamespaceMode::Pod as i32)
    };
    ns(&mut config.linux);
    let shared = (
        berth_e2e::pod::run(&mut e.cri, config.clone()).await.expect("run pod"),
        config,
    );
    let mut started = Vec::new();
    for (pod, name, base) in [(&own, "own", 7301), (&shared, "shared", 7311), (&own, "by-pod", 7321)] {
        let script = format!("sleep {base} & sleep {} & wait", base + 1);
        let mut c = e.container(name, &["sh", "-c", &script]);
        if name == "shared" {
            c.linux = Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let id = e.create(pod, c).await.expect("create");
        e.start(&id).await;
        // A process an exec leaves behind belongs to the container too.
        let left = format!("sleep {} </dev/null >/dev/null 2>&1 &", base + 2);
        let r = e.exec(&id, &["sh", "-c", &left], 10).await.expect("exec");
        assert_eq!(r.exit_code, 0);
        let markers: Vec<String> = (base..base + 3).map(|n| n.to_string()).collect();
        until_sleeping(&markers).await;
        started.push((id, markers));
    }
    for (id, markers) in &started[..2] {
        e.stop(id, 0).await;
        let st = e.status(id).await;
        assert_eq!(st.state, cri::ContainerState::ContainerExited as i32, "{id}");
        for m in markers {
            assert!(!sleeping(m), "sleep {m} outlived StopContainer");
        }
    }
    e.cri
        .runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: own.0.clone(),
        })
        .await
        .expect("stop pod");
    let (id, markers) = &started[2];
    assert_eq!(e.status(id).await.state, cri::ContainerState::ContainerExited as i32);
    for m in markers {
        assert!(!sleeping(m), "sleep {m} outlived StopPodSandbox");
    }
    for pod in [&own.0, &shared.0] {
        berth_e2e::pod::stop_remove(&mut e.cri, pod).await;
    }
}
