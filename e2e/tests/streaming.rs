//! Exec, attach and port-forward through Berth's streaming server, driven by the real
//! crictl (Kubernetes' own SPDY and WebSocket clients) over both transports.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::cri::v1 as cri;
use berth_e2e::workload::{env, Env};
use tonic::Code;

/// crictl: `$CRICTL`, else the conformance kit's beside the checkout, else PATH.
fn crictl_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CRICTL") {
        return p.into();
    }
    let kit = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/critest/bin/crictl");
    if kit.is_file() {
        return kit;
    }
    PathBuf::from("crictl")
}

fn crictl(e: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(crictl_binary());
    c.arg("--runtime-endpoint")
        .arg(e.berthd.endpoint())
        .arg("--timeout")
        .arg("20s")
        .args(args);
    c
}

/// Runs crictl with `input` on stdin; (exit code, stdout, stderr).
fn run_crictl(e: &Env, args: &[&str], input: Option<&[u8]>) -> (i32, String, String) {
    let mut c = crictl(e, args);
    c.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn crictl");
    if let Some(data) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(data).expect("write stdin");
    }
    let out = wait_output(child, Duration::from_secs(60));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for a child, killing it (by its pid) if it overruns.
fn wait_output(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "crictl did not finish in {limit:?}: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn running(e: &mut Env, pod: &(String, cri::PodSandboxConfig), name: &str, cmd: &[&str]) -> String {
    let id = e.create(pod, e.container(name, cmd)).await.expect("create");
    e.start(&id).await;
    id
}

