//! `berthctl build` against a real berthd: a multi-stage Dockerfile (a shell "compiler" in
//! the first stage, its output COPY --from'd into the second) is built, run with a
//! published port and its page fetched; an unchanged rebuild takes every step from the
//! cache and gives the same image; a changed file reruns only the steps after it;
//! `.dockerignore` keeps a file out; a failing RUN names its step and exit code and leaves
//! no pod, container, mount or build directory; a Dockerfile on stdin builds too.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::berthd::mounts_under;
use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::workload::{env, Env};

fn run(e: &Env, args: &[&str], stdin: Option<&str>) -> CtlOut {
    berthctl(&e.berthd.endpoint(), args, stdin).expect("berthctl")
}

fn ok(e: &Env, args: &[&str]) -> String {
    berth_e2e::ctl::ok(&e.berthd.endpoint(), args)
}

/// Builds; returns (image id, progress output).
fn build(e: &Env, args: &[&str]) -> (String, String) {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let out = run(e, &all, None);
    assert!(out.ok, "build {args:?} failed:\n{}\n{}", out.stderr, out.stdout);
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .expect("the image id")
        .to_string();
    (id, out.stderr)
}

/// The step lines of a build's progress, each with whether it was cached.
fn steps(progress: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for line in progress.lines() {
        if line.starts_with('[') && line.contains("/") && line.contains("] ") {
            out.push((line.split_once("] ").expect("step").1.to_string(), false));
        } else if line.starts_with('[') && line.ends_with("] CACHED") {
            out.last_mut().expect("a step before").1 = true;
        }
    }
    out
}

fn fetch(addr: (&str, u16)) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page
}

