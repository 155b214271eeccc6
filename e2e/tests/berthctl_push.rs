//! `berthctl push` against a real berthd and real registries: an image pulled from one
//! registry goes to another that wants credentials (refused without them, leaving no tag;
//! pushed after `berthctl login`, a large layer in chunks), again (every blob already
//! there), to a second repository (blobs mounted across repositories), and comes back by
//! the printed digest and runs. An image that came as an index with only this node's
//! platform stored goes up as its platform manifest. A bearer token service is answered
//! with the push's credentials.

use std::path::{Path, PathBuf};

use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::image::{busybox_layer, push_built, push_index, random_layer, Compression, ImageSpec};
use berth_e2e::proxy::TokenAuthProxy;
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::workload::{env_with, Env};

fn ctl(e: &Env, args: &[&str], stdin: Option<&str>) -> CtlOut {
    berthctl(&e.berthd.endpoint(), args, stdin).expect("berthctl (cargo build --bins)")
}

fn ok(e: &Env, args: &[&str]) -> CtlOut {
    let out = ctl(e, args, None);
    assert!(
        out.ok,
        "berthctl {args:?} failed: {}\nstdout: {}",
        out.stderr, out.stdout
    );
    out
}

fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}

/// The registry's own record of a repository's tag: the digest it points to, if any.
fn tag_link(reg: &TestRegistry, repo: &str, tag: &str) -> Option<String> {
    let path = repo_dir(reg, repo).join(format!("_manifests/tags/{tag}/current/link"));
    std::fs::read_to_string(path).ok()
}

fn repo_dir(reg: &TestRegistry, repo: &str) -> PathBuf {
    reg.storage_dir().join("docker/registry/v2/repositories").join(repo)
}

/// Whether the repository links the blob (uploaded or mounted into it).
fn has_layer_link(reg: &TestRegistry, repo: &str, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    repo_dir(reg, repo).join(format!("_layers/sha256/{hex}/link")).is_file()
}

