//! `berthctl compose` against a real berthd, on the Docker tutorial's WordPress shape with
//! test-built stand-ins: a web service that asks a database service by name, the data in
//! a named volume, `restart: always`. It comes up with `up -d`, survives `kill -9` of the
//! database (restarted by policy, data kept) and a berthd restart, and `down -v` leaves
//! no container, pod or volume.

use std::io::Read as _;
use std::time::{Duration, Instant};

use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::workload::{env, Env};

fn ctl(e: &Env, args: &[&str]) -> CtlOut {
    berthctl(&e.berthd.endpoint(), args, None).expect("berthctl")
}

fn ok(e: &Env, args: &[&str]) -> String {
    berth_e2e::ctl::ok(&e.berthd.endpoint(), args)
}

const COMPOSE: &str = r#"
name: wp
services:
  db:
    image: IMAGE
    restart: always
    environment:
      DB_NAME: wordpress
    command:
      - sh
      - -c
      - |
        echo starting $$DB_NAME
        n=$$(cat /var/lib/db/boots 2>/dev/null || echo 0)
        echo $$((n + 1)) > /var/lib/db/boots
        while true; do echo "rows=$$(cat /var/lib/db/rows 2>/dev/null) boots=$$(cat /var/lib/db/boots)" | nc -l -p 3306; done
    volumes:
      - db_data:/var/lib/db
    healthcheck:
      test: ["CMD-SHELL", "test -f /var/lib/db/boots"]
      interval: 1s
      retries: 10
  web:
    image: IMAGE
    restart: always
    depends_on:
      db:
        condition: service_healthy
    ports:
      - "80"
    command: >-
      sh -c 'while true; do echo "web sees: $$(nc db 3306)" | nc -l -p 80; done'
volumes:
  db_data: {}
"#;

