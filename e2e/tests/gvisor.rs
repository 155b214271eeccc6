//! gVisor pods end to end: Debian's `runsc` behind the default config's `runsc` handler, a
//! real registry, CNI, cgroups. A pod's containers run in one gVisor sandbox (one Sentry
//! process), serve through the pod IP, answer exec and write CRI logs; berthd can be
//! killed and restarted under them; removal leaves no sandbox, shim, mount or runtime state.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::pod::{self, pod_config};
use berth_e2e::workload::{env, Env};

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// `runsc list` of the handler's state root: (id, pid) of every container runsc knows.
fn runsc_list(e: &Env) -> Vec<(String, u64)> {
    let root = e.berthd.state().join("runtimes").join("runsc");
    let out = std::process::Command::new("runsc")
        .arg("--root")
        .arg(&root)
        .args(["list", "--format", "json"])
        .output()
        .expect("runsc list");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or("").to_string(),
                        c["pid"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One HTTP GET of `path` from `ip:port`; the body.
fn http_get(ip: &str, port: u16, path: &str) -> std::io::Result<String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&format!("{ip}:{port}").parse().expect("addr"), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

async fn wait_http(ip: &str, port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(ip, port, path) {
            Ok(body) if !body.is_empty() => return body,
            other => assert!(Instant::now() < deadline, "no answer from {ip}:{port}{path}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_gvisor_pod_runs_its_containers_in_one_sandbox() {
    assert!(
        std::process::Command::new("runsc").arg("--version").output().is_ok(),
        "runsc is not installed (e2e/run.sh installs Debian's runsc)"
    );
    let mut e = env(None).await;
    let status = e.runtime_status().await;
    assert!(
        status.runtime_handlers.iter().any(|h| h.name == "runsc"),
        "the default config offers runsc: {:?}",
        status.runtime_handlers
    );
    let mut config = pod_config("gvisor-web");
    config.log_directory = e.logs.path().join("gvisor-web").display().to_string();
    let req = cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: "runsc".into(),
    };
    let pod_id = e
        .cri
        .runtime
        .run_pod_sandbox(req)
        .await
        .expect("run a gVisor pod")
        .into_inner()
        .pod_sandbox_id;
    let pod = (pod_id.clone(), config);
    let (st, _) = pod::status(&mut e.cri, &pod_id).await.expect("pod status");
    let ip = st.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
    assert!(!ip.is_empty(), "the pod has an IP: {st:?}");

    let web = e
        .create(
            &pod,
            e.container(
                "web",
                &[
                    "sh",
                    "-c",
                    "mkdir -p /www && echo served-by-gvisor > /www/index.html && echo web-started && exec httpd -f -p 80 -h /www",
                ],
            ),
        )
        .await
        .expect("create web");
    e.start(&web).await;
    let side = e
        .create(
            &pod,
            e.container("side", &["sh", "-c", "echo side-started; exec sleep 100000"]),
        )
        .await
        .expect("create side");
    e.start(&side).await;

    // Served through the pod IP from the host, on a port below 1024 (the Sentry binds it
    // on the host stack in the pod's namespace).
    assert_eq!(wait_http(&ip, 80, "/index.html").await.trim(), "served-by-gvisor");
    // Exec runs inside gVisor's kernel, not the host's.
    let uname = std::process::Command::new("uname").arg("-r").output().expect("uname");
    let host_kernel = String::from_utf8_lossy(&uname.stdout).trim().to_string();
    let r = e.exec(&web, &["busybox", "uname", "-r"], 10).await.expect("exec");
    assert_eq!(r.exit_code, 0, "{r:?}");
    let kernel = String::from_utf8_lossy(&r.stdout).trim().to_string();
    assert!(
        !kernel.is_empty() && kernel != host_kernel,
        "gVisor kernel {kernel:?}, host {host_kernel:?}"
    );
    let r = e
        .exec(&side, &["sh", "-c", "echo to-stderr >&2; exit 4"], 10)
        .await
        .expect("exec");
    assert_eq!(
        (r.exit_code, String::from_utf8_lossy(&r.stderr).trim()),
        (4, "to-stderr")
    );
    // An exec past its timeout is answered at the timeout and its process is gone from the
    // sandbox (killing runsc's exec process alone would leave it running there).
    let started = Instant::now();
    let err = e
        .exec(&side, &["sleep", "4321"], 1)
        .await
        .expect_err("past its timeout");
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}",
        started.elapsed()
    );
    let r = e.exec(&side, &["ps", "-o", "args"], 10).await.expect("ps");
    let ps = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(ps.contains("sleep 100000") && !ps.contains("sleep 4321"), "{ps}");
    // One sandbox for the pod: runsc lists the pod's sandbox container and both containers
    // with one and the same (Sentry) pid.
    let listed = runsc_list(&e);
    let pids: Vec<u64> = [&pod_id, &web, &side]
        .iter()
        .map(|id| {
            listed
                .iter()
                .find(|(i, _)| i == *id)
                .unwrap_or_else(|| panic!("runsc does not list {id}: {listed:?}"))
                .1
        })
        .collect();
    assert!(pids[0] > 0 && pids.iter().all(|p| *p == pids[0]), "{listed:?}");
    // CRI logs.
    let log_of = |name: &str| std::fs::read_to_string(Path::new(&pod.1.log_directory).join(format!("{name}.log")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_of("side").unwrap_or_default().contains("stdout F side-started") {
        assert!(Instant::now() < deadline, "side's log: {:?}", log_of("side"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log_of("web").unwrap_or_default().contains("stdout F web-started"));

    // berthd killed and restarted: the pod keeps serving and stays controllable.
    e.berthd.kill9();
    e.berthd.restart().await.expect("restart berthd");
    e.cri = berth_e2e::cri::Cri::connect(e.berthd.socket())
        .await
        .expect("reconnect");
    assert_eq!(wait_http(&ip, 80, "/index.html").await.trim(), "served-by-gvisor");
    let r = e
        .exec(&web, &["cat", "/www/index.html"], 10)
        .await
        .expect("exec after restart");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "served-by-gvisor");

    // A container stopped alone reports its own exit; the pod keeps running.
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: side.clone(),
            timeout: 2,
        })
        .await
        .expect("stop side");
    let st = e.wait_exit(&side).await;
    // SIGTERM (143), or SIGKILL after the grace period where sleep is its PID 1 (137).
    assert!([137, 143].contains(&st.exit_code), "{st:?}");
    assert_eq!(wait_http(&ip, 80, "/index.html").await.trim(), "served-by-gvisor");

    let sandbox_pid = pids[0];
    pod::stop_remove(&mut e.cri, &pod_id).await;
    assert!(runsc_list(&e).is_empty(), "runsc state left: {:?}", runsc_list(&e));
    assert!(
        !Path::new(&format!("/proc/{sandbox_pid}")).exists(),
        "the gVisor sandbox {sandbox_pid} still runs"
    );
    let left = processes_with(&pod_id);
    assert!(left.is_empty(), "processes of the pod left: {left:?}");
    let state = e.berthd.state().to_string_lossy().into_owned();
    let mounts: Vec<_> = pod::mounts()
        .into_iter()
        .filter(|m| m.to_string_lossy().starts_with(&state))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(!e.berthd.state().join("sandboxes").join(&pod_id).exists());
}
