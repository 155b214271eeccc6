//! `berthctl` against a real berthd: the crictl-style commands, the Docker-style `run`
//! family, exec/attach/port-forward over the streaming server, and table snapshots
//! (`e2e/berthctl/snapshots/*.txt`, compared after masking ids, times and addresses).

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::workload::{env, Env};

fn cmd(e: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(berth_e2e::ctl::berthctl_binary().expect("berthctl binary"));
    c.arg("-r").arg(e.berthd.endpoint()).args(args);
    c
}

/// Runs berthctl with `input` on stdin: (exit code, stdout, stderr). Killed (by pid) after 60 s.
fn ctl_in(e: &Env, args: &[&str], input: Option<&[u8]>) -> (i32, String, String) {
    let mut c = cmd(e, args);
    c.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn berthctl");
    if let Some(data) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(data).expect("write stdin");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("berthctl {args:?} hung: {:?}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl(e: &Env, args: &[&str]) -> (i32, String, String) {
    ctl_in(e, args, None)
}

/// Runs berthctl and insists on exit 0; its stdout.
fn ok(e: &Env, args: &[&str]) -> String {
    let (code, out, err) = ctl(e, args);
    assert_eq!(code, 0, "berthctl {args:?} failed: {err}\nstdout: {out}");
    out
}

fn json(e: &Env, args: &[&str]) -> serde_json::Value {
    let out = ok(e, args);
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("berthctl {args:?}: not JSON ({err}): {out}"))
}

/// Splits a table into cells (columns are 3+ spaces apart), checking that every cell starts
/// where its header does, then masks ids, times and `replace` pairs.
fn masked_table(table: &str, replace: &[(&str, &str)]) -> String {
    let mut lines = table.lines();
    let header = lines.next().expect("header");
    let starts: Vec<usize> = cell_starts(header);
    let mut out = Vec::new();
    for line in std::iter::once(header).chain(lines) {
        let cells = cell_starts(line);
        for s in &cells {
            assert!(
                starts.contains(s),
                "misaligned cell at {s} in {line:?} (header {header:?})"
            );
        }
        let mut masked = Vec::new();
        for (i, s) in cells.iter().enumerate() {
            let end = cells.get(i + 1).copied().unwrap_or(line.len());
            let mut cell = line[*s..end].trim().to_string();
            for (from, to) in replace {
                cell = cell.replace(from, to);
            }
            masked.push(mask_cell(&cell));
        }
        out.push(masked.join(" | "));
    }
    out.join("\n") + "\n"
}

fn cell_starts(line: &str) -> Vec<usize> {
    let b = line.as_bytes();
    let mut starts = vec![0];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            let run = b[i..].iter().take_while(|c| **c == b' ').count();
            if run >= 3 && i + run < b.len() {
                starts.push(i + run);
            }
            i += run;
        } else {
            i += 1;
        }
    }
    starts
}

fn mask_cell(cell: &str) -> String {
    if cell.len() == 13 && cell.bytes().all(|c| c.is_ascii_hexdigit()) {
        return "<ID>".into();
    }
    if cell.ends_with(" ago") {
        return match cell.strip_prefix("Exited (") {
            Some(rest) => format!("Exited ({} <AGO>", rest.split(')').next().unwrap_or("")) + ")",
            None => "<AGO>".into(),
        };
    }
    if cell.starts_with("Up ") {
        return "Up <DURATION>".into();
    }
    cell.to_string()
}

fn snapshot(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("berthctl/snapshots")
        .join(name);
    if std::env::var_os("BERTH_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, got).expect("write snapshot");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing snapshot {}", path.display()));
    assert_eq!(got, want, "table differs from {}", path.display());
}

fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn masking_keeps_alignment_honest() {
    let t = "A     B\nabc   x\n";
    assert_eq!(masked_table(t, &[]), "A | B\nabc | x\n");
    let bad = std::panic::catch_unwind(|| masked_table("A     B\nabcd   x\n", &[]));
    assert!(bad.is_err());
    assert_eq!(mask_cell("Exited (3) 2 minutes ago"), "Exited (3 <AGO>)");
    assert_eq!(mask_cell("0123456789abc"), "<ID>");
}

