//! `berthctl start` / `restart` of stopped `run` containers against a real berthd: the
//! next attempt runs in the same pod with the same name, command, volumes, log file and
//! writable layer; the old attempt is gone; `rm` leaves nothing.

use std::time::{Duration, Instant};

use berth_e2e::ctl::berthctl;
use berth_e2e::workload::{env, Env};

fn ok(e: &Env, args: &[&str]) -> String {
    berth_e2e::ctl::ok(&e.berthd.endpoint(), args)
}

/// The containers named `name`: (id, state).
fn named(e: &Env, name: &str) -> Vec<(String, String)> {
    let ps: serde_json::Value =
        serde_json::from_str(&ok(e, &["ps", "-a", "--name", name, "-o", "json"])).expect("json");
    ps["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| c["metadata"]["name"] == name)
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("").to_string(),
                c["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn wait_state(e: &Env, name: &str, state: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = named(e, name);
        if let [(id, s)] = found.as_slice() {
            if s == state {
                return id.clone();
            }
        }
        assert!(Instant::now() < deadline, "{name} never got to {state}: {found:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn start_and_restart_run_the_next_attempt_with_the_same_layer_and_log() {
    let mut e = env(None).await;
    let data = tempfile::tempdir().expect("tempdir");
    let volume = format!("{}:/data", data.path().display());
    // Each run adds a line to a file in its writable layer and one in the volume.
    let script = "echo x >> /state; echo y >> /data/runs; echo run $(wc -l < /state) $(wc -l < /data/runs); exit 3";
    let first = ok(
        &e,
        &[
            "run", "-d", "--name", "again", "-v", &volume, &e.image, "sh", "-c", script,
        ],
    );
    let first = first.trim();
    assert_eq!(wait_state(&e, "again", "CONTAINER_EXITED"), first);

    assert_eq!(ok(&e, &["start", "again"]), "again\n");
    let second = wait_state(&e, "again", "CONTAINER_EXITED");
    assert_ne!(second, first, "a new attempt");
    assert_eq!(ok(&e, &["logs", "again"]), "run 1 1\nrun 2 2\n");
    let inspect: serde_json::Value = serde_json::from_str(&ok(&e, &["inspect", "again"])).expect("json");
    assert_eq!(inspect["status"]["metadata"]["attempt"], 1, "{inspect}");
    assert_eq!(inspect["status"]["exitCode"], 3, "{inspect}");

    // restart of a running one: stopped (within -t), then the next attempt.
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "busy",
            &e.image,
            "sh",
            "-c",
            "echo up; exec sleep 300",
        ],
    );
    let before = wait_state(&e, "busy", "CONTAINER_RUNNING");
    let started = Instant::now();
    assert_eq!(ok(&e, &["restart", "-t", "1", "busy", "again"]), "busy\nagain\n");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let after = wait_state(&e, "busy", "CONTAINER_RUNNING");
    assert_ne!(after, before);
    wait_state(&e, "again", "CONTAINER_EXITED");
    assert_eq!(ok(&e, &["logs", "again"]), "run 1 1\nrun 2 2\nrun 3 3\n");
    assert_eq!(ok(&e, &["logs", "busy"]), "up\nup\n");
    // start of a running container is a no-op, as in Docker.
    ok(&e, &["start", "busy"]);
    assert_eq!(wait_state(&e, "busy", "CONTAINER_RUNNING"), after);

    // A container of a pod berthctl run did not make is not berthctl's to restart.
    let pod = e.pod("outsider").await;
    let config = e.container("app", &["sleep", "300"]);
    let ctr = e.create(&pod, config).await.expect("create");
    e.start(&ctr).await;
    let out = berthctl(&e.berthd.endpoint(), &["restart", &ctr], None).expect("berthctl");
    assert!(
        !out.ok && out.stderr.contains("not made by berthctl run"),
        "{}",
        out.stderr
    );

    ok(&e, &["rm", "-f", "busy", "again"]);
    assert_eq!(named(&e, "busy").len() + named(&e, "again").len(), 0);
    let pods = ok(&e, &["pods", "-q"]);
    assert_eq!(pods.trim(), pod.0, "only the outsider's pod is left");
}

fn json(e: &Env, args: &[&str]) -> serde_json::Value {
    let out = ok(e, args);
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("berthctl {args:?}: not JSON ({err}): {out}"))
}