#[tokio::test]
async fn exec_over_spdy_and_websocket() {
    let mut e = env(None).await;
    let pod = e.pod("exec").await;
    let id = running(&mut e, &pod, "sleeper", &["sleep", "3600"]).await;
    for transport in ["spdy", "websocket"] {
        let (code, out, err) = run_crictl(
            &e,
            &[
                "exec",
                "--transport",
                transport,
                &id,
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            None,
        );
        // crictl exits 1 and names the command's exit code.
        assert_eq!(code, 1, "{transport}: exit code; stdout {out:?} stderr {err:?}");
        assert!(err.contains("exit code 3"), "{transport}: {err:?}");
        assert_eq!(out.trim(), "out", "{transport}: stdout");
        assert!(err.contains("err"), "{transport}: stderr {err:?}");

        let (code, out, err) = run_crictl(&e, &["exec", "--transport", transport, &id, "true"], None);
        assert_eq!((code, out.as_str()), (0, ""), "{transport}: {err}");

        // Stdin reaches the process and its end closes the process's stdin.
        let payload: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        let (code, out, err) = run_crictl(
            &e,
            &["exec", "-i", "--transport", transport, &id, "sh", "-c", "wc -c"],
            Some(&payload),
        );
        assert_eq!(code, 0, "{transport}: {err}");
        assert_eq!(
            out.trim(),
            payload.len().to_string(),
            "{transport}: bytes through stdin"
        );

        // A tty: the process sees a terminal (resized to crictl's own terminal once the
        // client sends its size, hence the pause), output
        // comes back merged. crictl wants a terminal of its own for -t: `script` gives it one.
        let inner = format!(
            "stty cols 123 rows 45; {} --runtime-endpoint {} exec -i -t --transport {transport} {id} sh -c 'test -t 0 && echo is-a-tty; sleep 1; stty size; echo e >&2'",
            crictl_binary().display(),
            e.berthd.endpoint()
        );
        let out = wait_output(
            Command::new("script")
                .args(["-q", "-e", "-c", &inner, "/dev/null"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("script"),
            Duration::from_secs(60),
        );
        let (code, out, err) = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(code, 0, "{transport}: {out:?} {err:?}");
        assert!(out.contains("is-a-tty"), "{transport}: {out:?}");
        assert!(
            out.contains("45 123"),
            "{transport}: the terminal size reached the exec: {out:?}"
        );
        assert!(
            out.contains("\ne\r"),
            "{transport}: stderr merged into the tty: {out:?}"
        );
    }
}

#[tokio::test]
async fn exec_and_attach_requests_are_checked() {
    let mut e = env(None).await;
    let pod = e.pod("checks").await;
    let id = running(&mut e, &pod, "sleeper", &["sleep", "3600"]).await;
    let exec = |cmd: Vec<String>, stdout: bool, stderr: bool, tty: bool| cri::ExecRequest {
        container_id: id.clone(),
        cmd,
        tty,
        stdin: false,
        stdout,
        stderr,
    };
    let err = e
        .cri
        .runtime
        .exec(exec(vec![], true, false, false))
        .await
        .expect_err("no cmd");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = e
        .cri
        .runtime
        .exec(exec(vec!["ls".into()], false, false, false))
        .await
        .expect_err("no streams");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = e
        .cri
        .runtime
        .exec(exec(vec!["ls".into()], true, true, true))
        .await
        .expect_err("tty+stderr");
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut missing = exec(vec!["ls".into()], true, false, false);
    missing.container_id = "0123456789abcdef".into();
    assert_eq!(
        e.cri.runtime.exec(missing).await.expect_err("missing").code(),
        Code::NotFound
    );

    // A URL works once; a plain GET (no upgrade) is refused and uses it up.
    let url = e
        .cri
        .runtime
        .exec(exec(vec!["ls".into()], true, false, false))
        .await
        .expect("exec")
        .into_inner()
        .url;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = berth_e2e::http_client();
    let first = http.get(&url).send().await.expect("get");
    assert_eq!(first.status().as_u16(), 400);
    let again = http.get(&url).send().await.expect("get");
    assert_eq!(again.status().as_u16(), 404, "a token works once");
    let base = url.rsplit_once('/').expect("token").0;
    let unknown = http.get(format!("{base}/not-a-token")).send().await.expect("get");
    assert_eq!(unknown.status().as_u16(), 404);

    // Attach to a container without stdin asks for stdin: refused.
    let attach = cri::AttachRequest {
        container_id: id.clone(),
        stdin: true,
        tty: false,
        stdout: true,
        stderr: true,
    };
    assert_eq!(
        e.cri.runtime.attach(attach).await.expect_err("no stdin").code(),
        Code::FailedPrecondition
    );

    // A stopped container cannot be exec'd into.
    e.cri
        .runtime
        .stop_container(cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .expect("stop");
    let err = e
        .cri
        .runtime
        .exec(exec(vec!["ls".into()], true, false, false))
        .await
        .expect_err("stopped");
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Port-forward needs a valid port and a ready pod.
    let pf = |port: Vec<i32>| cri::PortForwardRequest {
        pod_sandbox_id: pod.0.clone(),
        port,
    };
    assert_eq!(
        e.cri
            .runtime
            .port_forward(pf(vec![70000]))
            .await
            .expect_err("port")
            .code(),
        Code::InvalidArgument
    );
    assert!(e.cri.runtime.port_forward(pf(vec![80])).await.is_ok());
}

/// The container's processes, by ExecSync.
async fn ps(e: &mut Env, id: &str) -> String {
    let r = e
        .cri
        .runtime
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["ps".into(), "-o".into(), "args".into()],
            timeout: 10,
        })
        .await
        .expect("ps")
        .into_inner();
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_no_process() {
    let mut e = env(None).await;
    let pod = e.pod("gone").await;
    let id = running(&mut e, &pod, "sleeper", &["sleep", "3600"]).await;
    let mut child = crictl(&e, &["exec", &id, "sh", "-c", "echo started; exec sleep 777"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("crictl");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 8];
    stdout.read_exact(&mut first).expect("started");
    assert!(ps(&mut e, &id).await.contains("sleep 777"), "the exec runs");
    child.kill().expect("kill crictl");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ps(&mut e, &id).await.contains("sleep 777") {
        assert!(Instant::now() < deadline, "the exec outlived its client");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leftovers: Vec<_> = std::fs::read_dir(e.berthd.state().join("containers").join(&id))
        .expect("bundle")
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with("stream-exec-"))
        .collect();
    assert!(leftovers.is_empty(), "exec files left behind: {leftovers:?}");
}

#[tokio::test]
async fn attach_reaches_the_container_console() {
    let mut e = env(None).await;
    let pod = e.pod("attach").await;
    for transport in ["spdy", "websocket"] {
        let name = format!("reader-{transport}");
        let mut config = e.container(&name, &["sh", "-c", "echo ready; read line; echo got:$line; exit 4"]);
        config.stdin = true;
        config.stdin_once = true;
        let id = e.create(&pod, config).await.expect("create");
        e.start(&id).await;
        let mut child = crictl(&e, &["attach", "-i", "--transport", transport, &id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("crictl attach");
        // Output written from now on is seen live.
        std::thread::sleep(Duration::from_millis(500));
        let written = child.stdin.as_mut().expect("stdin").write_all(b"hello\n");
        drop(child.stdin.take());
        let out = wait_output(child, Duration::from_secs(30));
        let text = String::from_utf8_lossy(&out.stdout);
        let shim_log = std::fs::read_to_string(e.berthd.state().join("containers").join(&id).join("shim.log"));
        assert!(
            written.is_ok() && text.contains("got:hello"),
            "{transport}: {written:?} {text:?} {:?}\nshim log: {shim_log:?}\nberthd log: {}",
            String::from_utf8_lossy(&out.stderr),
            e.berthd.log()
        );
        let st = e.wait_exit(&id).await;
        assert_eq!(st.exit_code, 4, "{transport}");
    }
}

#[tokio::test]
async fn port_forward_reaches_the_pod_loopback() {
    let mut e = env(None).await;
    let pod = e.pod("forward").await;
    let _server = running(
        &mut e,
        &pod,
        "server",
        &["sh", "-c", "while true; do echo pong | nc -l -p 8080; done"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for transport in ["spdy", "websocket"] {
        let local = berth_e2e::free_port();
        let mut child = crictl(
            &e,
            &[
                "port-forward",
                "--transport",
                transport,
                &pod.0,
                &format!("{local}:8080"),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crictl port-forward");
        let deadline = Instant::now() + Duration::from_secs(15);
        let reply = loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", local)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if !buf.is_empty() {
                    break buf;
                }
            }
            assert!(Instant::now() < deadline, "{transport}: no reply through the forward");
            std::thread::sleep(Duration::from_millis(200));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(reply.trim(), "pong", "{transport}");
    }
    // Nothing listens on the host's loopback port 8080 for the pod: the forward really went
    // into the pod's namespace (a host listener would have answered differently).
}

#[tokio::test]
async fn streaming_server_serves_tls_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("s.crt"), dir.path().join("s.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let toml = format!(
        "[streaming]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let mut e = berth_e2e::workload::env_with(None, Some(toml)).await;
    let pod = e.pod("tls").await;
    let id = running(&mut e, &pod, "sleeper", &["sleep", "3600"]).await;
    let url = e
        .cri
        .runtime
        .exec(cri::ExecRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: false,
        })
        .await
        .expect("exec")
        .into_inner()
        .url;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let r = client
        .get(&url)
        .send()
        .await
        .expect("TLS handshake with the streaming server");
    assert_eq!(r.status().as_u16(), 400, "a TLS request without an upgrade is refused");
    // crictl runs an exec over the TLS streaming server (SPDY inside TLS).
    let (code, out, err) = run_crictl(&e, &["exec", &id, "echo", "over-tls"], None);
    assert_eq!((code, out.trim()), (0, "over-tls"), "{err}");
}