#[tokio::test(flavor = "multi_thread")]
async fn crictl_style_pods_and_containers() {
    let e = env(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = e.logs.path().join("ctl");
    std::fs::write(
        dir.path().join("pod.json"),
        serde_json::json!({
            "metadata": {"name": "ctlpod", "namespace": "e2e", "uid": "uid-ctlpod"},
            "logDirectory": logs.display().to_string(),
            "labels": {"app": "ctl"},
            "linux": {"security_context": {"namespace_options": {"pid": "CONTAINER"}}}
        })
        .to_string(),
    )
    .expect("pod.json");
    std::fs::write(
        dir.path().join("ctr.yaml"),
        format!(
            "metadata:\n  name: sleeper\nimage:\n  image: {}\ncommand: [sh, -c, 'echo started; echo warn >&2; exec sleep 300']\nlog_path: sleeper.log\nlabels:\n  role: test\n",
            e.image
        ),
    )
    .expect("ctr.yaml");
    let pod_json = dir.path().join("pod.json").display().to_string();
    let ctr_yaml = dir.path().join("ctr.yaml").display().to_string();

    let pod = ok(&e, &["runp", &pod_json]).trim().to_string();
    assert_eq!(pod.len(), 64, "pod id {pod:?}");
    let pods = json(&e, &["pods", "-o", "json"]);
    let item = &pods["items"][0];
    assert_eq!(item["id"], pod.as_str());
    assert_eq!(item["state"], "SANDBOX_READY");
    assert_eq!(item["metadata"]["name"], "ctlpod");
    assert_eq!(ok(&e, &["pods", "-q", "--label", "app=ctl"]).trim(), pod);
    assert_eq!(ok(&e, &["pods", "-q", "--label", "app=other"]).trim(), "");
    let yaml = ok(&e, &["pods", "-o", "yaml"]);
    assert!(
        yaml.contains("name: ctlpod") && yaml.contains("state: SANDBOX_READY"),
        "{yaml}"
    );
    snapshot("pods.txt", &masked_table(&ok(&e, &["pods"]), &[]));
    let inspected = json(&e, &["inspectp", &pod[..8]]);
    assert_eq!(inspected["status"]["id"], pod.as_str());
    assert!(inspected["status"]["network"]["ip"]
        .as_str()
        .is_some_and(|ip| ip.starts_with("10.")));

    // create by pod name, start by id prefix.
    let id = ok(&e, &["create", "ctlpod", &ctr_yaml, &pod_json]).trim().to_string();
    assert_eq!(id.len(), 64);
    let (code, _, err) = ctl(&e, &["ps", "-q"]);
    assert_eq!(code, 0, "{err}");
    ok(&e, &["start", &id[..10]]);
    assert_eq!(ok(&e, &["ps", "-q"]).trim(), id);
    let ps = json(&e, &["ps", "-o", "json"]);
    let c = &ps["containers"][0];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["podSandboxId"], pod.as_str());
    assert_eq!(c["state"], "CONTAINER_RUNNING");
    assert_eq!(c["labels"]["role"], "test");
    assert!(
        c["createdAt"].as_str().is_some_and(|t| t.parse::<i64>().is_ok()),
        "int64 as string: {c}"
    );
    snapshot(
        "ps.txt",
        &masked_table(&ok(&e, &["ps"]), &[(e.image.as_str(), "<IMAGE>")]),
    );

    let inspect = json(&e, &["inspect", "sleeper"]);
    assert_eq!(inspect["status"]["state"], "CONTAINER_RUNNING");
    assert!(inspect["info"]["pid"].as_u64().is_some_and(|p| p > 0), "{inspect}");

    // Logs: stdout and stderr to their own streams, timestamps on request.
    wait_for(10, "the container's first output", || {
        ok(&e, &["logs", "sleeper"]).contains("started")
    });
    let (code, out, err) = ctl(&e, &["logs", "sleeper"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "started\n", "warn\n"));
    let (_, stamped, err) = ctl(&e, &["logs", "-t", "--tail", "1", &id[..12]]);
    assert!(
        stamped.is_empty() && err.ends_with(" warn\n"),
        "the last line is stderr's: {err:?}"
    );
    let stamped = ok(&e, &["logs", "-t", "--tail", "2", &id[..12]]);
    assert!(
        stamped.ends_with(" started\n") && stamped.starts_with("20"),
        "{stamped:?}"
    );
    assert_eq!(
        ok(&e, &["logs", "--since", "2000-01-01T00:00:00Z", "sleeper"]),
        "started\n"
    );
    assert_eq!(ok(&e, &["logs", "--since", "2100-01-01T00:00:00Z", "sleeper"]), "");

    // exec over the WebSocket streaming protocol, and ExecSync.
    let (code, out, _) = ctl(&e, &["exec", "sleeper", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!((code, out.as_str()), (3, "hi\n"));
    let (code, out, err) = ctl(&e, &["exec", "-s", &id, "sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert_eq!((code, out.as_str(), err.as_str()), (4, "out\n", "err\n"));
    let (code, out, _) = ctl_in(&e, &["exec", "-i", "sleeper", "cat"], Some(b"through stdin\n"));
    assert_eq!((code, out.as_str()), (0, "through stdin\n"));
    let (code, _, err) = ctl(&e, &["exec", "sleeper", "/no/such/binary"]);
    assert_ne!(code, 0, "{err}");

    // top: the container's processes from its cgroup.
    let top = ok(&e, &["top", "sleeper"]);
    assert!(top.starts_with("PID") && top.contains("sleep 300"), "{top}");

    // stats and update.
    let stats = json(&e, &["stats", "-o", "json", "sleeper"]);
    assert_eq!(stats["stats"][0]["attributes"]["id"], id.as_str());
    let table = ok(&e, &["stats", "sleeper"]);
    assert!(table.starts_with("CONTAINER") && table.contains("sleeper"), "{table}");
    let statsp = json(&e, &["statsp", "-o", "json"]);
    assert!(statsp["stats"].as_array().is_some_and(|s| !s.is_empty()), "{statsp}");
    ok(&e, &["update", "--memory", "96m", "sleeper"]);
    let inspect = json(&e, &["inspect", "sleeper"]);
    assert_eq!(
        inspect["info"]["spec"]["resources"]["memory_limit_in_bytes"],
        96 << 20,
        "{inspect}"
    );
    let cgroup = inspect["info"]["cgroup"].as_str().expect("cgroup");
    assert_eq!(berth_e2e::workload::cgroup_memory_limit(cgroup), (96 << 20).to_string());

    // Errors people understand.
    let (code, _, err) = ctl(&e, &["inspect", "nosuchthing"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such container: nosuchthing"), "{err}");
    let (code, _, err) = ctl(&e, &["rm", "sleeper"]);
    assert_eq!(code, 1);
    assert!(err.contains("is running") && err.contains("-f"), "{err}");
    let (code, _, err) = ctl(&e, &["kill", "-s", "HUP", "sleeper"]);
    assert_eq!(code, 1);
    assert!(err.contains("only kill"), "{err}");

    ok(&e, &["stop", "-t", "1", "sleeper"]);
    let all = ok(&e, &["ps", "-a"]);
    assert!(all.contains("Exited (137)") || all.contains("Exited (143)"), "{all}");
    assert_eq!(ok(&e, &["ps", "-q"]).trim(), "");
    assert_eq!(ok(&e, &["ps", "-q", "--state", "exited"]).trim(), id);
    ok(&e, &["rm", "sleeper"]);
    assert_eq!(ok(&e, &["ps", "-aq"]).trim(), "");
    let (code, _, err) = ctl(&e, &["rmp", "ctlpod"]);
    assert_eq!(code, 1, "a ready pod needs -f: {err}");
    ok(&e, &["stopp", "ctlpod"]);
    ok(&e, &["rmp", "ctlpod"]);
    assert_eq!(ok(&e, &["pods", "-q"]).trim(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_style_run_ports_volumes_and_cleanup() {
    let e = env(None).await;
    // Foreground: output streamed, exit code passed on, --rm leaves nothing behind.
    let (code, out, err) = ctl(
        &e,
        &["run", "--rm", &e.image, "sh", "-c", "echo hello; echo oops >&2; exit 3"],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (3, "hello\n", "oops\n"));
    assert_eq!(ok(&e, &["pods", "-q"]).trim(), "");

    // As with docker run, flags after the image are the command's, not berthctl's.
    let out = ok(
        &e,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            &e.image,
            "--name",
            "Lulaide",
            "-d",
        ],
    );
    assert_eq!(out, "--name Lulaide -d\n");

    // Bad flags are refused before anything is created.
    let (code, _, err) = ctl(
        &e,
        &["run", "--mount", "type=bind,src=/no/such/dir,dst=/x", &e.image, "true"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = ctl(&e, &["run", "-p", "0:80", &e.image, "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("host port"), "{err}");
    assert_eq!(ok(&e, &["pods", "-q"]).trim(), "");

    // Detached, with a published port, a volume, env, a memory limit and a user.
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("f"), "from-the-host\n").expect("write");
    let env_file = data.path().join("env");
    std::fs::write(&env_file, "# vars\nFROM_FILE=yes\n").expect("env file");
    let host_port = berth_e2e::free_port();
    let publish = format!("{host_port}:8080");
    let volume = format!("{}:/data:ro", data.path().display());
    let script = "cat /data/f; echo A=$A F=$FROM_FILE; id -u; while true; do echo pong | nc -l -p 8080; done";
    let id = ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &publish,
            "-v",
            &volume,
            "-e",
            "A=1",
            "--env-file",
            &env_file.display().to_string(),
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "-u",
            "1000:1000",
            &e.image,
            "sh",
            "-c",
            script,
        ],
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 64, "{id}");
    wait_for(10, "web's output", || ok(&e, &["logs", "web"]).contains("1000"));
    assert_eq!(ok(&e, &["logs", "web"]), "from-the-host\nA=1 F=yes\n1000\n");
    let (code, _, err) = ctl(&e, &["exec", "web", "touch", "/data/new"]);
    assert_ne!(code, 0, "read-only volume: {err}");
    let inspect = json(&e, &["inspect", "web"]);
    let limits = &inspect["info"]["spec"]["resources"];
    assert_eq!(limits["memory_limit_in_bytes"], 64 << 20, "{inspect}");
    assert_eq!(limits["cpu_quota"], 50000);
    let ps = ok(&e, &["ps"]);
    assert!(
        ps.contains(&format!("0.0.0.0:{host_port}->8080/tcp")) && ps.contains("web"),
        "{ps}"
    );

    // hostPort: through the host's address on the pod bridge.
    let pod = json(&e, &["inspectp", "web"]);
    let ip = pod["status"]["network"]["ip"].as_str().expect("pod ip").to_string();
    let gw = format!("{}.1", ip.rsplit_once('.').expect("ip").0);
    let mut got = String::new();
    wait_for(10, "the published port to answer", || {
        got = std::net::TcpStream::connect((gw.as_str(), host_port))
            .ok()
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                Some(buf)
            })
            .unwrap_or_default();
        got.contains("pong")
    });

    // port-forward to the same pod port, through the streaming server.
    let mut pf = cmd(&e, &["port-forward", "web", "0:8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("port-forward");
    let mut line = String::new();
    std::io::BufReader::new(pf.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .strip_prefix("Forwarding from ")
        .and_then(|l| l.split(" -> ").next())
        .unwrap_or_else(|| panic!("port-forward said {line:?}"))
        .to_string();
    // The pod's listener restarts after each connection: retry until one answers.
    let mut answers = Vec::new();
    wait_for(10, "an answer through port-forward", || {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect to the forwarded port");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        n > 0
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(answers.last().map(String::as_str), Some("pong\n"), "{answers:?}");

    // exec's own flags end at the container too.
    assert_eq!(ok(&e, &["exec", "-s", "web", "echo", "-s", "-it", "x"]), "-s -it x\n");

    // kill, then rm removes the container and the pod made for it.
    ok(&e, &["kill", "web"]);
    let all = ok(&e, &["ps", "-a", "--name", "web"]);
    assert!(all.contains("Exited (137)"), "{all}");
    let (code, _, err) = ctl(&e, &["run", "-d", "--name", "web", &e.image, "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("in use"), "{err}");
    ok(&e, &["rm", "web"]);
    assert_eq!(ok(&e, &["pods", "-q"]).trim(), "");
    assert!(!Path::new("/var/log/berth/run/web").exists());

    // rm -f on a running one.
    ok(&e, &["run", "-d", "--name", "sleepy", &e.image, "sleep", "300"]);
    ok(&e, &["rm", "-f", "sleepy"]);
    assert_eq!(ok(&e, &["ps", "-aq"]).trim(), "");
    assert_eq!(ok(&e, &["pods", "-q"]).trim(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn info_version_images_attach_and_completion() {
    let e = env(None).await;
    let info = json(&e, &["info"]);
    let reg = e.image.split('/').next().expect("registry").to_string();
    assert_eq!(
        info["info"]["registries"][&reg]["server"],
        format!("http://{reg}"),
        "{info}"
    );
    assert!(info["info"]["registries"][&reg]["mirrors"].is_array());
    assert!(info["status"]["conditions"].as_array().is_some_and(|c| c.len() == 2));
    assert!(ok(&e, &["version"]).contains("RuntimeName:  berth"));
    let images = json(&e, &["images", "-o", "json"]);
    assert!(
        images["images"][0]["repoTags"][0]
            .as_str()
            .is_some_and(|t| t == e.image),
        "{images}"
    );
    let table = ok(&e, &["images"]);
    assert!(table.starts_with("IMAGE") && table.contains("e2e/busybox"), "{table}");
    let fs = json(&e, &["imagefsinfo"]);
    assert!(fs["imageFilesystems"][0]["usedBytes"]["value"].is_string(), "{fs}");
    let inspecti = json(&e, &["inspecti", &e.image]);
    assert_eq!(inspecti["status"]["repoTags"][0], e.image.as_str());

    // attach: a container reading stdin echoes what arrives; stdin EOF ends it.
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "cat",
            "-i",
            &e.image,
            "sh",
            "-c",
            "read line; echo got:$line; exit 5",
        ],
    );
    let (code, out, err) = ctl_in(&e, &["attach", "-i", "cat"], Some(b"ping\n"));
    assert_eq!(code, 5, "{out} {err}");
    assert_eq!(out, "got:ping\n");
    ok(&e, &["rm", "cat"]);

    // run -i: stdin goes to the container, exit code comes back.
    let (code, out, _) = ctl_in(
        &e,
        &["run", "--rm", "-i", &e.image, "sh", "-c", "cat; exit 2"],
        Some(b"abc\n"),
    );
    assert_eq!((code, out.as_str()), (2, "abc\n"));
    assert_eq!(ok(&e, &["pods", "-q"]).trim(), "");

    let bash = ok(&e, &["completion", "bash"]);
    assert!(bash.contains("complete -F _berthctl berthctl") && bash.contains("port-forward"));
    let fish = ok(&e, &["completion", "fish"]);
    assert!(fish.contains("__fish_seen_subcommand_from run' -l publish -s p"));
    for sub in ["ps", "run", "exec", "logs", "port-forward", "runp", "create"] {
        let help = ok(&e, &[sub, "--help"]);
        assert!(help.contains("Usage: berthctl"), "{sub}: {help}");
    }
}
