//! CDI end to end on real runc: fake device nodes (mknod in a temp dir), a fake driver tree
//! and CDI specs that inject them; the container sees the nodes with the right numbers, the
//! mounts and the env, and the hooks ran. NVIDIA discovery runs over a fake /dev and driver
//! root, and `nvidia.com/gpu=all` brings the GPU nodes, libraries, tools and a refreshed ld cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::workload::{env_with, Env};

fn mknod(path: &Path, major: u32, minor: u32) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let st = Command::new("mknod")
        .arg(path)
        .arg("c")
        .arg(major.to_string())
        .arg(minor.to_string())
        .status()
        .expect("mknod");
    assert!(st.success(), "mknod {}", path.display());
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn config(tmp: &Path, nvidia: bool) -> String {
    format!(
        "[cdi]\nspec_dirs = [\"{t}/cdi-etc\", \"{t}/cdi-run\"]\nnvidia_discovery = {nvidia}\n\
         nvidia_dev_root = \"{t}/nvroot\"\nnvidia_driver_root = \"{t}/nvdriver\"\n",
        t = tmp.display()
    )
}

fn with_cdi(mut c: cri::ContainerConfig, devices: &[&str]) -> cri::ContainerConfig {
    c.cdi_devices = devices.iter().map(|d| cri::CdiDevice { name: d.to_string() }).collect();
    c
}

async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn remove(e: &mut Env, id: &str) {
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.into(),
        })
        .await
        .expect("remove");
}

async fn cdi_info(e: &mut Env) -> serde_json::Value {
    let info = e
        .cri
        .runtime
        .status(cri::StatusRequest { verbose: true })
        .await
        .expect("status")
        .into_inner()
        .info;
    serde_json::from_str(info.get("cdi").expect("info.cdi")).expect("cdi json")
}