fn config_arg(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_with_login_again_across_repositories_and_pull_back() {
    let dst = TestRegistry::start(RegistryOpts {
        htpasswd: Some(("alice".into(), "s3cret".into())),
    })
    .await
    .expect("registry");
    let e = env_with(None, Some(format!("insecure_registries = [\"{}\"]\n", dst.addr()))).await;
    // A busybox layer and one large enough to go up in several chunks.
    let spec = ImageSpec {
        layers: vec![
            busybox_layer(Compression::Gzip),
            random_layer(20 << 20, 11, Compression::Gzip),
        ],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    let built = spec.build();
    let src = push_built(&e.registry(), "src/big", "1", &built, None)
        .await
        .expect("push to the source registry");
    let src_ref = src.image_ref(&e.registry());
    ok(&e, &["pull", &src_ref]);
    let blobs: Vec<String> = src
        .layer_digests
        .iter()
        .cloned()
        .chain(std::iter::once(src.config_digest.clone()))
        .collect();

    let target = format!("{}/team/app:v1", dst.addr());
    ok(&e, &["tag", &src_ref, &target]);
    let creds = tempfile::tempdir().expect("tempdir");
    let config = creds.path().join("config.json");
    let cfg = config_arg(&config);

    // Without credentials: refused, and the registry has no tag.
    let out = ctl(&e, &["push", &target, "--config", &cfg], None);
    assert!(
        !out.ok && out.stderr.contains("authentication failed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(tag_link(&dst, "team/app", "v1"), None);

    let out = ctl(
        &e,
        &[
            "login",
            &dst.addr(),
            "-u",
            "alice",
            "--password-stdin",
            "--config",
            &cfg,
        ],
        Some("s3cret\n"),
    );
    assert!(out.ok, "{}{}", out.stdout, out.stderr);

    // Pushed: every blob uploaded (the large one in pieces), Docker's summary line, and the
    // tag in the registry pointing at the very manifest pulled.
    let out = ok(&e, &["push", &target, "--config", &cfg]);
    assert_eq!(
        out.stdout.trim(),
        format!("v1: digest: {} size: {}", src.manifest_digest, built.manifest.len()),
        "{}",
        out.stderr
    );
    for blob in &blobs {
        assert!(
            out.stderr.contains(&format!("{}: pushed", short(blob))),
            "{blob}: {}",
            out.stderr
        );
        assert!(has_layer_link(&dst, "team/app", blob), "{blob} in team/app");
    }
    let big = short(&src.layer_digests[1]);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with(&format!("{big}: pushing ")) && l.contains('/')),
        "the large layer went up in chunks: {}",
        out.stderr
    );
    assert_eq!(
        tag_link(&dst, "team/app", "v1").as_deref(),
        Some(src.manifest_digest.as_str())
    );

    // Again: every blob is there already.
    let out = ok(&e, &["push", &target, "--config", &cfg]);
    assert_eq!(
        out.stderr.matches("layer already exists").count(),
        blobs.len(),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(": pushed"), "{}", out.stderr);
    assert!(out.stdout.contains(&src.manifest_digest), "{}", out.stdout);

    // To a second repository of the same registry: mounted, not uploaded. -q prints
    // NAME@DIGEST alone.
    let other = format!("{}/other/app:v2", dst.addr());
    ok(&e, &["tag", &src_ref, &other]);
    let out = ok(&e, &["push", &other, "--config", &cfg]);
    assert_eq!(
        out.stderr.matches("mounted from team/app").count(),
        blobs.len(),
        "{}",
        out.stderr
    );
    for blob in &blobs {
        assert!(has_layer_link(&dst, "other/app", blob), "{blob} in other/app");
    }
    assert_eq!(
        tag_link(&dst, "other/app", "v2").as_deref(),
        Some(src.manifest_digest.as_str())
    );
    let out = ok(&e, &["push", "-q", &other, "--config", &cfg]);
    assert_eq!(
        out.stdout.trim(),
        format!("{}/other/app@{}", dst.addr(), src.manifest_digest)
    );
    assert_eq!(out.stderr, "");

    // An image this node does not have.
    let out = ctl(
        &e,
        &["push", &format!("{}/team/none:1", dst.addr()), "--config", &cfg],
        None,
    );
    assert!(!out.ok && out.stderr.contains("not found"), "{}", out.stderr);
    assert_eq!(tag_link(&dst, "team/none", "1"), None);

    // Gone from the node, then back by the printed digest from the pushed-to registry; it runs.
    ok(&e, &["rmi", "-f", &src.config_digest]);
    let out = ok(&e, &["images", "-q"]);
    assert!(!out.stdout.contains(&short(&src.config_digest)), "{}", out.stdout);
    let by_digest = format!("{}/team/app@{}", dst.addr(), src.manifest_digest);
    ok(&e, &["pull", &by_digest, "--config", &cfg]);
    let out = ok(&e, &["run", "--rm", &by_digest, "echo", "hi"]);
    assert_eq!(out.stdout, "hi\n", "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_with_one_platform_stored_goes_up_as_its_platform_manifest() {
    let dst = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let e = env_with(None, Some(format!("insecure_registries = [\"{}\"]\n", dst.addr()))).await;
    let amd64 = ImageSpec::busybox();
    let arm64 = ImageSpec {
        layers: vec![random_layer(1 << 16, 5, Compression::Gzip)],
        arch: "arm64".into(),
        variant: Some("v8".into()),
        ..Default::default()
    };
    let (index_digest, images) = push_index(&e.registry(), "src/multi", "1", &[amd64, arm64], false, None)
        .await
        .expect("push index");
    let src_ref = format!("{}/src/multi:1", e.registry());
    ok(&e, &["pull", &src_ref]);
    let target = format!("{}/team/multi:1", dst.addr());
    ok(&e, &["tag", &src_ref, &target]);
    let out = ok(&e, &["push", &target]);
    assert!(out.stderr.contains("only some platforms"), "{}", out.stderr);
    assert!(out.stderr.contains(&index_digest), "{}", out.stderr);
    let host = &images[0];
    assert!(
        out.stdout
            .starts_with(&format!("1: digest: {} size: ", host.manifest_digest)),
        "{}",
        out.stdout
    );
    assert_eq!(
        tag_link(&dst, "team/multi", "1").as_deref(),
        Some(host.manifest_digest.as_str())
    );
    assert!(!has_layer_link(&dst, "team/multi", &images[1].layer_digests[0]));
}

// Multi-threaded: the token proxy runs in this runtime while berthctl is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_through_a_bearer_token_service() {
    let dst = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let token = TokenAuthProxy::start(&dst.addr(), "bob", "hunter2");
    let e = env_with(None, Some(format!("insecure_registries = [\"{}\"]\n", token.addr()))).await;
    let target = format!("{}/team/tok:1", token.addr());
    ok(&e, &["tag", &e.image, &target]);

    let out = ctl(&e, &["push", &target, "--creds", "bob:nope"], None);
    assert!(
        !out.ok && out.stderr.contains("authentication failed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stderr.contains("nope"), "{}", out.stderr);
    assert_eq!(tag_link(&dst, "team/tok", "1"), None);

    let out = ok(&e, &["push", &target, "--creds", "bob:hunter2"]);
    assert!(out.stdout.starts_with("1: digest: sha256:"), "{}", out.stdout);
    assert!(token.tokens_issued() >= 1);
    assert!(
        token
            .seen_auth()
            .iter()
            .any(|(path, a)| path == "/v2/team/tok/manifests/1"
                && a.as_deref().is_some_and(|a| a.starts_with("Bearer "))),
        "the manifest went up with a token"
    );
    let digest = out.stdout.split_whitespace().nth(2).expect("digest").to_string();
    assert_eq!(tag_link(&dst, "team/tok", "1"), Some(digest));
}
