//! `berthctl push` against a real berthd and real registries: an image pulled from one
//! registry goes to another that wants credentials (refused without them, leaving no tag;
//! pushed after `berthctl login`, a large layer in chunks), again (every blob already
//! there), to a second repository (blobs mounted across repositories), and comes back by
//! the printed digest and runs. An image that came as an index with only this node's
//! platform stored goes up as its platform manifest. A bearer token service is answered
//! with the push's credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth::digest::Digest;
use berth::image::auth::Credentials;
use berth::image::hosts::HostsConfig;
use berth::image::lazy::RemoteLayer;
use berth::image::reference::Reference;
use berth::image::registry::{PullAuth, RegistryClient};
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
    let mut dst = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
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
    // Berth's lazy reader opens each layer by its footer and TOC alone and reads files
    // chunk by chunk, each a closed range the real registry answers with 206.
    let client = Arc::new(RegistryClient::new(
        HostsConfig {
            insecure: vec![dst.addr().to_string()],
            ..Default::default()
        },
        Duration::from_secs(30),
    ));
    let reference = Reference::parse(&target).expect("reference");
    let auth = PullAuth {
        registry: dst.addr().to_string(),
        credentials: Credentials::Anonymous,
    };
    let mut files = std::collections::BTreeMap::new();
    let mut big_layer = None;
    for layer in layers {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let digest = Digest::parse(layer["digest"].as_str().expect("digest")).expect("digest");
        let size = layer["size"].as_u64().expect("size");
        let toc_digest = layer["annotations"][estargz::TOC_DIGEST_ANNOTATION]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
            .expect("TOC digest annotation");
        let open = |toc: Digest| {
            let (client, reference, auth, digest) = (client.clone(), reference.clone(), auth.clone(), digest.clone());
            async move { RemoteLayer::open(client, reference, auth, digest, size, &toc).await }
        };
        let err = open(Digest::of(b"not the TOC"))
            .await
            .err()
            .expect("a wrong TOC digest is refused");
        assert!(err.to_string().contains("TOC"), "{err}");
        let remote = open(toc_digest).await.expect("the layer opens by ranges");
        for path in ["bin/busybox", "data/random-7.bin"] {
            let Some(ino) = remote.tree().resolve(path) else {
                continue;
            };
            let Some(estargz::Kind::File { size, chunks }) = remote.tree().node(ino).map(|n| &n.kind) else {
                panic!("{path} is not a regular file");
            };
            let mut data = Vec::new();
            for chunk in chunks {
                data.extend(remote.read(chunk, path).await.expect("the chunk verifies"));
            }
            assert_eq!(data.len() as u64, *size, "{path}");
            files.insert(path, (data, chunks.len()));
        }
        if remote.tree().resolve("data/random-7.bin").is_some() {
            big_layer = Some(Arc::new(remote));
        }
    }
    let (big, chunks) = &files["data/random-7.bin"];
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
    let want = Digest::of(big);
    assert!(out.stdout.starts_with(want.hex()), "{} vs {want}", out.stdout);

    let big_layer = big_layer.expect("the layer with the big file");
    lazily_mounted_files_read_until_the_registry_goes(big_layer, &mut dst, big).await;
}

/// The layer mounted through FUSE (real /dev/fuse) with the registry as its chunk source:
/// the big file's first chunk reads as it should; once the registry is gone, reading a
/// chunk not fetched yet is EIO, at once, and the mount still unmounts cleanly.
async fn lazily_mounted_files_read_until_the_registry_goes(
    layer: Arc<RemoteLayer>,
    dst: &mut TestRegistry,
    big: &[u8],
) {
    use berth::image::lazy::{RemoteSource, TreeFs};
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("m");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let fd = berth::sys::fuse::mount(&mnt, "berth-e2e-lazy").expect("FUSE mount");
    let source = RemoteSource {
        layer: layer.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let fs = Arc::new(TreeFs::new(layer.tree().clone(), Box::new(source)));
    let threads = berth::fuse::serve(fd, fs, 2).expect("serve");
    let file = mnt.join("data/random-7.bin");
    let head = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut f = std::fs::File::open(&file)?;
            let mut head = vec![0u8; 64 << 10];
            f.read_exact(&mut head)?;
            Ok::<_, std::io::Error>((head, f.metadata()?.len()))
        })
    };
    let (head, len) = head.await.expect("joined").expect("the first chunk reads");
    assert_eq!(len, 9 << 20);
    assert_eq!(head, big[..64 << 10], "the served bytes are the file's");

    dst.stop();
    let started = std::time::Instant::now();
    let tail = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::open(&file)?;
        f.seek(std::io::SeekFrom::Start(6 << 20))?;
        let mut buf = vec![0u8; 4096];
        f.read_exact(&mut buf)
    });
    let err = tail.await.expect("joined").expect_err("no registry, no chunk");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "EIO took {:?}",
        started.elapsed()
    );

    berth::sys::mount::unmount(&mnt).expect("unmount");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !threads.iter().all(|t| t.is_finished()) {
        assert!(
            std::time::Instant::now() < deadline,
            "FUSE threads still running after the unmount"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
