//! A containerd shim v2 behind a runtime handler, end to end: Debian's
//! `containerd-shim-runc-v2` (package `containerd`; containerd itself is not running)
//! behind the default config's `runc-shim-v2` handler, a real registry, CNI, cgroups.
//! The pod's containers are created, started, signalled, waited for and deleted through
//! the shim's Task API over ttrpc; one shim process serves the whole pod; the containers
//! serve through the pod IP, answer ExecSync, write CRI logs, take resource updates; berthd
//! can be killed and restarted under them; removal leaves no shim, container process,
//! FIFO, mount or runc state.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::pod;
use berth_e2e::probe::{processes_with, wait_http};
use berth_e2e::workload::env;

const HANDLER: &str = "runc-shim-v2";
const SHIM: &str = "containerd-shim-runc-v2";
/// Where containerd-shim-runc-v2 keeps runc's state for Berth's namespace.
const RUNC_ROOT: &str = "/run/containerd/runc/berth";

/// The shim v2 processes this berthd started (their `-address` is its events socket).
fn shims_of(state: &Path) -> Vec<(u32, String)> {
    let events = state.join("shim-events.sock").display().to_string();
    processes_with(SHIM)
        .into_iter()
        .filter(|(_, cmd)| cmd.split(' ').next().is_some_and(|program| program.ends_with(SHIM)))
        .filter(|(_, cmd)| cmd.contains(&events))
        .collect()
}

