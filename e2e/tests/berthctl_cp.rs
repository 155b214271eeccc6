//! `berthctl cp` against a real berthd, with Docker's path rules both ways, on a running
//! and a stopped container, tar streams on stdin/stdout, owners, and paths that try to
//! lead out of the container (symlinks in it are resolved inside it).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::workload::{env, Env};

fn ctl(e: &Env, args: &[&str], stdin: Option<&str>) -> CtlOut {
    berthctl(&e.berthd.endpoint(), args, stdin).expect("berthctl")
}

fn ok(e: &Env, args: &[&str]) -> String {
    berth_e2e::ctl::ok(&e.berthd.endpoint(), args)
}

fn fails(e: &Env, args: &[&str], says: &str) {
    berth_e2e::ctl::fails(&e.berthd.endpoint(), args, says)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn cp_both_ways_with_dockers_rules_and_nothing_leads_out() {
    let e = env(None).await;
    let setup = "mkdir -p /app/sub && echo one > /app/a && echo two > /app/sub/b && \
                 ln -s /etc/passwd /app/link && ln -s / /app/esc && touch /ready; exec sleep 300";
    ok(&e, &["run", "-d", "--name", "box", &e.image, "sh", "-c", setup]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctl(&e, &["exec", "box", "test", "-f", "/ready"], None).ok {
        assert!(Instant::now() < deadline, "the container never got ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let host = tempfile::tempdir().expect("tempdir");
    let h = |p: &str| host.path().join(p);
    let hs = |p: &str| h(p).display().to_string();

    // Container to host.
    ok(&e, &["cp", "box:/app/a", &hs("a.txt")]);
    assert_eq!(read(&h("a.txt")), "one\n");
    ok(&e, &["cp", "box:/app", &hs("out")]);
    assert_eq!(read(&h("out/sub/b")), "two\n");
    assert_eq!(
        std::fs::read_link(h("out/link")).expect("symlink"),
        Path::new("/etc/passwd")
    );
    std::fs::create_dir(h("into")).expect("mkdir");
    ok(&e, &["cp", "box:/app", &hs("into")]);
    assert_eq!(read(&h("into/app/a")), "one\n");
    std::fs::create_dir(h("contents")).expect("mkdir");
    ok(&e, &["cp", "box:/app/.", &hs("contents")]);
    assert_eq!(read(&h("contents/a")), "one\n");
    ok(&e, &["cp", "-L", "box:/app/link", &hs("passwd")]);
    assert!(read(&h("passwd")).starts_with("root:"), "the container's passwd");
    let tar = ctl(&e, &["cp", "box:/app/sub", "-"], None);
    assert!(
        tar.ok && tar.stdout.contains("sub/b") && tar.stdout.contains("two"),
        "{}",
        tar.stderr
    );
    // A symlink to / in the container is the container's root, not the host's.
    ok(&e, &["cp", "box:/app/esc/etc/hostname", &hs("hostname")]);
    assert_eq!(read(&h("hostname")).trim(), "box");
    fails(&e, &["cp", "box:/nope", &hs("x")], "does not exist");
    fails(
        &e,
        &["cp", "box:/app", &hs("a.txt")],
        "cannot copy a directory to the file",
    );
    fails(
        &e,
        &["cp", "box:/app/a", &format!("{}/", hs("missing"))],
        "not a directory",
    );

    // Host to container: owners become root's unless -a.
    std::fs::write(h("in.txt"), "in\n").expect("write");
    std::os::unix::fs::chown(h("in.txt"), Some(1234), Some(1234)).expect("chown");
    ok(&e, &["cp", &hs("in.txt"), "box:/tmp/"]);
    assert_eq!(
        ok(&e, &["exec", "box", "stat", "-c", "%u %n", "/tmp/in.txt"]),
        "0 /tmp/in.txt\n"
    );
    ok(&e, &["cp", "-a", &hs("in.txt"), "box:/tmp/kept.txt"]);
    assert_eq!(ok(&e, &["exec", "box", "stat", "-c", "%u", "/tmp/kept.txt"]), "1234\n");
    ok(&e, &["cp", &hs("out"), "box:/tmp/newdir"]);
    assert_eq!(ok(&e, &["exec", "box", "cat", "/tmp/newdir/sub/b"]), "two\n");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    archive
        .append_data(&mut header, "fromtar.txt", &b"hi\n"[..])
        .expect("tar");
    let archive = String::from_utf8(archive.into_inner().expect("tar")).expect("ascii tar");
    let out = ctl(&e, &["cp", "-", "box:/tmp"], Some(&archive));
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(ok(&e, &["exec", "box", "cat", "/tmp/fromtar.txt"]), "hi\n");
    // Through the container's symlink to /: it lands in the container's root.
    let marker = format!("berth-cp-{}", std::process::id());
    std::fs::write(h(&marker), "x").expect("write");
    ok(&e, &["cp", &hs(&marker), "box:/app/esc/"]);
    assert_eq!(ok(&e, &["exec", "box", "cat", &format!("/{marker}")]), "x");
    assert!(!Path::new("/").join(&marker).exists(), "written on the host's root");

    // A stopped container: its files are still there, both ways.
    ok(&e, &["stop", "-t", "0", "box"]);
    ok(&e, &["cp", "box:/tmp/in.txt", &hs("back.txt")]);
    assert_eq!(read(&h("back.txt")), "in\n");
    ok(&e, &["cp", &hs("a.txt"), "box:/tmp/while-stopped"]);
    ok(&e, &["start", "box"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctl(&e, &["exec", "box", "test", "-f", "/tmp/while-stopped"], None).ok {
        assert!(Instant::now() < deadline, "the file copied in while stopped is gone");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::metadata(h("back.txt")).expect("meta").uid(),
        0,
        "the host copy is ours"
    );

    ok(&e, &["rm", "-f", "box"]);
    assert_eq!(ok(&e, &["pods", "-q"]), "");
}
