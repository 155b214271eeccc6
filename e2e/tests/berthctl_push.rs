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

/// GETs `range` (`FIRST-LAST`, inclusive) of a blob from the registry, as a lazy reader does.
async fn blob_range(reg: &TestRegistry, repo: &str, digest: &str, first: u64, last: u64) -> Vec<u8> {
    let r = reqwest::Client::new()
        .get(format!("{}/v2/{repo}/blobs/{digest}", reg.url()))
        .header(reqwest::header::RANGE, format!("bytes={first}-{last}"))
        .send()
        .await
        .expect("range request");
    assert_eq!(
        r.status(),
        reqwest::StatusCode::PARTIAL_CONTENT,
        "bytes={first}-{last} of {digest}"
    );
    let body = r.bytes().await.expect("range body").to_vec();
    assert_eq!(body.len() as u64, last - first + 1);
    body
}

/// The registry's OCI manifest of `repo:tag`.
async fn manifest_of(reg: &TestRegistry, repo: &str, tag: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/v2/{repo}/manifests/{tag}", reg.url()))
        .header(reqwest::header::ACCEPT, "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("manifest json")
}

/// `berthctl convert --estargz`: a gzip and a zstd layer become eStargz layers under a new
/// name; pushed, each is read back from the registry by ranges only (footer, TOC checked
/// against the manifest's annotation, every chunk checked against the TOC, a large file in
/// several chunks); pulled afresh by name it runs with the same file contents.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_converted_to_estargz_is_read_by_ranges_and_runs() {
    use berth::image::estargz;
    let dst = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let e = env_with(None, Some(format!("insecure_registries = [\"{}\"]\n", dst.addr()))).await;
    let random = random_layer(9 << 20, 7, Compression::Zstd);
    let spec = ImageSpec {
        layers: vec![busybox_layer(Compression::Gzip), random],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    let src = push_built(&e.registry(), "src/lazy", "1", &spec.build(), None)
        .await
        .expect("push to the source registry");
    let src_ref = src.image_ref(&e.registry());
    ok(&e, &["pull", &src_ref]);
    let target = format!("{}/team/lazy:1", dst.addr());
    let out = ctl(&e, &["convert", "--estargz", "nosuch/image:1", &target], None);
    assert!(!out.ok && out.stderr.contains("nosuch/image:1"), "{}", out.stderr);
    let out = ctl(
        &e,
        &[
            "convert",
            "--estargz",
            &src_ref,
            &format!("{target}@sha256:{}", "0".repeat(64)),
        ],
        None,
    );
    assert!(!out.ok && out.stderr.contains("digest"), "{}", out.stderr);
    let id = ok(&e, &["convert", "--estargz", &src_ref, &target])
        .stdout
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    ok(&e, &["push", &target]);

    let manifest = manifest_of(&dst, "team/lazy", "1").await;
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "{manifest}");
    let mut files = std::collections::BTreeMap::new();
    for layer in layers {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let digest = layer["digest"].as_str().expect("digest");
        let size = layer["size"].as_u64().expect("size");
        let toc_digest = layer["annotations"][estargz::TOC_DIGEST_ANNOTATION]
            .as_str()
            .expect("TOC digest annotation");
        let footer = blob_range(&dst, "team/lazy", digest, size - 51, size - 1).await;
        let toc_at = estargz::footer_offset(&footer).expect("footer");
        let member = blob_range(&dst, "team/lazy", digest, toc_at, size - 52).await;
        let toc = estargz::read_toc(&member, &berth::digest::Digest::parse(toc_digest).expect("digest")).expect("TOC");
        let other = berth::digest::Digest::of(b"not the TOC");
        assert!(estargz::read_toc(&member, &other).is_err());
        // Each chunk's member ends where the next member (or the TOC) begins.
        let mut starts: Vec<u64> = toc.entries.iter().map(|e| e.offset).filter(|o| *o > 0).collect();
        starts.push(toc_at);
        starts.sort();
        let mut size_of = 0;
        for entry in toc.entries.iter().filter(|e| !e.chunk_digest.is_empty()) {
            if entry.kind == "reg" {
                size_of = entry.size;
                files.insert(entry.name.clone(), (entry.digest.clone(), Vec::new(), 0));
            }
            let end = *starts.iter().find(|s| **s > entry.offset).expect("a member after it");
            let bytes = blob_range(&dst, "team/lazy", digest, entry.offset, end - 1).await;
            let data = estargz::chunk(&bytes, entry, size_of).expect("chunk verifies");
            let file = files.get_mut(&entry.name).expect("its reg entry first");
            file.1.extend(data);
            file.2 += 1;
        }
    }
    for (name, (digest, data, _)) in &files {
        assert_eq!(berth::digest::Digest::of(data).to_string(), *digest, "{name}");
    }
    let (_, big, chunks) = &files["data/random-7.bin"];
    assert_eq!(*chunks, 3, "9 MiB in chunks of 4 MiB");
    assert_eq!(big.len(), 9 << 20);
    assert!(files.contains_key("bin/busybox"), "{:?}", files.keys());

    // `build --estargz`: the image built has eStargz layers, the base image's too; built
    // again (cached), it is the same image.
    let built_ref = format!("{}/team/built:1", dst.addr());
    let dockerfile = format!("FROM {src_ref}\nENV BUILT=estargz\n");
    let build = |e: &Env| {
        let out = ctl(
            e,
            &["build", "--estargz", "-q", "-t", &built_ref, "-"],
            Some(&dockerfile),
        );
        assert!(out.ok, "build: {}", out.stderr);
        out.stdout.trim().to_string()
    };
    let built = build(&e);
    assert_eq!(build(&e), built);
    assert_ne!(built, id);
    ok(&e, &["push", &built_ref]);
    let manifest = manifest_of(&dst, "team/built", "1").await;
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "{manifest}");
    assert!(
        layers
            .iter()
            .all(|l| l["annotations"][estargz::TOC_DIGEST_ANNOTATION].is_string()),
        "{manifest}"
    );
    ok(&e, &["rmi", &built_ref]);

    // Pulled afresh by name, as any runtime would, it runs with the same contents.
    ok(&e, &["rmi", &target, &src_ref]);
    ok(&e, &["pull", &target]);
    let out = ok(
        &e,
        &["run", "--rm", &target, "busybox", "sha256sum", "/data/random-7.bin"],
    );
    let want = berth::digest::Digest::of(big);
    assert!(out.stdout.starts_with(want.hex()), "{} vs {want}", out.stdout);
}
