//! `berthctl commit` against a real berthd: a running container's added, changed and
//! deleted files become a layer of a new image (whiteouts, symlinks, an opaque directory in
//! a second generation), its environment and working directory and the `-c` changes land
//! in the config, the container keeps running, a bad change leaves nothing stored, and
//! once the images are removed the content store holds what it held before.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::ctl::berthctl;
use berth_e2e::workload::{env, Env};

fn ok(e: &Env, args: &[&str]) -> String {
    berth_e2e::ctl::ok(&e.berthd.endpoint(), args)
}

fn fails(e: &Env, args: &[&str], says: &str) {
    berth_e2e::ctl::fails(&e.berthd.endpoint(), args, says)
}

fn blobs(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("content/blobs/sha256"))
        .expect("blobs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn wait_ready(e: &Env, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !berthctl(&e.berthd.endpoint(), &["exec", name, "test", "-e", "/ready"], None)
        .expect("berthctl")
        .ok
    {
        assert!(Instant::now() < deadline, "{name} never got ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_containers_changes_become_an_image() {
    let e = env(None).await;
    let img = e.image.as_str();
    ok(&e, &["pull", img]);
    let before = blobs(e.berthd.root());

    let script = "mkdir -p /srv/x && echo one > /srv/x/f && echo data > /new && rm /etc/group \
                  && ln -s /new /link && touch /ready && exec sleep 600";
    ok(
        &e,
        &[
            "run", "-d", "--name", "src", "-e", "FOO=bar", "-w", "/srv", img, "sh", "-c", script,
        ],
    );
    wait_ready(&e, "src");
    let id = ok(
        &e,
        &[
            "commit",
            "-a",
            "Ann <ann@example.test>",
            "-m",
            "first cut",
            "-c",
            r#"CMD ["cat", "/new"]"#,
            "-c",
            "ENV MODE=prod",
            "-c",
            "EXPOSE 8080",
            "src",
            "app:v1",
        ],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // Frozen for the commit only: it still runs.
    assert_eq!(ok(&e, &["exec", "src", "cat", "/srv/x/f"]), "one\n");

    assert_eq!(ok(&e, &["run", "--rm", "app:v1"]), "data\n");
    assert_eq!(
        ok(
            &e,
            &[
                "run",
                "--rm",
                "app:v1",
                "sh",
                "-c",
                "echo $FOO $MODE; pwd; readlink /link; cat /srv/x/f"
            ]
        ),
        "bar prod\n/srv\n/new\none\n"
    );
    assert_eq!(
        ok(
            &e,
            &["run", "--rm", "app:v1", "sh", "-c", "test -e /etc/group || echo gone"]
        ),
        "gone\n",
        "a deleted file came back"
    );
    let history = ok(&e, &["history", "--no-trunc", "app:v1"]);
    assert!(history.contains("first cut"), "{history}");
    let inspect = ok(&e, &["image", "inspect", "app:v1"]);
    assert!(inspect.contains("8080/tcp"), "{inspect}");

    // A second generation, from an exited container: a directory replaced whole.
    let script = "rm -rf /srv/x && mkdir /srv/x && echo two > /srv/x/g";
    ok(&e, &["run", "--name", "gen2", "app:v1", "sh", "-c", script]);
    ok(&e, &["commit", "gen2", "app:v2"]);
    assert_eq!(ok(&e, &["run", "--rm", "app:v2", "ls", "/srv/x"]), "g\n");
    assert_eq!(ok(&e, &["run", "--rm", "app:v2", "cat", "/new"]), "data\n");

    // Refusals, and nothing stored for them.
    let stored = blobs(e.berthd.root());
    fails(&e, &["commit", "-c", "RUN make", "src", "bad:1"], "only CMD");
    fails(&e, &["commit", "src", "bad@sha256:abc"], "");
    fails(&e, &["commit", "nosuchcontainer", "bad:2"], "nosuchcontainer");
    assert_eq!(blobs(e.berthd.root()), stored, "a refused commit stored something");
    assert!(!ok(&e, &["images"]).contains("bad"), "a refused commit made an image");

    // Without pausing, and untagged.
    let untagged = ok(&e, &["commit", "--pause=false", "src"]);
    assert!(untagged.trim().starts_with("sha256:"), "{untagged}");

    ok(&e, &["rm", "-f", "src", "gen2"]);
    ok(&e, &["rmi", "app:v1", "app:v2", untagged.trim()]);
    assert_eq!(
        blobs(e.berthd.root()),
        before,
        "the commits' blobs outlived their images"
    );
}