/// The blobs of a saved archive, as text (to look for media types and config keys).
fn blobs_text(archive: &Path) -> String {
    let out = std::process::Command::new("tar")
        .args([
            "-xOf",
            archive.to_str().expect("utf-8"),
            "--wildcards",
            "blobs/sha256/*",
        ])
        .output()
        .expect("tar");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Nothing of a build is left: no pod, container or build directory, nothing mounted
/// but what `expected_mounts` says (containers still around).
fn nothing_left(e: &Env, mounted_before: usize) {
    assert_eq!(ok(e, &["pods", "-q"]).trim(), "", "a build pod is left");
    assert_eq!(ok(e, &["ps", "-a", "-q"]).trim(), "", "a build container is left");
    let builds = e.berthd.root().join("builds");
    let left: Vec<_> = std::fs::read_dir(&builds)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "build directories left: {left:?}");
    assert_eq!(mounts_under(e.berthd.root()).len(), mounted_before, "a mount is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn build_run_rebuild_and_fail_cleanly() {
    let e = env(None).await;
    let img = e.image.as_str();
    ok(&e, &["pull", img]);
    let mounted = mounts_under(e.berthd.root()).len();
    let ctx = tempfile::tempdir().expect("context");
    let c = ctx.path();
    let dockerfile = format!(
        r#"# syntax=docker/dockerfile:1
ARG BASE={img}
FROM ${{BASE}} AS compile
WORKDIR /src
COPY gen.sh ./
RUN sh gen.sh > /page.txt \
    && echo compiled

FROM ${{BASE}}
LABEL org.example.app=demo
ENV GREETING=hello PORT=80
COPY --from=compile /page.txt /www/page.txt
COPY static/ /www/static/
COPY . /ctx/
EXPOSE 80
CMD ["sh", "-c", "while true; do {{ printf 'HTTP/1.0 200 OK\r\n\r\n'; cat /www/page.txt /www/static/*; }} | nc -l -p $PORT; done"]
"#
    );
    write(c, "Dockerfile", &dockerfile);
    write(c, "gen.sh", "echo \"page by $(whoami) in $(pwd)\"\n");
    write(c, "static/a.txt", "static one\n");
    write(c, "secret.txt", "do not ship\n");
    write(c, ".dockerignore", "secret.txt\n");

    let (id, progress) = build(&e, &["-t", "app:v1", c.to_str().expect("utf-8")]);
    assert!(progress.contains("compiled"), "RUN output is streamed: {progress}");
    let first = steps(&progress);
    assert_eq!(first.len(), 12, "{progress}");
    assert!(
        first
            .iter()
            .filter(|(i, _)| !i.starts_with("FROM"))
            .all(|(_, cached)| !cached),
        "{progress}"
    );

    // Run it and fetch its page through a published port.
    let port = berth_e2e::free_port();
    ok(
        &e,
        &["run", "-d", "--name", "web", "-p", &format!("{port}:80"), "app:v1"],
    );
    let pod: serde_json::Value = serde_json::from_str(&ok(&e, &["inspectp", "-o", "json", "web"])).expect("json");
    let ip = pod["status"]["network"]["ip"].as_str().expect("pod ip").to_string();
    let gateway = format!("{}.1", ip.rsplit_once('.').expect("ipv4").0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut page = String::new();
    while !page.contains("static one") {
        assert!(Instant::now() < deadline, "no page: {page:?}");
        std::thread::sleep(Duration::from_millis(100));
        page = fetch((gateway.as_str(), port));
    }
    assert!(page.contains("page by root in /src"), "{page}");
    ok(&e, &["rm", "-f", "web"]);
    assert_eq!(
        ok(&e, &["run", "--rm", "app:v1", "sh", "-c", "echo $GREETING; ls /ctx"]),
        "hello\nDockerfile\ngen.sh\nstatic\n",
        ".dockerignore kept secret.txt out, the context's other files are there"
    );
    let inspect = ok(&e, &["image", "inspect", "app:v1"]);
    assert!(
        inspect.contains("org.example.app") && inspect.contains("80/tcp"),
        "{inspect}"
    );
    let history = ok(&e, &["history", "--no-trunc", "app:v1"]);
    assert!(history.contains("COPY static/ /www/static/"), "{history}");

    // Unchanged: every step from the cache, the same image.
    let (again, progress) = build(&e, &["-t", "app:v1", c.to_str().expect("utf-8")]);
    assert_eq!(again, id, "{progress}");
    assert!(steps(&progress).iter().all(|(_, cached)| *cached), "{progress}");

    // One file changed: the steps before its COPY are cached, it and the later ones run.
    write(c, "static/a.txt", "static two\n");
    let (changed, progress) = build(&e, &["-t", "app:v2", c.to_str().expect("utf-8")]);
    assert_ne!(changed, id);
    let s = steps(&progress);
    let at = s
        .iter()
        .position(|(i, _)| i.starts_with("COPY static/"))
        .expect("the COPY step");
    assert!(s[..at].iter().all(|(_, cached)| *cached), "{progress}");
    assert!(
        s[at..].iter().all(|(i, cached)| !cached || !i.starts_with("COPY")),
        "{progress}"
    );
    assert!(!s[at].1, "{progress}");
    assert_eq!(
        ok(&e, &["run", "--rm", "app:v2", "cat", "/www/static/a.txt"]),
        "static two\n"
    );
    nothing_left(&e, mounted);

    // The steps' images are the cache: listed with -a only, and pruned as dangling.
    assert!(!ok(&e, &["images"]).contains("<none>"), "{}", ok(&e, &["images"]));
    assert!(ok(&e, &["images", "-a"]).contains("<none>"));
    ok(&e, &["image", "prune", "-f"]);
    assert!(
        !ok(&e, &["images", "-a"]).contains("<none>"),
        "{}",
        ok(&e, &["images", "-a"])
    );
    let (_, progress) = build(&e, &["-t", "app:v2", c.to_str().expect("utf-8")]);
    assert!(
        steps(&progress).iter().any(|(_, cached)| !cached),
        "no cache after a prune: {progress}"
    );

    // A failing RUN names its step and exit code and leaves nothing behind.
    write(
        c,
        "Dockerfile",
        &format!("FROM {img}\nRUN echo partial > /f && exit 3\n"),
    );
    let out = run(&e, &["build", "-t", "broken", c.to_str().expect("utf-8")], None);
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("[2/2] RUN echo partial") && out.stderr.contains("code 3"),
        "{}",
        out.stderr
    );
    assert!(!ok(&e, &["images"]).contains("broken"));
    nothing_left(&e, mounted);

    // Refusals: unknown instruction, a missing COPY source.
    write(c, "Dockerfile", &format!("FROM {img}\nFETCH x\n"));
    let out = run(&e, &["build", c.to_str().expect("utf-8")], None);
    assert!(!out.ok && out.stderr.contains("line 2"), "{}", out.stderr);
    write(c, "Dockerfile", &format!("FROM {img}\nCOPY nothing-here /x\n"));
    let out = run(&e, &["build", c.to_str().expect("utf-8")], None);
    assert!(!out.ok && out.stderr.contains("nothing-here"), "{}", out.stderr);
    nothing_left(&e, mounted);

    // zstd layers: an OCI image whose new layers are zstd, runnable, pushable as is.
    write(c, "Dockerfile", &format!("FROM {img}\nRUN echo z > /z\n"));
    build(&e, &["-t", "zgz", c.to_str().expect("utf-8")]);
    let (_, progress) = build(&e, &["--compression", "zstd", "-t", "zimg", c.to_str().expect("utf-8")]);
    assert!(!steps(&progress)[1].1, "gzip's cache is not zstd's: {progress}");
    assert_eq!(ok(&e, &["run", "--rm", "zimg", "cat", "/z"]), "z\n");
    let saved = tempfile::tempdir().expect("save dir");
    let archive = saved.path().join("z.tar");
    ok(
        &e,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            archive.to_str().expect("utf-8"),
            "zimg",
        ],
    );
    let blobs = blobs_text(&archive);
    assert!(blobs.contains("tar+zstd"), "the manifest names a zstd layer");

    // A Dockerfile on stdin, no context.
    let text = format!("FROM {img}\nCMD [\"echo\", \"from stdin\"]\n");
    let out = run(&e, &["build", "-q", "-t", "stdin:1", "-"], Some(&text));
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.trim().starts_with("sha256:"), "{}", out.stdout);
    assert_eq!(ok(&e, &["run", "--rm", "stdin:1"]), "from stdin\n");
}

