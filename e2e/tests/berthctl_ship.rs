//! "Package it, ship it, run it" with nothing but Berth, the way a person new to it would
//! type it: a small web app (Dockerfile + index.html) is built with `berthctl build -t app .`
//! from its directory, run with a published port and its page fetched; an unchanged
//! rebuild takes every step from the cache and gives the same image; the image is tagged
//! for a registry that wants a password, pushed after `berthctl login`, removed from the
//! node under both names, pulled back by the pushed digest (the very image that was built)
//! and run again, serving the same page. Each step checks what the person would see.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::ctl::{berthctl_binary, CtlOut};
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::workload::{env_with, Env};

const PAGE: &str = "<h1>Hello from the shipped app</h1>";

/// The person's shell: `berthctl ARGS` in the app's directory, with `DOCKER_CONFIG`
/// pointing at the test's own credentials directory (never root's ~/.docker).
struct Shell<'a> {
    e: &'a Env,
    cwd: &'a Path,
    docker_config: &'a Path,
}

impl Shell<'_> {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> CtlOut {
        let mut child = Command::new(berthctl_binary().expect("berthctl (cargo build --bins)"))
            .args(["-r", &self.e.berthd.endpoint()])
            .args(args)
            .current_dir(self.cwd)
            .env("DOCKER_CONFIG", self.docker_config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("berthctl runs");
        if let Some(mut input) = child.stdin.take() {
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).expect("stdin");
            }
        }
        let out = child.wait_with_output().expect("berthctl output");
        CtlOut {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `berthctl ARGS`, insisting that it succeeds.
    fn ok(&self, args: &[&str]) -> CtlOut {
        let out = self.run(args, None);
        assert!(
            out.ok,
            "berthctl {args:?} failed: {}\nstdout: {}",
            out.stderr, out.stdout
        );
        out
    }

    /// `berthctl build ARGS`; the image id from `Successfully built`, and the progress.
    fn build(&self, args: &[&str]) -> (String, CtlOut) {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        let id = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Successfully built "))
            .unwrap_or_else(|| panic!("no `Successfully built` line: {}", out.stdout))
            .to_string();
        assert!(id.starts_with("sha256:") && id.len() == 71, "the image id: {id}");
        (id, out)
    }

    /// `REPOSITORY:TAG` of every image `images` lists.
    fn image_names(&self) -> Vec<String> {
        let out = self.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        out.stdout.lines().map(str::to_string).collect()
    }

    /// The page served on `port` of the host, through the pod network's gateway of the
    /// pod `name` (the node's address on that bridge), waiting up to 20 s for `PAGE`.
    fn page_of(&self, name: &str, port: u16) -> String {
        let pod: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspectp", "-o", "json", name]).stdout).expect("inspectp json");
        let ip = pod["status"]["network"]["ip"]
            .as_str()
            .expect("the pod's ip")
            .to_string();
        let gateway = format!("{}.1", ip.rsplit_once('.').expect("an ipv4 address").0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let page = fetch((gateway.as_str(), port));
            if page.contains(PAGE) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "no page on {gateway}:{port}; last answer: {page:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The step lines of a build's progress (`[i/N] INSTRUCTION`), each with whether a
/// `[i] CACHED` line followed it.
fn steps(progress: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for line in progress.lines() {
        let Some(rest) = line.strip_prefix('[') else { continue };
        let Some((counter, text)) = rest.split_once("] ") else {
            continue;
        };
        if counter.contains('/') {
            out.push((text.to_string(), false));
        } else if text == "CACHED" {
            out.last_mut().expect("a step before CACHED").1 = true;
        }
    }
    out
}

/// GET / from `addr`; the whole answer ("" when nothing answered).
fn fetch(addr: (&str, u16)) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: app\r\n\r\n");
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page
}

#[tokio::test(flavor = "multi_thread")]
async fn package_ship_and_run_an_app() {
    // A registry that wants a password, and a node that reaches it over plain HTTP. Declared
    // in this order, so berthd (and its pods) goes before the registry when the test ends.
    let registry = TestRegistry::start(RegistryOpts {
        htpasswd: Some(("dev".into(), "shipit".into())),
    })
    .await
    .expect("registry");
    let e = env_with(None, Some(format!("insecure_registries = [\"{}\"]\n", registry.addr()))).await;
    let app_dir = tempfile::tempdir().expect("app dir");
    let creds = tempfile::tempdir().expect("DOCKER_CONFIG dir");
    let sh = Shell {
        e: &e,
        cwd: app_dir.path(),
        docker_config: creds.path(),
    };

    // 1. The app: a page and a Dockerfile serving it with busybox's nc.
    let dockerfile = format!(
        r#"FROM {base}
WORKDIR /app
COPY index.html .
EXPOSE 80
CMD ["sh", "-c", "while true; do {{ printf 'HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n'; cat index.html; }} | nc -l -p 80; done"]
"#,
        base = e.image
    );
    std::fs::write(app_dir.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
    std::fs::write(app_dir.path().join("index.html"), format!("{PAGE}\n")).expect("index.html");

    // 2. build -t app . — every step run (none cached), the tag named.
    let (id, out) = sh.build(&["-t", "app", "."]);
    let first = steps(&out.stderr);
    let instructions: Vec<&str> = first
        .iter()
        .map(|(i, _)| i.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(
        instructions,
        ["FROM", "WORKDIR", "COPY", "EXPOSE", "CMD"],
        "{}",
        out.stderr
    );
    assert!(
        first.iter().skip(1).all(|(_, cached)| !cached),
        "a first build took steps from the cache: {}",
        out.stderr
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("Successfully tagged ") && l.contains("app")),
        "{}",
        out.stdout
    );
    let names = sh.image_names();
    assert!(
        names
            .iter()
            .any(|n| n == "app:latest" || n == "docker.io/library/app:latest"),
        "images lists the new app: {names:?}"
    );

    // run -d -p: the page comes back through the published port.
    let port = berth_e2e::free_port();
    let run = sh.ok(&["run", "-d", "--name", "web", "-p", &format!("{port}:80"), "app"]);
    assert_eq!(
        run.stdout.trim().len(),
        64,
        "run -d prints the container id: {}",
        run.stdout
    );
    let page = sh.page_of("web", port);
    assert!(page.starts_with("HTTP/1.0 200 OK"), "{page}");
    let ps = sh.ok(&["ps"]).stdout;
    assert!(ps.contains("web") && ps.contains(&format!("{port}->80/tcp")), "{ps}");

    // 5 (done before the image leaves the node). A warm rebuild of the unchanged app: every
    // step after FROM from the cache, and the very same image id.
    let (again, out) = sh.build(&["-t", "app", "."]);
    let warm = steps(&out.stderr);
    assert_eq!(warm.len(), first.len(), "{}", out.stderr);
    assert!(
        warm.iter()
            .filter(|(i, _)| !i.starts_with("FROM"))
            .all(|(_, cached)| *cached),
        "an unchanged rebuild ran a step: {}",
        out.stderr
    );
    assert_eq!(again, id, "an unchanged rebuild gave another image: {}", out.stderr);

    // 3. login, tag, push.
    let reg = registry.addr();
    let target = format!("{reg}/team/app:v1");
    sh.ok(&["tag", "app", &target]);
    // Forgot to log in: refused, and the registry has no tag.
    let out = sh.run(&["push", &target], None);
    assert!(
        !out.ok && out.stderr.contains("authentication failed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let link = registry
        .storage_dir()
        .join("docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link");
    assert!(!link.exists(), "a refused push left a tag");
    let out = sh.run(&["login", &reg, "-u", "dev", "--password-stdin"], Some("shipit\n"));
    assert!(out.ok, "login: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.stdout);
    let stored = std::fs::read_to_string(creds.path().join("config.json")).expect("config.json written");
    assert!(stored.contains(&reg), "the credentials are stored for {reg}: {stored}");
    let out = sh.ok(&["push", &target]);
    let last = out.stdout.lines().last().unwrap_or_default().to_string();
    let (digest, size) = last
        .strip_prefix("v1: digest: ")
        .and_then(|r| r.split_once(" size: "))
        .unwrap_or_else(|| panic!("push ends with `v1: digest: ... size: N`: {}", out.stdout));
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{last}");
    assert!(size.parse::<u64>().expect("size is a number") > 0, "{last}");
    let digest = digest.to_string();
    assert_eq!(
        std::fs::read_to_string(&link).expect("the registry's tag").trim(),
        digest,
        "the registry's v1 tag points at the printed digest"
    );
    assert_ne!(digest, id, "the manifest digest is not the image (config) id");

    // 4. rm -f web; rmi both names; images no longer lists them.
    sh.ok(&["rm", "-f", "web"]);
    assert_eq!(sh.ok(&["ps", "-a", "-q"]).stdout.trim(), "", "a container is left");
    let names = sh.image_names();
    assert!(
        names.iter().any(|n| n == &format!("{reg}/team/app:v1")),
        "images lists the registry tag before rmi: {names:?}"
    );
    sh.ok(&["rmi", "app"]);
    sh.ok(&["rmi", &target]);
    let names = sh.image_names();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("/team/app") || n.ends_with("app:latest")),
        "images still lists the app: {names:?}"
    );
    let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
    let ids = sh.ok(&["images", "-q"]).stdout;
    assert!(!ids.contains(&short), "the image {short} is still stored: {ids}");

    // Pull it back by digest from the registry (credentials from the login) and run it.
    let by_digest = format!("{reg}/team/app@{digest}");
    sh.ok(&["pull", &by_digest]);
    let back: serde_json::Value =
        serde_json::from_str(&sh.ok(&["inspecti", "-o", "json", &by_digest]).stdout).expect("inspecti json");
    assert_eq!(
        back["status"]["id"].as_str(),
        Some(id.as_str()),
        "the image pulled back is the one built: {back}"
    );
    let port = berth_e2e::free_port();
    sh.ok(&["run", "-d", "--name", "web", "-p", &format!("{port}:80"), &by_digest]);
    let page = sh.page_of("web", port);
    assert!(page.starts_with("HTTP/1.0 200 OK"), "{page}");
    sh.ok(&["rm", "-f", "web"]);
    assert_eq!(sh.ok(&["ps", "-a", "-q"]).stdout.trim(), "", "a container is left");
    assert_eq!(sh.ok(&["pods", "-q"]).stdout.trim(), "", "a pod is left");
}
