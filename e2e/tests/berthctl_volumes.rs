//! Volumes through `berthctl` against a real berthd: named volumes filled from the image on
//! first use and kept across containers, anonymous ones (`-v /path`, image-less), tmpfs and
//! bind-backed ones, `--mount`, `--tmpfs`, `--volumes-from`, in-use refusal, `rm -v`,
//! `--rm` and `volume prune`; and nothing left mounted or stored at the end.

use std::path::Path;

use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::image::{busybox_layer, push_image, Compression, ImageSpec};
use berth_e2e::workload::{env, Env};

fn ctl(e: &Env, args: &[&str]) -> CtlOut {
    berthctl(&e.berthd.endpoint(), args, None).expect("berthctl")
}

fn ok(e: &Env, args: &[&str]) -> String {
    berth_e2e::ctl::ok(&e.berthd.endpoint(), args)
}

fn fails(e: &Env, args: &[&str], says: &str) {
    berth_e2e::ctl::fails(&e.berthd.endpoint(), args, says)
}

fn names(e: &Env, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["volume", "ls", "-q"];
    args.extend_from_slice(extra);
    ok(e, &args).lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn named_anonymous_tmpfs_and_bind_volumes_the_docker_way() {
    let e = env(None).await;
    let img = e.image.as_str();
    assert_eq!(ok(&e, &["volume", "create", "dbdata", "--label", "app=db"]), "dbdata\n");
    let inspect: serde_json::Value = serde_json::from_str(&ok(&e, &["volume", "inspect", "dbdata"])).expect("json");
    let mountpoint = inspect[0]["Mountpoint"].as_str().expect("mountpoint").to_string();
    assert!(
        mountpoint.starts_with(&e.berthd.root().display().to_string()),
        "{mountpoint}"
    );
    assert_eq!(inspect[0]["Labels"]["app"], "db");
    fails(&e, &["volume", "create", "bad/name"], "volume name");
    fails(&e, &["volume", "create", "-o", "type=nfs", "n1"], "nfs");

    // Data outlives the container; :ro is read-only.
    ok(
        &e,
        &[
            "run",
            "--rm",
            "-v",
            "dbdata:/data",
            img,
            "sh",
            "-c",
            "echo hi > /data/f",
        ],
    );
    assert_eq!(
        ok(&e, &["run", "--rm", "-v", "dbdata:/data:ro", img, "cat", "/data/f"]),
        "hi\n"
    );
    let out = ctl(&e, &["run", "--rm", "-v", "dbdata:/data:ro", img, "touch", "/data/g"]);
    assert!(!out.ok, "wrote to a read-only volume");

    // First use of an empty volume copies the image's content there; -v NAME makes it.
    assert_eq!(
        ok(
            &e,
            &[
                "run",
                "--rm",
                "-v",
                "cfg:/etc",
                img,
                "sh",
                "-c",
                "grep -c root /etc/passwd"
            ]
        ),
        "1\n"
    );
    let cfg: serde_json::Value = serde_json::from_str(&ok(&e, &["volume", "inspect", "cfg"])).expect("json");
    let cfg_dir = cfg[0]["Mountpoint"].as_str().expect("mountpoint").to_string();
    assert!(Path::new(&cfg_dir).join("passwd").is_file(), "{cfg}");

    // An image VOLUME starts with the image's content there too.
    let spec = ImageSpec {
        layers: vec![busybox_layer(Compression::Gzip)],
        volumes: vec!["/etc".into()],
        ..ImageSpec::default()
    };
    push_image(&e.registry(), "e2e/with-volume", "1", &spec, None)
        .await
        .expect("push");
    let with_volume = format!("{}/e2e/with-volume:1", e.registry());
    let passwd = ok(
        &e,
        &[
            "run",
            "--rm",
            &with_volume,
            "sh",
            "-c",
            "grep -c root /etc/passwd; grep -c ' /etc ' /proc/mounts",
        ],
    );
    assert_eq!(passwd, "1\n1\n", "filled, and a mount of its own");
    let anonymous = |e: &Env| -> Vec<String> { names(e, &[]).into_iter().filter(|n| n.len() == 64).collect() };
    assert!(anonymous(&e).is_empty(), "--rm took the image VOLUME's volume");
    // As with Docker, the image VOLUME is an anonymous volume that `rm` keeps.
    ok(
        &e,
        &[
            "run",
            "--name",
            "imgvol",
            &with_volume,
            "sh",
            "-c",
            "echo kept > /etc/kept",
        ],
    );
    let made = anonymous(&e);
    assert_eq!(made.len(), 1, "{made:?}");
    ok(&e, &["rm", "imgvol"]);
    assert_eq!(anonymous(&e), made, "rm without -v keeps it");
    let inspect: serde_json::Value = serde_json::from_str(&ok(&e, &["volume", "inspect", &made[0]])).expect("json");
    let dir = Path::new(inspect[0]["Mountpoint"].as_str().expect("mountpoint")).to_path_buf();
    assert_eq!(std::fs::read_to_string(dir.join("kept")).expect("kept"), "kept\n");
    assert!(dir.join("passwd").is_file(), "filled from the image");
    ok(&e, &["volume", "rm", &made[0]]);

    // In use: refused, also to prune -a; --volumes-from shares it.
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "holder",
            "-v",
            "dbdata:/data",
            img,
            "sleep",
            "300",
        ],
    );
    fails(&e, &["volume", "rm", "dbdata"], "still mounted by container");
    assert_eq!(
        ok(
            &e,
            &["run", "--rm", "--volumes-from", "holder:ro", img, "cat", "/data/f"]
        ),
        "hi\n"
    );
    assert_eq!(names(&e, &["-f", "dangling=false"]), ["dbdata"]);

    // Anonymous volumes: rm -v takes them, rm alone leaves them to prune, --rm takes them.
    ok(
        &e,
        &["run", "-d", "--name", "anon1", "-v", "/cache", img, "sleep", "300"],
    );
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "anon2",
            "--mount",
            "type=volume,target=/cache",
            img,
            "sleep",
            "300",
        ],
    );
    let anonymous: Vec<String> = names(&e, &[]).into_iter().filter(|n| n.len() == 64).collect();
    assert_eq!(anonymous.len(), 2, "{anonymous:?}");
    ok(&e, &["rm", "-f", "-v", "anon1"]);
    ok(&e, &["rm", "-f", "anon2"]);
    let left: Vec<String> = names(&e, &[]).into_iter().filter(|n| n.len() == 64).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    ok(&e, &["run", "--rm", "-v", "/scratch", img, "true"]);
    assert_eq!(
        names(&e, &[]).iter().filter(|n| n.len() == 64).count(),
        1,
        "--rm took its own"
    );
    fails(&e, &["volume", "prune"], "nothing removed");
    let pruned = ok(&e, &["volume", "prune", "-f"]);
    assert!(
        pruned.contains(&left[0]) && pruned.contains("Total reclaimed space"),
        "{pruned}"
    );
    let mut kept = names(&e, &[]);
    kept.sort();
    assert_eq!(kept, ["cfg", "dbdata"], "prune without -a keeps named volumes");
    let df = ok(&e, &["system", "df"]);
    let row: Vec<&str> = df
        .lines()
        .find_map(|l| l.strip_prefix("Local Volumes"))
        .unwrap_or_else(|| panic!("{df}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[..2], ["2", "1"], "two volumes, dbdata in use: {df}");

    // tmpfs: --tmpfs, --mount type=tmpfs and a tmpfs volume; none outlives its container
    // unless it is a named volume.
    let mounts = ok(
        &e,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch:size=1m",
            img,
            "grep",
            " /scratch ",
            "/proc/mounts",
        ],
    );
    assert!(mounts.starts_with("tmpfs /scratch tmpfs"), "{mounts}");
    let mounts = ok(
        &e,
        &[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            img,
            "grep",
            " /t ",
            "/proc/mounts",
        ],
    );
    assert!(mounts.contains("tmpfs"), "{mounts}");
    ok(
        &e,
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=1m",
            "tv",
        ],
    );
    let mounts = ok(
        &e,
        &["run", "--rm", "-v", "tv:/tv", img, "grep", " /tv ", "/proc/mounts"],
    );
    assert!(mounts.contains("tmpfs"), "{mounts}");

    // Bind: a missing host path of -v is made (as Docker does); --mount wants it to exist.
    let host = tempfile::tempdir().expect("tempdir");
    let made = host.path().join("new/dir");
    let spec = format!("{}:/x", made.display());
    ok(
        &e,
        &["run", "--rm", "-v", &spec, img, "sh", "-c", "echo from-ctr > /x/out"],
    );
    assert_eq!(std::fs::read_to_string(made.join("out")).expect("out"), "from-ctr\n");
    let missing = format!("type=bind,src={},dst=/x", host.path().join("nope").display());
    fails(&e, &["run", "--rm", "--mount", &missing, img, "true"], "does not exist");
    fails(&e, &["run", "--rm", "-v", "not a name:/x", img, "true"], "neither");

    ok(&e, &["rm", "-f", "holder"]);
    for name in ["dbdata", "cfg", "tv"] {
        ok(&e, &["volume", "rm", name]);
    }
    assert!(names(&e, &[]).is_empty(), "{:?}", names(&e, &[]));
    let root = e.berthd.root().join("volumes");
    assert!(berth_e2e::berthd::mounts_under(&root).is_empty());
    assert_eq!(std::fs::read_dir(&root).expect("volumes dir").count(), 0);
    assert_eq!(ok(&e, &["pods", "-q"]), "");
}