/// What the web service answers on its published port (through the pod bridge's address).
fn ask_web(e: &Env, want: &str) {
    let port: u16 = ok(e, &["port", "wp-web-1", "80"])
        .trim()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("published port");
    let pod: serde_json::Value = serde_json::from_str(&ok(e, &["inspectp", "wp-web-1"])).expect("json");
    let ip = pod["status"]["network"]["ip"].as_str().expect("ip").to_string();
    let gw = format!("{}.1", ip.rsplit_once('.').expect("ip").0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect((gw.as_str(), port)) {
            s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
            last.clear();
            let _ = s.read_to_string(&mut last);
            if last.trim() == want {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("web never said {want:?}; last {last:?}");
}

fn running_attempt(e: &Env, name: &str) -> Option<u64> {
    let out: serde_json::Value = serde_json::from_str(&ok(e, &["ps", "--name", name, "-o", "json"])).ok()?;
    out["containers"]
        .as_array()?
        .iter()
        .find(|c| c["state"] == "CONTAINER_RUNNING" && c["metadata"]["name"] == name)
        .and_then(|c| c["metadata"]["attempt"].as_u64())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wordpress_shape_comes_up_survives_crashes_and_goes_without_a_trace() {
    let mut e = env(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, COMPOSE.replace("IMAGE", &e.image)).expect("write");
    let f = file.display().to_string();

    let up = ctl(&e, &["compose", "-f", &f, "up", "-d"]);
    assert!(up.ok, "{}", up.stderr);
    assert!(up.stderr.contains("Container wp-db-1  Healthy"), "{}", up.stderr);
    let ps = ok(&e, &["compose", "-f", &f, "ps"]);
    assert!(
        ps.contains("wp-db-1") && ps.contains("wp-web-1") && ps.contains("->80/tcp"),
        "{ps}"
    );
    ok(&e, &["exec", "wp-db-1", "sh", "-c", "echo 42 > /var/lib/db/rows"]);
    ask_web(&e, "web sees: rows=42 boots=1");
    let logs = ok(&e, &["compose", "-f", &f, "logs", "db"]);
    assert!(logs.contains("wp-db-1  | starting wordpress"), "{logs}");

    // kill -9 of the database: restarted by its policy, the data still there.
    let info: serde_json::Value = serde_json::from_str(&ok(&e, &["inspect", "wp-db-1"])).expect("json");
    let pid = info["info"]["pid"].as_u64().expect("pid") as u32;
    berth_e2e::sys::signal(pid, libc::SIGKILL).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_attempt(&e, "wp-db-1") != Some(1) {
        assert!(Instant::now() < deadline, "the database was not restarted");
        std::thread::sleep(Duration::from_millis(200));
    }
    ask_web(&e, "web sees: rows=42 boots=2");

    // berthd restarts: everything runs on; a second `up` changes nothing.
    e.berthd.restart().await.expect("restart berthd");
    ask_web(&e, "web sees: rows=42 boots=2");
    let again = ctl(&e, &["compose", "-f", &f, "up", "-d"]);
    assert!(
        again.ok && again.stderr.contains("Container wp-web-1  Running"),
        "{}",
        again.stderr
    );

    // A changed service is made anew.
    let fixed = berth_e2e::free_port();
    let published = format!("\"{fixed}:80\"");
    std::fs::write(&file, COMPOSE.replace("IMAGE", &e.image).replace("\"80\"", &published)).expect("write");
    let changed = ctl(&e, &["compose", "-f", &f, "up", "-d"]);
    assert!(
        changed.ok && changed.stderr.contains("Container wp-web-1  Recreate"),
        "{}",
        changed.stderr
    );
    assert!(ok(&e, &["port", "wp-web-1"]).contains(&format!(":{fixed}")));

    let down = ctl(&e, &["compose", "-f", &f, "down", "-v"]);
    assert!(
        down.ok && down.stderr.contains("Volume wp_db_data  Removed"),
        "{}",
        down.stderr
    );
    assert_eq!(ok(&e, &["ps", "-aq"]), "");
    assert_eq!(ok(&e, &["pods", "-q"]), "");
    assert_eq!(ok(&e, &["volume", "ls", "-q"]), "");
    let root = e.berthd.root().join("volumes");
    assert!(berth_e2e::berthd::mounts_under(&root).is_empty());
}

/// A service with `build:` comes up from an image berthd builds (missing ones at `up`,
/// again with `compose build`, from the cache when nothing changed).
#[tokio::test(flavor = "multi_thread")]
async fn services_with_build_are_built_and_run() {
    let e = env(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = dir.path().join("app");
    std::fs::create_dir(&app).expect("mkdir");
    std::fs::write(
        app.join("Dockerfile.dev"),
        format!(
            "FROM {}\nARG GREETING=unset\nCOPY msg.txt /msg.txt\nRUN echo \"$GREETING\" >> /msg.txt\nCMD [\"sh\", \"-c\", \"cat /msg.txt; exec sleep 600\"]\n",
            e.image
        ),
    )
    .expect("write");
    std::fs::write(app.join("msg.txt"), "built by compose\n").expect("write");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "name: bld\nservices:\n  app:\n    build:\n      context: app\n      dockerfile: Dockerfile.dev\n      args:\n        GREETING: hello\n",
    )
    .expect("write");
    let f = file.display().to_string();
    let up = ctl(&e, &["compose", "-f", &f, "up", "-d"]);
    assert!(
        up.ok && up.stderr.contains("Building app"),
        "{}\n{}",
        up.stderr,
        up.stdout
    );
    assert!(ok(&e, &["images"]).contains("bld-app"), "{}", ok(&e, &["images"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut logs = String::new();
    while !logs.contains("hello") {
        assert!(Instant::now() < deadline, "no greeting in {logs:?}");
        std::thread::sleep(Duration::from_millis(200));
        logs = ok(&e, &["compose", "-f", &f, "logs", "app"]);
    }
    assert!(logs.contains("built by compose"), "{logs}");
    // Present: `up` does not build again; `compose build` does, from the cache.
    let again = ctl(&e, &["compose", "-f", &f, "up", "-d"]);
    assert!(again.ok && !again.stderr.contains("Building"), "{}", again.stderr);
    let build = ctl(&e, &["compose", "-f", &f, "build"]);
    assert!(build.ok && build.stderr.contains("CACHED"), "{}", build.stderr);
    let down = ctl(&e, &["compose", "-f", &f, "down"]);
    assert!(down.ok, "{}", down.stderr);
    assert_eq!(ok(&e, &["ps", "-aq"]), "");
}