#[tokio::test]
async fn cdi_specs_inject_nodes_mounts_env_and_hooks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    // A node with /dev/null's numbers (writable in the container) and one fake GPU node.
    mknod(&t.join("dev/fakenull"), 1, 3);
    mknod(&t.join("dev/fakegpu0"), 241, 7);
    write(&t.join("driver/libfake.so.1"), "fake-driver-library\n");
    let spec = serde_json::json!({
        "cdiVersion": "0.6.0",
        "kind": "test.berth.dev/gpu",
        "devices": [
            {"name": "0", "containerEdits": {
                "deviceNodes": [
                    {"path": "/dev/fakegpu0", "hostPath": t.join("dev/fakegpu0"), "permissions": "rw"},
                    {"path": "/dev/fakenull", "hostPath": t.join("dev/fakenull")}
                ],
                "env": ["FAKE_GPU=0"]}},
            {"name": "1", "containerEdits": {"env": ["FAKE_GPU=1"]}}
        ],
        "containerEdits": {
            "env": ["FAKE_DRIVER=yes"],
            "mounts": [{"hostPath": t.join("driver/libfake.so.1"), "containerPath": "/usr/lib/fake/libfake.so.1",
                        "options": ["ro", "nosuid", "nodev", "bind"]}],
            "hooks": [
                {"hookName": "createRuntime", "path": "/bin/sh",
                 "args": ["sh", "-c", format!("cat > {}/created.json", t.display())]},
                {"hookName": "startContainer", "path": "/bin/sh",
                 "args": ["sh", "-c", "echo hook-was-here > /tmp/started"]},
                {"hookName": "poststop", "path": "/bin/sh",
                 "args": ["sh", "-c", format!("cat > {}/stopped.json", t.display())]}
            ]
        }
    });
    write(&t.join("cdi-etc/gpu.json"), &spec.to_string());
    write(
        &t.join("cdi-run/nic.yaml"),
        "cdiVersion: \"0.5.0\"\nkind: test.berth.dev/nic\ndevices:\n  - name: eth\n    containerEdits:\n      env: [\"NIC=eth\"]\n",
    );
    write(
        &t.join("cdi-run/broken.json"),
        "{\"cdiVersion\": \"0.6.0\", \"kind\": \"x\"}",
    );

    let mut e = env_with(None, Some(config(t, false))).await;
    let info = cdi_info(&mut e).await;
    assert_eq!(
        info["devices"],
        serde_json::json!(["test.berth.dev/gpu=0", "test.berth.dev/gpu=1", "test.berth.dev/nic=eth"]),
        "{info}"
    );
    let errors = info["errors"].to_string();
    assert!(errors.contains("broken.json") && errors.contains("kind"), "{errors}");

    let pod = e.pod("cdi").await;
    let mut c = with_cdi(
        e.container(
            "gpu",
            &[
                "sh",
                "-c",
                "stat -c '%t:%T' /dev/fakegpu0 /dev/fakenull; cat /usr/lib/fake/libfake.so.1; \
                 echo env $FAKE_GPU $FAKE_DRIVER $NIC; cat /tmp/started; echo x > /dev/fakenull && echo wrote",
            ],
        ),
        &["test.berth.dev/gpu=0"],
    );
    c.annotations = HashMap::from([("cdi.k8s.io/test_nic".to_string(), "test.berth.dev/nic=eth".to_string())]);
    let id = e.create(&pod, c).await.expect("create with CDI devices");
    let created = std::fs::read_to_string(t.join("created.json")).expect("createRuntime hook ran");
    assert!(created.contains(&id), "hook state names the container: {created}");
    e.start(&id).await;
    let st = e.wait_exit(&id).await;
    let log = std::fs::read_to_string(Path::new(&pod.1.log_directory).join("gpu.log")).expect("log");
    assert_eq!(st.exit_code, 0, "{log}");
    for want in [
        "f1:7",
        "1:3",
        "fake-driver-library",
        "env 0 yes eth",
        "hook-was-here",
        "wrote",
    ] {
        assert!(log.contains(want), "{want:?} missing from:\n{log}");
    }
    remove(&mut e, &id).await;
    eventually(10, "poststop hook", || t.join("stopped.json").exists()).await;

    // Bad requests fail cleanly with InvalidArgument naming the device.
    let cases = [
        (vec!["test.berth.dev/gpu=9"], "test.berth.dev/gpu=9"),
        (vec!["gpu9"], "gpu9"),
        (vec!["test.berth.dev/gpu=0", "test.berth.dev/gpu=1"], "FAKE_GPU"),
    ];
    for (i, (devices, named)) in cases.iter().enumerate() {
        let c = with_cdi(e.container(&format!("bad{i}"), &["true"]), devices);
        let err = e.create(&pod, c).await.expect_err("bad CDI request");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(named), "{named}: {}", err.message());
    }
    let listed = e.containers().await;
    assert!(listed.is_empty(), "failed creates left containers: {listed:?}");

    // A spec added while berthd runs is used without a restart; `=all` expands a kind.
    write(
        &t.join("cdi-etc/late.json"),
        r#"{"cdiVersion":"0.6.0","kind":"test.berth.dev/late","devices":[
            {"name":"a","containerEdits":{"env":["LATE_A=1"]}},
            {"name":"b","containerEdits":{"env":["LATE_B=2"]}}]}"#,
    );
    let c = with_cdi(
        e.container("late", &["sh", "-c", "echo late $LATE_A $LATE_B"]),
        &["test.berth.dev/late=all"],
    );
    let (code, _, log) = e.run_to_exit(&pod, c).await;
    assert_eq!(code, 0);
    assert!(log.contains("late 1 2"), "{log}");
}