/// Waits (up to 30 s) for `name` to run as a container other than `not`; its id.
fn runs_again(e: &Env, name: &str, not: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = named(e, name);
        if let [(id, s)] = found.as_slice() {
            if s == "CONTAINER_RUNNING" && id != not {
                return id.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} was not restarted: {found:?}\n{}",
            e.berthd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid in what `what` (inspect or inspectp) shows of `name`.
fn pid_of(e: &Env, what: &str, name: &str) -> u32 {
    let info = json(e, &[what, name]);
    let field = if what == "inspectp" { "infra_pid" } else { "pid" };
    info["info"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {info}")) as u32
}

fn kill9(pid: u32) {
    berth_e2e::sys::signal(pid, libc::SIGKILL).expect("kill");
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_policies_bring_containers_back_after_crashes_berthd_restarts_and_a_reboot() {
    let mut e = env(None).await;
    let script = "echo x >> /boots; echo up $(wc -l < /boots); exec sleep 300";
    let db = ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "db",
            "--restart",
            "always",
            &e.image,
            "sh",
            "-c",
            script,
        ],
    );
    let db = db.trim().to_string();
    wait_state(&e, "db", "CONTAINER_RUNNING");
    let (code, _, err) = {
        let out = berthctl(
            &e.berthd.endpoint(),
            &["run", "--rm", "--restart", "always", &e.image, "true"],
            None,
        )
        .expect("berthctl");
        (out.ok, out.stdout, out.stderr)
    };
    assert!(!code && err.contains("--rm"), "{err}");

    // kill -9 of its process: back by policy, same layer, same log.
    kill9(pid_of(&e, "inspect", "db"));
    let db2 = runs_again(&e, "db", &db);
    let inspect = json(&e, &["inspect", "db"]);
    assert_eq!(
        inspect["info"]["spec"]["annotations"]["io.berth.restart-count"], "1",
        "{inspect}"
    );

    // on-failure:2 gives up after two restarts; a clean exit is no failure.
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "crashy",
            "--restart",
            "on-failure:2",
            &e.image,
            "sh",
            "-c",
            "echo try; exit 1",
        ],
    );
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "done",
            "--restart",
            "on-failure",
            &e.image,
            "true",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok(&e, &["logs", "crashy"]) != "try\ntry\ntry\n" {
        assert!(Instant::now() < deadline, "{:?}", ok(&e, &["logs", "crashy"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ok(&e, &["logs", "crashy"]), "try\ntry\ntry\n", "no third restart");
    assert_eq!(json(&e, &["inspect", "crashy"])["status"]["metadata"]["attempt"], 2);
    assert_eq!(json(&e, &["inspect", "done"])["status"]["metadata"]["attempt"], 0);

    // A stop by request stays stopped, for unless-stopped also across a berthd restart;
    // always comes back when berthd starts.
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "unless",
            "--restart",
            "unless-stopped",
            &e.image,
            "sleep",
            "300",
        ],
    );
    wait_state(&e, "unless", "CONTAINER_RUNNING");
    ok(&e, &["stop", "-t", "0", "db", "unless"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(wait_state(&e, "db", "CONTAINER_EXITED"), db2);
    e.berthd.restart().await.expect("restart berthd");
    let db3 = runs_again(&e, "db", &db2);
    wait_state(&e, "unless", "CONTAINER_EXITED");

    // A reboot, as far as a test can make one: berthd, the pod's processes and the mounts
    // under berthd's directories all gone at once; berthd runs the pod again.
    let pod = json(&e, &["inspectp", "db"])["status"]["id"]
        .as_str()
        .expect("pod id")
        .to_string();
    let ctr_pid = pid_of(&e, "inspect", "db");
    let infra_pid = pid_of(&e, "inspectp", "db");
    let shim_pid = std::fs::read_to_string(format!("/proc/{ctr_pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse::<u32>().ok())
        .expect("ppid");
    let comm = std::fs::read_to_string(format!("/proc/{shim_pid}/comm")).unwrap_or_default();
    assert!(comm.starts_with("berth-shim"), "parent of the container is {comm:?}");
    e.berthd.kill9();
    for pid in [shim_pid, ctr_pid, infra_pid] {
        kill9(pid);
    }
    std::thread::sleep(Duration::from_millis(500));
    berth_e2e::berthd::unmount_under(e.berthd.state());
    berth_e2e::berthd::unmount_under(e.berthd.root());
    e.berthd.restart().await.expect("start berthd after the reboot");
    runs_again(&e, "db", &db3);
    let new_pod = json(&e, &["inspectp", "db"])["status"]["id"]
        .as_str()
        .expect("pod id")
        .to_string();
    assert_ne!(new_pod, pod, "the pod ran again");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok(&e, &["logs", "db"]) != "up 1\nup 2\nup 3\nup 4\n" {
        assert!(Instant::now() < deadline, "{:?}", ok(&e, &["logs", "db"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    let pods = ok(&e, &["pods", "-q"]);
    assert!(!pods.contains(&pod), "the old pod is gone: {pods}");

    ok(&e, &["rm", "-f", "db", "crashy", "done", "unless"]);
    assert_eq!(ok(&e, &["pods", "-q"]).trim(), "");
}
