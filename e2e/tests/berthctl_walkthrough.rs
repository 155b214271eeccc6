//! The everyday Docker workflow on Berth as one scenario, the way a person new to a node
//! would walk it with `berthctl`: pull, images, a detached web server with a published port
//! (the page fetched through it), a one-off container with a host directory, logs, exec,
//! stop, rm, save/rmi/load round trip, rmi. Each step checks what the person would see.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::workload::env;

fn run(endpoint: &str, args: &[&str]) -> CtlOut {
    berthctl(endpoint, args, None).expect("berthctl runs")
}

fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = run(endpoint, args);
    assert!(
        out.ok,
        "berthctl {args:?} failed: {}\nstdout: {}",
        out.stderr, out.stdout
    );
    out.stdout
}

fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET / from `addr`; the whole answer ("" when nothing answered).
fn fetch(addr: (&str, u16)) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: berth\r\n\r\n");
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_workflow_walkthrough() {
    let e = env(None).await;
    let ep = e.berthd.endpoint();
    let ep = ep.as_str();
    let image = e.image.as_str();

    // pull, then images lists it.
    let pulled = ok(ep, &["pull", image]);
    assert!(pulled.contains("sha256:"), "pull summary names the image: {pulled}");
    let images = ok(ep, &["images"]);
    let repo = image.rsplit_once(':').expect("tag").0;
    assert!(images.lines().any(|l| l.starts_with(repo)), "{images}");

    // A detached web server on a published port; the page comes back through it.
    let port = berth_e2e::free_port();
    let publish = format!("{port}:80");
    let page = "hello from berth";
    let serve = format!(
        "while true; do printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n{page}\\n' | nc -l -p 80; done"
    );
    let id = ok(
        ep,
        &["run", "-d", "--name", "web", "-p", &publish, image, "sh", "-c", &serve],
    );
    assert_eq!(id.trim().len(), 64, "run -d prints the container id: {id}");
    let pod: serde_json::Value = serde_json::from_str(&ok(ep, &["inspectp", "-o", "json", "web"])).expect("json");
    let ip = pod["status"]["network"]["ip"].as_str().expect("pod ip").to_string();
    let gateway = format!("{}.1", ip.rsplit_once('.').expect("ipv4").0);
    let mut got = String::new();
    wait_for(15, "the page on the published port", || {
        got = fetch((gateway.as_str(), port));
        got.contains(page)
    });
    assert!(got.starts_with("HTTP/1.0 200"), "{got}");
    let ps = ok(ep, &["ps"]);
    assert!(ps.contains("web") && ps.contains(&format!("{port}->80/tcp")), "{ps}");

    // A one-off container writes into a host directory and is gone afterwards.
    let data = tempfile::tempdir().expect("tempdir");
    let volume = format!("{}:/data", data.path().display());
    let out = ok(
        ep,
        &[
            "run",
            "--rm",
            "-v",
            &volume,
            image,
            "sh",
            "-c",
            "echo saved > /data/note; echo done",
        ],
    );
    assert_eq!(out, "done\n");
    assert_eq!(
        std::fs::read_to_string(data.path().join("note")).expect("note"),
        "saved\n"
    );
    // --shm-size sizes the pod's /dev/shm.
    let mounts = ok(
        ep,
        &[
            "run",
            "--rm",
            "--shm-size",
            "16m",
            image,
            "grep",
            " /dev/shm ",
            "/proc/mounts",
        ],
    );
    assert!(mounts.contains("size=16384k"), "{mounts}");
    let bad = run(ep, &["run", "--rm", "--shm-size", "lots", image, "true"]);
    assert!(!bad.ok && bad.stderr.contains("--shm-size"), "{bad:?}");
    let all = ok(ep, &["ps", "-a", "-q"]);
    assert_eq!(all.lines().count(), 1, "only the web server is left: {all}");

    // logs and exec on the running server.
    ok(ep, &["exec", "web", "sh", "-c", "echo from-exec"]);
    let exec = run(ep, &["exec", "web", "sh", "-c", "echo inside; exit 5"]);
    assert_eq!((exec.ok, exec.stdout.as_str()), (false, "inside\n"));
    let logs = ok(ep, &["logs", "web"]);
    assert!(logs.contains("GET / HTTP/1.0"), "nc printed the request: {logs}");

    // stop, then rm (which also removes the pod `run` made).
    ok(ep, &["stop", "-t", "1", "web"]);
    let ps = ok(ep, &["ps", "-a"]);
    assert!(ps.contains("Exited"), "{ps}");
    ok(ep, &["rm", "web"]);
    assert_eq!(ok(ep, &["ps", "-a", "-q"]).trim(), "");
    assert_eq!(ok(ep, &["pods", "-q"]).trim(), "");

    // save, rmi, load: the same image comes back and runs.
    let inspect = |ep: &str| -> serde_json::Value {
        serde_json::from_str(&ok(ep, &["inspecti", "-o", "json", image])).expect("json")
    };
    let before = inspect(ep)["status"]["id"].clone();
    let archive = data.path().join("image.tar");
    let archive = archive.to_str().expect("path");
    ok(ep, &["save", image, "-o", archive]);
    ok(ep, &["rmi", image]);
    let gone = run(ep, &["inspecti", image]);
    assert!(
        !gone.ok || gone.stdout.trim().is_empty() || gone.stdout.contains("null"),
        "{gone:?}"
    );
    let loaded = ok(ep, &["load", "-i", archive]);
    assert!(loaded.contains("Loaded image"), "{loaded}");
    assert_eq!(inspect(ep)["status"]["id"], before);
    assert_eq!(ok(ep, &["run", "--rm", image, "echo", "again"]), "again\n");

    // rmi: the image is gone from the list.
    ok(ep, &["rmi", image]);
    let images = ok(ep, &["images", "-q"]);
    assert!(images.trim().is_empty(), "{images}");
}
