//! berthctl's Docker flags and command groups against a real berthd: ps/images --filter
//! and --format, logs -n, rmi -f, -v, image/container/system groups, stats --no-stream,
//! system df and the prunes (with and without confirmation).

use std::time::{Duration, Instant};

use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::workload::{env, Env};

fn run(e: &Env, args: &[&str], stdin: Option<&str>) -> CtlOut {
    berthctl(&e.berthd.endpoint(), args, stdin).expect("berthctl")
}

fn ok(e: &Env, args: &[&str]) -> String {
    let out = run(e, args, None);
    assert!(
        out.ok,
        "berthctl {args:?} failed: {}\nstdout: {}",
        out.stderr, out.stdout
    );
    out.stdout
}

fn fails(e: &Env, args: &[&str]) -> String {
    let out = run(e, args, None);
    assert!(!out.ok, "berthctl {args:?} should fail: {}", out.stdout);
    out.stderr
}

fn wait_exited(e: &Env, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok(
        e,
        &["ps", "-a", "-f", &format!("name={name}"), "-f", "status=exited", "-q"],
    )
    .is_empty()
    {
        assert!(Instant::now() < deadline, "{name} never exited");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `berthctl ARGS` prints in 5 seconds (stopped by timeout(1)), on a terminal
/// (script(1) gives it one) or into a pipe.
fn five_seconds_of(e: &Env, args: &str, tty: bool) -> String {
    let bin = berth_e2e::ctl::berthctl_binary().expect("berthctl");
    let line = format!("{} -r {} {args}", bin.display(), e.berthd.endpoint());
    let mut c = std::process::Command::new("timeout");
    c.arg("5");
    if tty {
        c.args(["script", "-qec", &line, "/dev/null"]);
    } else {
        c.args(["sh", "-c", &line]);
    }
    let out = c.stdin(std::process::Stdio::null()).output().expect("timeout(1)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_flags_filters_formats_groups_and_prunes() {
    let e = env(None).await;
    let image = e.image.clone();
    ok(&e, &["pull", &image]);
    assert!(ok(&e, &["-v"]).starts_with("berthctl version "));

    let web = ok(
        &e,
        &["run", "-d", "--name", "fl-web", "-l", "app=web", &image, "sleep", "300"],
    );
    let web = web.trim().to_string();
    let db = ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "fl-db",
            "-l",
            "app=db",
            &image,
            "sh",
            "-c",
            "echo a; echo b; exit 3",
        ],
    );
    let db = db.trim().to_string();
    wait_exited(&e, "fl-db");

    // logs -n: Docker's short --tail.
    assert_eq!(ok(&e, &["logs", "-n", "1", "fl-db"]), "b\n");

    // ps --filter: status and exited look at all containers; keys AND, values OR.
    assert_eq!(ok(&e, &["ps", "-q", "-f", "status=exited"]), format!("{db}\n"));
    assert_eq!(
        ok(&e, &["ps", "-q", "-f", "status=running", "-f", "name=fl-"]),
        format!("{web}\n")
    );
    assert_eq!(ok(&e, &["ps", "-a", "-q", "-f", "exited=3"]), format!("{db}\n"));
    assert_eq!(ok(&e, &["ps", "-a", "-q", "-f", "exited=4"]), "");
    assert_eq!(
        ok(
            &e,
            &[
                "ps",
                "-q",
                "-f",
                "status=running",
                "-f",
                "status=exited",
                "-f",
                "name=fl-"
            ]
        ),
        format!("{db}\n{web}\n")
    );
    assert_eq!(ok(&e, &["ps", "-a", "-q", "-f", "label=app=web"]), format!("{web}\n"));
    assert_eq!(
        ok(&e, &["ps", "-a", "-q", "-f", "label=app", "-f", "label=app=db"]),
        format!("{db}\n")
    );
    assert_eq!(
        ok(&e, &["ps", "-a", "-q", "-f", &format!("id={}", &db[..8])]),
        format!("{db}\n")
    );
    assert_eq!(
        ok(&e, &["ps", "-a", "-q", "-f", &format!("ancestor={image}")]),
        format!("{db}\n{web}\n")
    );
    let err = fails(&e, &["ps", "-f", "status=paused"]);
    assert!(err.contains("never paused"), "{err}");
    let err = fails(&e, &["ps", "-f", "colour=red"]);
    assert!(err.contains("unknown key \"colour\""), "{err}");

    // ps --format: fields, labels, table headers, json.
    assert_eq!(
        ok(
            &e,
            &[
                "ps",
                "-a",
                "-f",
                "name=fl-",
                "--format",
                "{{.Names}} {{.Label \"app\"}} {{.State}}"
            ]
        ),
        "fl-db db exited\nfl-web web running\n"
    );
    assert_eq!(
        ok(
            &e,
            &[
                "ps",
                "-f",
                "name=fl-web",
                "--format",
                "table {{.Names}}\\t{{.Label \"app\"}}"
            ]
        ),
        "NAMES     LABEL\nfl-web    web\n"
    );
    let line = ok(&e, &["ps", "-f", "name=fl-web", "--format", "json"]);
    let j: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(j["Names"], "fl-web");
    assert_eq!(j["Command"], "\"sleep 300\"");
    assert!(j["Labels"].as_str().is_some_and(|l| l.contains("app=web")), "{j}");
    assert!(j["Status"].as_str().is_some_and(|s| s.starts_with("Up")), "{j}");
    let err = fails(&e, &["ps", "--format", "{{.Nope}}"]);
    assert!(err.contains("{{.Nope}}"), "{err}");
    // The crictl flags still work.
    assert_eq!(
        ok(&e, &["ps", "-a", "--name", "fl-web", "--state", "running", "-q"]),
        format!("{web}\n")
    );

    // images --filter / --format, with a second tag.
    let (repo, _) = image.rsplit_once(':').expect("tagged image");
    let other = format!("{repo}-other:v2");
    ok(&e, &["tag", &image, &other]);
    assert_eq!(
        ok(
            &e,
            &[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "-f",
                "reference=*/*/*-other:v*"
            ]
        ),
        format!("{other}\n")
    );
    let both = ok(&e, &["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(both.lines().count(), 2, "{both}");
    assert_eq!(ok(&e, &["images", "-q", "-f", "dangling=true"]), "");
    let id = ok(&e, &["images", "-q", "-f", "dangling=false"]);
    let id = id.trim().to_string();
    assert_eq!(ok(&e, &["images", "-q", "-f", "label=no.such.label"]), "");
    assert_eq!(ok(&e, &["images", "-q", "-f", &format!("before={image}")]), "");
    let line = ok(
        &e,
        &["images", "--format", "{{json .}}", "-f", &format!("reference={image}")],
    );
    let j: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(
        format!(
            "{}:{}",
            j["Repository"].as_str().unwrap_or(""),
            j["Tag"].as_str().unwrap_or("")
        ),
        image
    );
    let short = j["ID"].as_str().unwrap_or("-");
    assert!(id.trim_start_matches("sha256:").starts_with(short), "{j} {id}");
    let table = ok(
        &e,
        &["image", "ls", "--format", "table", "-f", &format!("reference={image}")],
    );
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(fails(&e, &["images", "--format", "{{.Nope}}"]).contains("{{.Nope}}"));

    // rmi: by id with two tags needs -f; an image in use names its containers.
    let err = fails(&e, &["rmi", &id]);
    assert!(err.contains("several tags") && err.contains("-f"), "{err}");
    assert_eq!(ok(&e, &["rmi", &other]), format!("Untagged: {other}\n"));
    ok(&e, &["tag", &image, &other]);
    let err = fails(&e, &["rmi", "-f", &id]);
    assert!(err.contains("fl-web") && err.contains("fl-db"), "{err}");
    assert!(ok(&e, &["images", "-q"]).contains(&id));

    // Groups map to the same commands.
    assert_eq!(
        ok(&e, &["container", "ls", "-a", "-q", "-f", "name=fl-"]),
        format!("{db}\n{web}\n")
    );
    assert_eq!(ok(&e, &["container", "list", "-q"]), ok(&e, &["ps", "-q"]));
    assert_eq!(ok(&e, &["image", "list", "-q"]), ok(&e, &["images", "-q"]));
    assert_eq!(ok(&e, &["container", "logs", "--tail", "1", "fl-db"]), "b\n");
    let stats = ok(&e, &["container", "stats", "--no-stream", "fl-web"]);
    assert!(stats.starts_with("CONTAINER") && stats.contains("fl-web"), "{stats}");
    let stats = ok(&e, &["stats", "fl-web"]);
    assert_eq!(stats.lines().count(), 2, "one table off a terminal: {stats}");
    // Live: -w prints a table each round into a pipe; a terminal gets them redrawn in place.
    let piped = five_seconds_of(&e, "stats -w fl-web", false);
    assert!(piped.matches("CONTAINER").count() >= 2, "{piped:?}");
    assert!(!piped.contains('\x1b'), "{piped:?}");
    let tty = five_seconds_of(&e, "container stats fl-web", true);
    assert!(tty.matches("\x1b[H\x1b[2J").count() >= 2, "{tty:?}");
    assert!(tty.contains("fl-web"), "{tty:?}");
    let once = five_seconds_of(&e, "stats --no-stream fl-web", true);
    assert_eq!(once.matches("CONTAINER").count(), 1, "{once:?}");

    // system df: one image, used; two containers, one running.
    let df = ok(&e, &["system", "df"]);
    let row = |name: &str| -> Vec<String> {
        let line = df.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        line.trim_start_matches(name)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("Images")[..2], ["1", "1"], "{df}");
    assert_eq!(row("Containers")[..2], ["2", "1"], "{df}");

    // Prunes: no answer is a No; y removes the stopped container (and its pod) only.
    let out = run(&e, &["container", "prune"], None);
    assert!(
        !out.ok && out.stdout.contains("Are you sure you want to continue? [y/N]"),
        "{out:?}"
    );
    assert!(out.stderr.contains("not confirmed"), "{out:?}");
    assert_eq!(ok(&e, &["ps", "-a", "-q", "-f", "name=fl-"]), format!("{db}\n{web}\n"));
    let out = run(&e, &["container", "prune"], Some("y\n"));
    assert!(out.ok, "{out:?}");
    assert!(out.stdout.contains(&format!("Deleted Containers:\n{db}\n")), "{out:?}");
    assert_eq!(ok(&e, &["ps", "-a", "-q", "-f", "name=fl-"]), format!("{web}\n"));
    let pods = ok(&e, &["pods", "-q", "--name", "fl-db"]);
    assert_eq!(pods, "", "the run pod went with it");

    // image prune -a keeps what a container uses; nothing dangling to prune.
    let out = ok(&e, &["image", "prune", "-a", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert!(ok(&e, &["images", "-q"]).contains(&id));
    assert!(fails(&e, &["image", "prune", "-a"]).contains("not confirmed"));

    // Once the container is gone, system prune -a removes the image with both tags.
    ok(&e, &["rm", "-f", "fl-web"]);
    let out = ok(&e, &["system", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("untagged: {other}")), "{out}");
    assert!(out.contains(&format!("deleted: {id}")), "{out}");
    assert!(
        out.contains("Total reclaimed space: ") && !out.contains("space: 0B"),
        "{out}"
    );
    assert_eq!(ok(&e, &["images", "-q"]), "");
}