fn host_elf_library() -> PathBuf {
    [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .map(|p| std::fs::canonicalize(p).expect("canonicalize"))
    .expect("the host's libz.so.1 (a real ELF library for ldconfig)")
}

#[tokio::test]
async fn nvidia_discovery_over_a_fake_driver_gives_all_gpus() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let dev = t.join("nvroot/dev");
    mknod(&dev.join("nvidia0"), 195, 0);
    mknod(&dev.join("nvidia1"), 195, 1);
    mknod(&dev.join("nvidiactl"), 195, 255);
    mknod(&dev.join("nvidia-uvm"), 237, 0);
    let libdir = t.join("nvdriver/usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).expect("mkdir");
    std::fs::copy(host_elf_library(), libdir.join("libcuda.so.535.104.05")).expect("copy lib");
    std::fs::copy(host_elf_library(), libdir.join("libnvidia-ml.so.535.104.05")).expect("copy lib");
    write(&libdir.join("libunrelated.so.1"), "not a driver library");
    let smi = t.join("nvdriver/usr/bin/nvidia-smi");
    write(
        &smi,
        "#!/bin/sh\necho 'GPU 0: NVIDIA Fake 80GB (UUID: GPU-11111111-2222-3333-4444-555555555555)'\n\
         echo 'GPU 1: NVIDIA Fake 80GB (UUID: GPU-66666666-7777-8888-9999-000000000000)'\n",
    );
    Command::new("chmod").arg("755").arg(&smi).status().expect("chmod");

    let mut e = env_with(None, Some(config(t, true))).await;
    let generated = t.join("cdi-run/berth-nvidia.json");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&generated).expect("discovery wrote a spec")).expect("json");
    assert_eq!(spec["kind"], "nvidia.com/gpu");
    let names: Vec<&str> = spec["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    for want in ["0", "1", "all", "GPU-11111111-2222-3333-4444-555555555555"] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let text = spec.to_string();
    assert!(!text.contains("libunrelated"), "{text}");

    let pod = e.pod("gpu").await;
    let c = with_cdi(
        e.container(
            "smi",
            &[
                "sh",
                "-c",
                "stat -c '%n %t:%T' /dev/nvidia0 /dev/nvidia1 /dev/nvidiactl; \
                 ls /usr/lib/x86_64-linux-gnu/; echo visible=$NVIDIA_VISIBLE_DEVICES; \
                 test -x /usr/bin/nvidia-smi && echo smi-present; \
                 grep -c /usr/lib/x86_64-linux-gnu /etc/ld.so.cache",
            ],
        ),
        &["nvidia.com/gpu=all"],
    );
    let (code, _, log) = e.run_to_exit(&pod, c).await;
    assert_eq!(code, 0, "{log}");
    for want in [
        "/dev/nvidia0 c3:0",
        "/dev/nvidia1 c3:1",
        "/dev/nvidiactl c3:ff",
        "libcuda.so.535.104.05",
        "libnvidia-ml.so.535.104.05",
        "visible=void",
        "smi-present",
    ] {
        assert!(log.contains(want), "{want:?} missing from:\n{log}");
    }
    assert!(!log.contains("libunrelated"), "{log}");
    // The ldcache hook ran: the container's ld.so.cache lists the mounted driver directory.
    let hits: u32 = log
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(hits >= 1, "ld.so.cache does not name the driver dir: {log}");

    // One GPU by index: only its node.
    let c = with_cdi(
        e.container("one", &["sh", "-c", "ls /dev/nvidia0 /dev/nvidia1"]),
        &["nvidia.com/gpu=1"],
    );
    let (code, _, log) = e.run_to_exit(&pod, c).await;
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("/dev/nvidia1") && log.contains("nvidia0: No such file"),
        "{log}"
    );

    // `berthctl run --gpus` maps onto the same CDI devices; the exit code comes back.
    let ctl = berth_e2e::berthd::berthd_binary()
        .expect("berthd")
        .with_file_name("berthctl");
    let run = |extra: &[&str], script: &str| {
        let out = Command::new(&ctl)
            .args(["-r", &e.berthd.endpoint(), "run", "--rm"])
            .args(extra)
            .args([e.image.as_str(), "sh", "-c", script])
            .output()
            .expect("berthctl run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["--gpus", "all"], "ls /dev/nvidia0 /dev/nvidia1; exit 3");
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains("/dev/nvidia0") && out.contains("/dev/nvidia1"),
        "{out}{err}"
    );
    let (code, out, err) = run(&["--gpus", "device=1"], "ls /dev/nvidia*");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("/dev/nvidia1") && !out.contains("/dev/nvidia0"),
        "{out}{err}"
    );
    let (code, _, err) = run(&["--gpus", "device=7"], "true");
    assert_eq!(code, Some(1));
    assert!(err.contains("nvidia.com/gpu=7"), "{err}");

    // The command regenerates it on demand.
    std::fs::remove_file(&generated).expect("rm");
    let out = Command::new(berth_e2e::berthd::berthd_binary().expect("berthd"))
        .arg("--config")
        .arg(e.berthd.dir().join("berthd.toml"))
        .args(["cdi", "generate-nvidia"])
        .output()
        .expect("berthd cdi generate-nvidia");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 GPU(s)"));
    assert!(generated.exists());
}