/// RUN sees the stage's USER, WORKDIR (made when missing), ENV, SHELL and ARGs; the image
/// carries the config; FROM scratch with COPY makes a one-layer image.
#[tokio::test(flavor = "multi_thread")]
async fn run_steps_see_the_stage_and_scratch_images_work() {
    let e = env(None).await;
    let img = e.image.as_str();
    let ctx = tempfile::tempdir().expect("context");
    let c = ctx.path();
    write(
        c,
        "Dockerfile",
        &format!(
            "FROM {img} AS tools\n\
             ARG LEVEL=3\n\
             ENV MODE=test\n\
             USER 1234:5678\n\
             WORKDIR /w/x\n\
             RUN echo \"uid=$(id -u) gid=$(id -g) pwd=$(pwd) mode=$MODE level=$LEVEL\"\n\
             SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n\
             USER root\n\
             RUN echo tool > /w/tool.txt\n\
             HEALTHCHECK --interval=5s --retries=2 CMD test -e /w/tool.txt\n\
             STOPSIGNAL SIGINT\n\
             FROM scratch\n\
             COPY --from=tools --chown=7:8 /w/tool.txt /tool.txt\n\
             COPY data.tar.gz /unpacked/\n\
             ADD data.tar.gz /unpacked/\n"
        ),
    );
    // A gzip tar for ADD to unpack (and COPY to keep as it is).
    let tar_dir = tempfile::tempdir().expect("tar dir");
    write(tar_dir.path(), "inner/file.txt", "from the archive\n");
    let status = std::process::Command::new("tar")
        .args(["-czf", c.join("data.tar.gz").to_str().expect("utf-8"), "-C"])
        .arg(tar_dir.path())
        .arg("inner")
        .status()
        .expect("tar");
    assert!(status.success());
    let (_, progress) = build(
        &e,
        &[
            "--build-arg",
            "LEVEL=9",
            "-t",
            "tools",
            "--target",
            "tools",
            c.to_str().expect("utf-8"),
        ],
    );
    assert!(
        progress.contains("uid=1234 gid=5678 pwd=/w/x mode=test level=9"),
        "{progress}"
    );
    let inspect = ok(&e, &["image", "inspect", "tools"]);
    assert!(inspect.contains("SIGINT") && inspect.contains("CMD-SHELL"), "{inspect}");
    let (_, progress) = build(&e, &["-t", "minimal", c.to_str().expect("utf-8")]);
    assert!(
        progress.contains("CACHED"),
        "the tools stage comes from the cache: {progress}"
    );
    // The scratch image has no shell: look at its files from a container of the base image.
    let dir = tempfile::tempdir().expect("save dir");
    let archive = dir.path().join("minimal.tar");
    ok(&e, &["save", "-o", archive.to_str().expect("utf-8"), "minimal"]);
    let all = blobs_text(&archive);
    assert!(all.contains("\"diff_ids\""), "the config is in the archive");
    let history = ok(&e, &["history", "--no-trunc", "minimal"]);
    assert!(
        history.contains("COPY --from=tools") && history.contains("ADD data.tar.gz"),
        "{history}"
    );
    // Its files, seen from an image that copies them all.
    write(
        c,
        "Dockerfile.check",
        &format!("FROM {img}\nCOPY --from=minimal / /m/\n"),
    );
    let check = c.join("Dockerfile.check");
    build(
        &e,
        &[
            "-t",
            "check",
            "-f",
            check.to_str().expect("utf-8"),
            c.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        ok(
            &e,
            &[
                "run",
                "--rm",
                "check",
                "sh",
                "-c",
                "stat -c '%u %g' /m/tool.txt; cat /m/tool.txt /m/unpacked/inner/file.txt; ls /m/unpacked"
            ]
        ),
        "7 8\ntool\nfrom the archive\ndata.tar.gz\ninner\n"
    );
}
