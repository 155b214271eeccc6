//! Malformed container-level requests against a real pod and a running container:
//! CreateContainer fields (names, log paths, mounts, env, resources, users), ExecSync, Exec,
//! Attach, PortForward, UpdateContainerResources and StopContainer with absurd numbers.
//! Each is InvalidArgument; berthd answers `Version` after each and never panics.

use berth_e2e::abuse::{mib, pb, Abuse};
use berth_e2e::workload::env;
use tonic::Code::{InvalidArgument as Inval, Ok as Fine};

fn config(name: &str, image: &str, cmd: &[&str]) -> pb::ContainerConfig {
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(pb::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

fn resources(edit: impl FnOnce(&mut pb::LinuxContainerResources)) -> Option<pb::LinuxContainerResources> {
    let mut r = pb::LinuxContainerResources::default();
    edit(&mut r);
    Some(r)
}

#[tokio::test]
async fn container_fields_streams_and_numbers_are_validated() {
    let mut e = env(None).await;
    let (pod_id, kpod) = e.pod("abuse").await;
    let sandbox = Some(pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: "abuse".into(),
            uid: "uid-abuse".into(),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        log_directory: kpod.log_directory.clone(),
        ..Default::default()
    });
    let image = e.image.clone();
    let mut a = Abuse::connect(&e.berthd).await;

    type Edit = Box<dyn FnOnce(&mut pb::ContainerConfig)>;
    let mount = |container_path: &str, host_path: &str| pb::Mount {
        container_path: container_path.into(),
        host_path: host_path.into(),
        ..Default::default()
    };
    let kv = |k: &str, v: &str| pb::KeyValue {
        key: k.into(),
        value: v.into(),
    };
    let linux_res = |edit: fn(&mut pb::LinuxContainerResources)| -> Edit {
        Box::new(move |c: &mut pb::ContainerConfig| {
            c.linux.get_or_insert_with(Default::default).resources = resources(edit)
        })
    };
    let user = |uid: i64, groups: Vec<i64>| -> Edit {
        Box::new(move |c: &mut pb::ContainerConfig| {
            c.linux.get_or_insert_with(Default::default).security_context = Some(pb::LinuxContainerSecurityContext {
                run_as_user: Some(pb::Int64Value { value: uid }),
                supplemental_groups: groups,
                ..Default::default()
            })
        })
    };
    let edits: Vec<(&str, Edit)> = vec![
        ("no metadata", Box::new(|c| c.metadata = None)),
        ("name empty", Box::new(|c| c.metadata.as_mut().expect("m").name.clear())),
        (
            "name nul",
            Box::new(|c| c.metadata.as_mut().expect("m").name = "a\0b".into()),
        ),
        (
            "name slash",
            Box::new(|c| c.metadata.as_mut().expect("m").name = "a/b".into()),
        ),
        ("name 1MiB", Box::new(|c| c.metadata.as_mut().expect("m").name = mib())),
        ("no image", Box::new(|c| c.image = None)),
        ("image 1MiB", Box::new(|c| c.image.as_mut().expect("i").image = mib())),
        (
            "log path dotdot",
            Box::new(|c| c.log_path = "../../../../etc/berth-pwned".into()),
        ),
        (
            "log path absolute",
            Box::new(|c| c.log_path = "/etc/berth-pwned".into()),
        ),
        ("log path nul", Box::new(|c| c.log_path = "a\0.log".into())),
        ("log path 1MiB", Box::new(|c| c.log_path = mib())),
        (
            "mount relative dest",
            Box::new(move |c| c.mounts = vec![mount("data", "/tmp")]),
        ),
        (
            "mount empty dest",
            Box::new(move |c| c.mounts = vec![mount("", "/tmp")]),
        ),
        (
            "mount empty source",
            Box::new(move |c| c.mounts = vec![mount("/data", "")]),
        ),
        (
            "mount nul source",
            Box::new(move |c| c.mounts = vec![mount("/data", "/tmp/\0x")]),
        ),
        (
            "mount relative source",
            Box::new(move |c| c.mounts = vec![mount("/data", "tmp")]),
        ),
        ("env empty key", Box::new(move |c| c.envs = vec![kv("", "x")])),
        ("env key with =", Box::new(move |c| c.envs = vec![kv("A=B", "x")])),
        ("env nul", Box::new(move |c| c.envs = vec![kv("A", "x\0y")])),
        ("command nul", Box::new(|c| c.command = vec!["sh\0".into()])),
        ("working dir relative", Box::new(|c| c.working_dir = "tmp".into())),
        (
            "working dir /proc",
            Box::new(|c| c.working_dir = "/proc/self/fd/7".into()),
        ),
        ("memory -5", linux_res(|r| r.memory_limit_in_bytes = -5)),
        ("cpu period -1", linux_res(|r| r.cpu_period = -1)),
        ("cpu quota -5", linux_res(|r| r.cpu_quota = -5)),
        ("cpu shares -1", linux_res(|r| r.cpu_shares = -1)),
        ("oom score 5000", linux_res(|r| r.oom_score_adj = 5000)),
        ("uid -1", user(-1, vec![])),
        ("uid 2^40", user(1 << 40, vec![])),
        ("group -3", user(0, vec![-3])),
    ];
    let create = |c: pb::ContainerConfig| pb::CreateContainerRequest {
        pod_sandbox_id: pod_id.clone(),
        config: Some(c),
        sandbox_config: sandbox.clone(),
    };
    let r =
        a.rt.create_container(pb::CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: None,
            sandbox_config: sandbox.clone(),
        })
        .await;
    a.check("CreateContainer(no config)", r, &[Inval]).await;
    for (what, edit) in edits {
        let mut c = config("victim", &image, &["true"]);
        edit(&mut c);
        let r = a.rt.create_container(create(c)).await;
        a.check(&format!("CreateContainer({what})"), r, &[Inval]).await;
    }
    assert!(!std::path::Path::new("/etc/berth-pwned").exists());

    // A running container for the rest; it exits on SIGTERM.
    let running =
        a.rt.create_container(create(config(
            "running",
            &image,
            &["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
        )))
        .await
        .expect("create")
        .into_inner()
        .container_id;
    a.rt.start_container(pb::StartContainerRequest {
        container_id: running.clone(),
    })
    .await
    .expect("start");
    let id = || running.clone();
    for (what, cmd, timeout) in [
        ("no cmd", vec![], 5),
        ("empty cmd", vec![String::new()], 5),
        ("nul cmd", vec!["ls\0".to_string()], 5),
        ("negative timeout", vec!["true".to_string()], -1),
    ] {
        let r =
            a.rt.exec_sync(pb::ExecSyncRequest {
                container_id: id(),
                cmd,
                timeout,
            })
            .await;
        a.check(&format!("ExecSync({what})"), r, &[Inval]).await;
    }
    let exec = |cmd: Vec<&str>, stdin: bool, stdout: bool, stderr: bool, tty: bool| pb::ExecRequest {
        container_id: running.clone(),
        cmd: cmd.into_iter().map(Into::into).collect(),
        stdin,
        stdout,
        stderr,
        tty,
    };
    for (what, req) in [
        ("no cmd", exec(vec![], false, true, false, false)),
        ("no streams", exec(vec!["true"], false, false, false, false)),
        ("tty with stderr", exec(vec!["true"], false, true, true, true)),
    ] {
        let r = a.rt.exec(req).await;
        a.check(&format!("Exec({what})"), r, &[Inval]).await;
    }
    let attach = |stdin, stdout, stderr, tty| pb::AttachRequest {
        container_id: running.clone(),
        stdin,
        stdout,
        stderr,
        tty,
    };
    for (what, req) in [
        ("no streams", attach(false, false, false, false)),
        ("tty with stderr", attach(false, true, true, true)),
    ] {
        let r = a.rt.attach(req).await;
        a.check(&format!("Attach({what})"), r, &[Inval]).await;
    }
    for port in [-1, 0, 70000] {
        let r =
            a.rt.port_forward(pb::PortForwardRequest {
                pod_sandbox_id: pod_id.clone(),
                port: vec![port],
            })
            .await;
        a.check(&format!("PortForward({port})"), r, &[Inval]).await;
    }
    for (what, linux) in [
        ("memory -5", resources(|r| r.memory_limit_in_bytes = -5)),
        ("cpu period -1", resources(|r| r.cpu_period = -1)),
        ("cpu shares -1", resources(|r| r.cpu_shares = -1)),
    ] {
        let r =
            a.rt.update_container_resources(pb::UpdateContainerResourcesRequest {
                container_id: id(),
                linux,
                ..Default::default()
            })
            .await;
        a.check(&format!("UpdateContainerResources({what})"), r, &[Inval]).await;
    }
    let r =
        a.rt.reopen_container_log(pb::ReopenContainerLogRequest { container_id: id() })
            .await;
    a.check("ReopenContainerLog(running)", r, &[Fine]).await;
    // The largest timeout: SIGTERM, the container exits, no deadline arithmetic overflows.
    let r =
        a.rt.stop_container(pb::StopContainerRequest {
            container_id: id(),
            timeout: i64::MAX,
        })
        .await;
    a.check("StopContainer(i64::MAX)", r, &[Fine]).await;
    let r =
        a.rt.stop_container(pb::StopContainerRequest {
            container_id: id(),
            timeout: i64::MIN,
        })
        .await;
    a.check("StopContainer(i64::MIN, stopped)", r, &[Fine]).await;
    a.assert_all_expected();
    assert!(!e.berthd.log().contains("panicked"), "berthd panicked");
}