#[tokio::test]
async fn a_shim_v2_handler_runs_a_pod() {
    let installed = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {SHIM}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "{SHIM} is not installed (e2e/run.sh installs Debian's containerd)"
    );
    let mut e = env(None).await;
    let status = e.runtime_status().await;
    assert!(
        status.runtime_handlers.iter().any(|h| h.name == HANDLER),
        "the default config offers {HANDLER}: {:?}",
        status.runtime_handlers
    );
    let (pod, ip) = e.pod_on("shim-v2-web", HANDLER).await;
    let pod_id = pod.0.clone();

    let web = e
        .create(
            &pod,
            e.container(
                "web",
                &[
                    "sh",
                    "-c",
                    "mkdir -p /www && echo served-by-shim-v2 > /www/index.html && echo web-started && exec httpd -f -p 8080 -h /www",
                ],
            ),
        )
        .await
        .expect("create web");
    e.start(&web).await;
    let side = e
        .create(
            &pod,
            e.container(
                "side",
                &["sh", "-c", "echo side-started; echo side-err >&2; exec sleep 100000"],
            ),
        )
        .await
        .expect("create side");
    e.start(&side).await;
    let state = e.berthd.state().to_path_buf();
    // One shim process serves the pod (containerd-shim-runc-v2 groups by the pod id).
    let shims = shims_of(&state);
    assert_eq!(shims.len(), 1, "one shim v2 for the pod: {shims:?}");
    let shim_pid = shims[0].0;
    assert!(
        Path::new(RUNC_ROOT).join(&web).is_dir(),
        "runc state of the shim v2's container"
    );

    assert_eq!(wait_http(&ip, 8080, "/index.html").await.trim(), "served-by-shim-v2");
    // ExecSync through the Task API: output, stderr and exit code, the container's view.
    let r = e.exec(&web, &["cat", "/www/index.html"], 10).await.expect("exec");
    assert_eq!(
        (r.exit_code, String::from_utf8_lossy(&r.stdout).trim()),
        (0, "served-by-shim-v2")
    );
    // Past its timeout: answered at the timeout, its process killed.
    e.assert_exec_sync(&side, "sleep 100000").await;
    // Interactive exec (the streaming server): run by the container's berth-shim through
    // the shim v2, stdin in, both outputs and the exit status out.
    let endpoint = e.berthd.endpoint();
    let out = berth_e2e::ctl::berthctl(
        &endpoint,
        &["exec", "-i", &side, "sh", "-c", "cat; echo out; echo err >&2; exit 3"],
        Some("through stdin\n"),
    )
    .expect("berthctl exec");
    assert!(!out.ok, "exit 3 is a failure: {}", out.stderr);
    assert_eq!(out.stdout, "through stdin\nout\n", "stderr: {}", out.stderr);
    assert!(out.stderr.contains("err"), "{}", out.stderr);
    let out = berth_e2e::ctl::berthctl(
        &endpoint,
        &[
            "exec",
            "-t",
            &side,
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo on-a-terminal",
        ],
        None,
    )
    .expect("berthctl exec -t");
    assert!(out.ok && out.stdout.contains("on-a-terminal"), "{out:?}");
    // CRI logs, both streams, read from the shim v2's FIFOs.
    let log_of = |name: &str| std::fs::read_to_string(Path::new(&pod.1.log_directory).join(format!("{name}.log")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_of("side").unwrap_or_default().contains("stderr F side-err") {
        assert!(Instant::now() < deadline, "side's log: {:?}", log_of("side"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log_of("side").unwrap_or_default().contains("stdout F side-started"));
    assert!(log_of("web").unwrap_or_default().contains("stdout F web-started"));
    // A resource update goes through the shim v2's Update.
    let req = cri::UpdateContainerResourcesRequest {
        container_id: side.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 96 << 20,
            ..Default::default()
        }),
        ..Default::default()
    };
    e.cri.runtime.update_container_resources(req).await.expect("update");
    assert_eq!(e.memory_limit(&side).await, (96u64 << 20).to_string());

    // berthd killed and restarted: the pod keeps serving and stays controllable.
    e.kill9_restart().await;
    assert_eq!(wait_http(&ip, 8080, "/index.html").await.trim(), "served-by-shim-v2");
    let r = e
        .exec(&web, &["cat", "/www/index.html"], 10)
        .await
        .expect("exec after restart");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "served-by-shim-v2");

    // A container stopped alone reports its own exit; the pod keeps serving.
    e.stop(&side, 2).await;
    let st = e.wait_exit(&side).await;
    assert!([137, 143].contains(&st.exit_code), "{st:?}");
    assert_eq!(wait_http(&ip, 8080, "/index.html").await.trim(), "served-by-shim-v2");
    // Its exit came through the shim v2's Wait; the container's processes are gone.
    assert!(processes_with("sleep 100000")
        .iter()
        .all(|(_, c)| !c.starts_with("sleep")));
    // The container whose task directory the shim v2 started in goes first; the shim v2
    // keeps serving the other one.
    let address = std::fs::read_to_string(state.join("containers").join(&web).join("task/address"))
        .expect("the shim v2's address");
    let socket = address.trim().trim_start_matches("unix://").to_string();
    e.stop(&web, 2).await;
    e.cri
        .runtime
        .remove_container(cri::RemoveContainerRequest {
            container_id: web.clone(),
        })
        .await
        .expect("remove web");
    assert!(
        !Path::new(RUNC_ROOT).join(&web).exists(),
        "runc state of a removed container"
    );
    assert!(
        Path::new(&format!("/proc/{shim_pid}")).exists(),
        "the shim v2 still serves the pod's other container"
    );
    let r = e.cri.runtime.container_status(cri::ContainerStatusRequest {
        container_id: side.clone(),
        verbose: false,
    });
    assert!(r.await.is_ok(), "the other container is still known");

    pod::stop_remove(&mut e.cri, &pod_id).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{shim_pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "the shim v2 {shim_pid} still runs after the pod's removal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shims_of(&state).is_empty(), "shims v2 left: {:?}", shims_of(&state));
    assert!(!Path::new(&socket).exists(), "the shim v2's socket {socket} left");
    for id in [&web, &side] {
        assert!(!Path::new(RUNC_ROOT).join(id).exists(), "runc state of {id} left");
        let left = processes_with(id);
        assert!(left.is_empty(), "processes of {id} left: {left:?}");
        assert!(
            !state.join("containers").join(id).exists(),
            "bundle (FIFOs) of {id} left"
        );
    }
    let state_s = state.to_string_lossy().into_owned();
    let mounts: Vec<_> = pod::mounts()
        .into_iter()
        .filter(|m| m.to_string_lossy().starts_with(&state_s))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
}
