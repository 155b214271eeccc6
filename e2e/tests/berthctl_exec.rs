//! `berthctl exec` with Docker's options against a real berthd: -e, -w, -u (the
//! container's own user names) and -d (the command keeps running after exec returns); and
//! the detach keys of `attach` and `run -i`.

use std::time::{Duration, Instant};

use berth_e2e::ctl::{berthctl, CtlOut};
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

#[tokio::test(flavor = "multi_thread")]
async fn exec_takes_env_workdir_user_and_detach() {
    let e = env(None).await;
    ok(
        &e,
        &["run", "-d", "--name", "ex", "-e", "KEEP=1", &e.image, "sleep", "300"],
    );
    let script = "echo $FOO $HOME $KEEP";
    assert_eq!(
        ok(
            &e,
            &["exec", "-e", "FOO=bar", "-e", "HOME=/x", "ex", "sh", "-c", script]
        ),
        "bar /x 1\n"
    );
    assert_eq!(ok(&e, &["exec", "-w", "/tmp", "ex", "sh", "-c", "pwd"]), "/tmp\n");
    assert_eq!(ok(&e, &["exec", "-u", "nobody", "ex", "id", "-u"]), "65534\n");
    assert_eq!(ok(&e, &["exec", "-u", "1234:5678", "ex", "id", "-u"]), "1234\n");
    assert_eq!(ok(&e, &["exec", "-u", "1234:5678", "ex", "id", "-g"]), "5678\n");
    assert_eq!(
        ok(&e, &["exec", "ex", "id", "-u"]),
        "0\n",
        "the container's own user otherwise"
    );
    fails(&e, &["exec", "-u", "nosuchuser", "ex", "true"], "nosuchuser");
    fails(&e, &["exec", "-w", "relative", "ex", "true"], "absolute");
    fails(&e, &["exec", "-e", "=x", "ex", "true"], "KEY=VALUE");

    let started = Instant::now();
    let out = ok(
        &e,
        &["exec", "-d", "ex", "sh", "-c", "sleep 1; echo done > /tmp/detached"],
    );
    assert_eq!(out, "");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "exec -d waited: {:?}",
        started.elapsed()
    );
    assert!(!ctl(&e, &["exec", "ex", "test", "-f", "/tmp/detached"]).ok, "too early");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctl(&e, &["exec", "ex", "test", "-f", "/tmp/detached"]).ok {
        assert!(Instant::now() < deadline, "the detached command did not run on");
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(&e, &["rm", "-f", "ex"]);
    assert_eq!(ok(&e, &["pods", "-q"]), "");
}

fn running(e: &Env, name: &str) -> bool {
    let out = ok(e, &["ps", "-q", "--name", name]);
    !out.trim().is_empty()
}

#[tokio::test(flavor = "multi_thread")]
async fn detach_keys_leave_the_container_running() {
    let e = env(None).await;
    ok(&e, &["run", "-d", "-i", "--name", "echoer", &e.image, "cat"]);
    let out = berthctl(
        &e.berthd.endpoint(),
        &["attach", "-i", "echoer"],
        Some("hello\n\x10\x11after\n"),
    )
    .expect("berthctl");
    assert!(out.ok && out.stderr.contains("read escape sequence"), "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(&e, &["logs", "echoer"]).contains("hello") {
        assert!(Instant::now() < deadline, "the input before the keys never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Given time to end, had its stdin been closed.
    std::thread::sleep(Duration::from_secs(1));
    assert!(running(&e, "echoer"), "detaching ended its input");
    assert!(
        !ok(&e, &["logs", "echoer"]).contains("after"),
        "input after the keys was sent"
    );

    // run -i, with its own keys, and --rm: detached, it keeps running (as with Docker; its
    // stdin, attached at run without a terminal, ends with that session).
    let out = berthctl(
        &e.berthd.endpoint(),
        &[
            "run",
            "-i",
            "--rm",
            "--detach-keys",
            "ctrl-a,x",
            "--name",
            "fg",
            &e.image,
            "sh",
            "-c",
            "cat; exec sleep 300",
        ],
        Some("one\n\x01x"),
    )
    .expect("berthctl");
    assert!(out.ok && out.stderr.contains("read escape sequence"), "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(&e, &["logs", "fg"]).contains("one") {
        assert!(Instant::now() < deadline, "the input before the keys never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(running(&e, "fg"));
    ok(&e, &["rm", "-f", "echoer", "fg"]);
    assert_eq!(ok(&e, &["pods", "-q"]), "");
}
