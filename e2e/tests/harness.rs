//! Tests of the harness itself, against the real docker-registry.
#![allow(clippy::unwrap_used)] // a test: panicking on the unexpected is the point

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use berth_e2e::image::{media, BUSYBOX_APPLETS};
use berth_e2e::*;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;

const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

async fn registry() -> TestRegistry {
    TestRegistry::start(RegistryOpts::default())
        .await
        .expect("start docker-registry")
}

async fn get(url: &str, auth: Option<&str>) -> reqwest::Response {
    let mut rb = http_client().get(url).header(ACCEPT, ACCEPT_ALL);
    if let Some(a) = auth {
        rb = rb.header(reqwest::header::AUTHORIZATION, a);
    }
    rb.send().await.expect("GET")
}

async fn get_bytes(url: &str) -> (StatusCode, Vec<u8>) {
    let resp = get(url, None).await;
    let status = resp.status();
    (status, resp.bytes().await.expect("read body").to_vec())
}

/// Fetches the manifest and every blob of `p` back and checks all digests.
async fn check_pushed(reg: &str, p: &Pushed) -> serde_json::Value {
    let resp = get(&format!("http://{reg}/v2/{}/manifests/{}", p.repo, p.reference), None).await;
    assert_eq!(resp.status(), 200);
    let header_digest = resp.headers()["docker-content-digest"].to_str().unwrap().to_string();
    let body = resp.bytes().await.unwrap();
    assert_eq!(sha256_digest(&body), p.manifest_digest);
    assert_eq!(header_digest, p.manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["config"]["digest"], p.config_digest.as_str());

    let mut total = body.len() as u64;
    for digest in p.layer_digests.iter().chain(std::iter::once(&p.config_digest)) {
        let (status, blob) = get_bytes(&format!("http://{reg}/v2/{}/blobs/{digest}", p.repo)).await;
        assert_eq!(status, 200, "blob {digest}");
        assert_eq!(&sha256_digest(&blob), digest);
        total += blob.len() as u64;
    }
    assert_eq!(total, p.size);
    manifest
}

fn tar_names(tar: &[u8]) -> Vec<(Vec<u8>, tar::EntryType, Option<Vec<u8>>)> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e.header().link_name_bytes().map(|l| l.into_owned());
            (e.path_bytes().into_owned(), e.header().entry_type(), link)
        })
        .collect()
}

fn odd_layer(compression: Compression) -> Layer {
    Layer::new(
        compression,
        vec![
            Entry::dir("app"),
            Entry::File {
                path: "app/secret".into(),
                mode: 0o600,
                uid: 1000,
                gid: 1000,
                data: b"hello".to_vec(),
            },
            Entry::symlink("app/abs-link", "/etc/passwd"),
            Entry::Hardlink {
                path: "app/hard".into(),
                target: "app/secret".into(),
            },
            Entry::Whiteout { path: "bin/ls".into() },
            Entry::Opaque { dir: "etc".into() },
            Entry::RawName {
                name: b"../evil".to_vec(),
                kind: RawKind::File(b"x".to_vec()),
            },
            Entry::RawName {
                name: b"/abs".to_vec(),
                kind: RawKind::Symlink(b"../../../etc/shadow".to_vec()),
            },
            Entry::RawName {
                name: b"app/hl".to_vec(),
                kind: RawKind::Hardlink(b"/etc/passwd".to_vec()),
            },
        ],
    )
}

#[tokio::test]
async fn layers_are_deterministic_and_hold_what_was_asked() {
    let a = odd_layer(Compression::Gzip).build();
    let b = odd_layer(Compression::Gzip).build();
    assert_eq!(a, b);
    assert_eq!(a.media_type, media::OCI_LAYER_GZIP);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&a.blob[..]).read_to_end(&mut tar).unwrap();
    assert_eq!(sha256_digest(&tar), a.diff_id);
    assert_eq!(tar, odd_layer(Compression::None).tar());

    let names = tar_names(&tar);
    let find = |n: &str| names.iter().find(|(p, _, _)| p == n.as_bytes()).cloned();
    assert_eq!(find("app/").unwrap().1, tar::EntryType::Directory);
    assert_eq!(find("app/abs-link").unwrap().2.unwrap(), b"/etc/passwd");
    assert_eq!(find("app/hard").unwrap().1, tar::EntryType::Link);
    assert!(find("bin/.wh.ls").is_some());
    assert!(find("etc/.wh..wh..opq").is_some());
    assert!(find("../evil").is_some());
    assert_eq!(find("/abs").unwrap().2.unwrap(), b"../../../etc/shadow");
    assert_eq!(find("app/hl").unwrap().2.unwrap(), b"/etc/passwd");

    let z = odd_layer(Compression::Zstd).build();
    assert_eq!(z.diff_id, a.diff_id);
    assert_eq!(zstd::decode_all(&z.blob[..]).unwrap(), tar);

    let bb = busybox_layer(Compression::None).tar();
    let names = tar_names(&bb);
    for applet in BUSYBOX_APPLETS {
        assert!(names.iter().any(|(p, _, _)| p == format!("bin/{applet}").as_bytes()));
    }

    let r1 = random_layer(100_000, 7, Compression::Gzip).build();
    assert_eq!(r1, random_layer(100_000, 7, Compression::Gzip).build());
    assert_ne!(r1.digest, random_layer(100_000, 8, Compression::Gzip).build().digest);
    assert!(r1.size > 100_000, "random data must not compress: {}", r1.size);
}

#[tokio::test]
async fn push_gzip_zstd_and_docker_images_and_fetch_them_back() {
    let reg = registry().await;
    let addr = reg.addr();

    let spec = ImageSpec {
        layers: vec![busybox_layer(Compression::Gzip), odd_layer(Compression::Gzip)],
        user: Some("1000:1000".into()),
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["echo hi".into()],
        ..ImageSpec::default()
    };
    let p = push_image(&addr, "test/busybox", "v1", &spec, None).await.unwrap();
    assert_eq!(p.layer_digests.len(), 2);
    let m = check_pushed(&addr, &p).await;
    assert_eq!(m["mediaType"], media::OCI_MANIFEST);
    assert_eq!(m["layers"][0]["mediaType"], media::OCI_LAYER_GZIP);
    // The config says what the spec said.
    let (_, cfg) = get_bytes(&format!("http://{addr}/v2/test/busybox/blobs/{}", p.config_digest)).await;
    let cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    assert_eq!(cfg["config"]["User"], "1000:1000");
    assert_eq!(cfg["config"]["Cmd"][0], "echo hi");
    assert_eq!(cfg["architecture"], "amd64");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // Pushing the same image again is a no-op with the same digests.
    let again = push_image(&addr, "test/busybox", "v1", &spec, None).await.unwrap();
    assert_eq!(again, p);

    let zspec = ImageSpec {
        layers: vec![busybox_layer(Compression::Zstd)],
        ..ImageSpec::default()
    };
    let z = push_image(&addr, "test/zstd", "latest", &zspec, None).await.unwrap();
    let m = check_pushed(&addr, &z).await;
    assert_eq!(m["layers"][0]["mediaType"], media::OCI_LAYER_ZSTD);

    let dspec = ImageSpec {
        docker_media_types: true,
        ..ImageSpec::busybox()
    };
    let d = push_image(&addr, "test/docker", "latest", &dspec, None).await.unwrap();
    let m = check_pushed(&addr, &d).await;
    assert_eq!(m["mediaType"], media::DOCKER_MANIFEST);
    assert_eq!(m["config"]["mediaType"], media::DOCKER_CONFIG);
    assert_eq!(m["layers"][0]["mediaType"], media::DOCKER_LAYER_GZIP);
    assert_eq!(d.image_ref(&addr), format!("{addr}/test/docker:latest"));

    // Raw helpers: a hand-made manifest pointing at a pushed blob.
    let blob = put_blob(&addr, "test/raw", b"not a tar", None).await.unwrap();
    let img = ImageSpec::default().build();
    put_blob(&addr, "test/raw", &img.config, None).await.unwrap();
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": img.config_digest, "size": img.config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": blob, "size": 9}],
    })
    .to_string();
    let digest = put_manifest(&addr, "test/raw", "bad", media::OCI_MANIFEST, body.as_bytes(), None)
        .await
        .unwrap();
    let (status, got) = get_bytes(&format!("http://{addr}/v2/test/raw/manifests/{digest}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, body.as_bytes());
}

#[tokio::test]
async fn push_an_index_and_a_manifest_list() {
    let reg = registry().await;
    let addr = reg.addr();
    let amd64 = ImageSpec::busybox();
    let arm64 = ImageSpec {
        arch: "arm64".into(),
        variant: Some("v8".into()),
        layers: vec![random_layer(1000, 1, Compression::Gzip)],
        ..ImageSpec::default()
    };
    for (docker_list, repo) in [(false, "multi/oci"), (true, "multi/docker")] {
        let (digest, images) = push_index(
            &addr,
            repo,
            "latest",
            &[amd64.clone(), arm64.clone()],
            docker_list,
            None,
        )
        .await
        .unwrap();
        assert_eq!(images.len(), 2);
        let resp = get(&format!("http://{addr}/v2/{repo}/manifests/latest"), None).await;
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let body = resp.bytes().await.unwrap();
        assert_eq!(sha256_digest(&body), digest);
        let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let want = if docker_list {
            media::DOCKER_LIST
        } else {
            media::OCI_INDEX
        };
        assert_eq!(ct, want);
        assert_eq!(index["mediaType"], want);
        let ms = index["manifests"].as_array().unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0]["platform"]["architecture"], "amd64");
        assert_eq!(ms[1]["platform"]["architecture"], "arm64");
        assert_eq!(ms[1]["platform"]["variant"], "v8");
        assert!(ms[0]["platform"].get("variant").is_none());
        for (m, p) in ms.iter().zip(&images) {
            assert_eq!(m["digest"], p.manifest_digest.as_str());
            assert_eq!(p.reference, p.manifest_digest);
            check_pushed(&addr, p).await;
        }
    }
}

#[tokio::test]
async fn htpasswd_registry_wants_basic_auth() {
    let reg = TestRegistry::start(RegistryOpts {
        htpasswd: Some(("alice".into(), "s3cret".into())),
    })
    .await
    .unwrap();
    let addr = reg.addr();
    let anon = get(&format!("{}/v2/", reg.url()), None).await;
    assert_eq!(anon.status(), 401);
    assert!(anon.headers()[WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));

    let ok = http_client()
        .get(format!("{}/v2/", reg.url()))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = http_client()
        .get(format!("{}/v2/", reg.url()))
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    assert!(push_image(&addr, "private/img", "v1", &ImageSpec::busybox(), None)
        .await
        .is_err());
    let p = push_image(&addr, "private/img", "v1", &ImageSpec::busybox(), reg.auth())
        .await
        .unwrap();
    let blob = http_client()
        .get(format!("{}/v2/private/img/blobs/{}", reg.url(), p.config_digest))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(sha256_digest(&blob.bytes().await.unwrap()), p.config_digest);
}

#[tokio::test]
async fn tamper_proxy_corrupts_blobs_only() {
    let reg = registry().await;
    let addr = reg.addr();
    let p = push_image(&addr, "t/img", "v1", &ImageSpec::busybox(), None)
        .await
        .unwrap();
    let layer = &p.layer_digests[0];
    let (_, good) = get_bytes(&format!("http://{addr}/v2/t/img/blobs/{layer}")).await;

    let flip = TamperProxy::start(&addr, Tamper::FlipByteInBlobs);
    let (status, bad) = get_bytes(&format!("{}/v2/t/img/blobs/{layer}", flip.url())).await;
    assert_eq!(status, 200);
    assert_eq!(bad.len(), good.len());
    assert_ne!(&sha256_digest(&bad), layer);
    // Manifests pass untouched; HEAD keeps the real length.
    let (status, manifest) = get_bytes(&format!("{}/v2/t/img/manifests/v1", flip.url())).await;
    assert_eq!(status, 200);
    assert_eq!(sha256_digest(&manifest), p.manifest_digest);
    let head = http_client()
        .head(format!("{}/v2/t/img/blobs/{layer}", flip.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()[CONTENT_LENGTH].to_str().unwrap(), good.len().to_string());
    assert_eq!(flip.requests(), 3);

    let trunc = TamperProxy::start(&addr, Tamper::TruncateBlobs);
    let (status, short) = get_bytes(&format!("{}/v2/t/img/blobs/{layer}", trunc.url())).await;
    assert_eq!(status, 200);
    assert_eq!(short.len(), good.len() / 2);
    assert_eq!(&short[..], &good[..good.len() / 2]);

    let liar = TamperProxy::start(&addr, Tamper::LieAboutLength);
    let resp = get(&format!("{}/v2/t/img/blobs/{layer}", liar.url()), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(good.len() as u64));
    assert!(
        resp.bytes().await.is_err(),
        "a body cut short of its Content-Length must fail"
    );
}

#[tokio::test]
async fn token_auth_proxy_demands_bearer_tokens() {
    let reg = registry().await;
    let p = push_image(&reg.addr(), "lib/app", "v1", &ImageSpec::busybox(), None)
        .await
        .unwrap();
    let proxy = TokenAuthProxy::start(&reg.addr(), "bob", "hunter2");
    let manifest_url = format!("{}/v2/lib/app/manifests/v1", proxy.url());

    let anon = get(&manifest_url, None).await;
    assert_eq!(anon.status(), 401);
    let challenge = anon.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{}/token\",service=\"test-registry\",scope=\"repository:lib/app:pull\"",
            proxy.url()
        )
    );
    let root = get(&format!("{}/v2/", proxy.url()), None).await;
    assert_eq!(root.status(), 401);
    assert!(!root.headers()[WWW_AUTHENTICATE].to_str().unwrap().contains("scope"));

    let token_url = format!(
        "{}/token?service=test-registry&scope=repository:lib/app:pull",
        proxy.url()
    );
    let wrong = http_client()
        .get(&token_url)
        .basic_auth("bob", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let anon_token = http_client().get(&token_url).send().await.unwrap();
    assert_eq!(anon_token.status(), 401);
    let post = http_client().post(&token_url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(proxy.tokens_issued(), 0);

    let tok: serde_json::Value = http_client()
        .get(&token_url)
        .basic_auth("bob", Some("hunter2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tok["expires_in"], 300);
    let token = tok["token"].as_str().unwrap();
    assert_eq!(tok["access_token"], token);

    let bad_bearer = get(&manifest_url, Some("Bearer forged")).await;
    assert_eq!(bad_bearer.status(), 401);
    let bearer = format!("Bearer {token}");
    let ok = get(&manifest_url, Some(&bearer)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(sha256_digest(&ok.bytes().await.unwrap()), p.manifest_digest);
    let blob = get(
        &format!("{}/v2/lib/app/blobs/{}", proxy.url(), p.layer_digests[0]),
        Some(&bearer),
    )
    .await;
    assert_eq!(sha256_digest(&blob.bytes().await.unwrap()), p.layer_digests[0]);

    let seen = proxy.seen_auth();
    assert_eq!(seen.len(), proxy.requests());
    assert!(seen
        .iter()
        .any(|(path, a)| path == "/token" && a.as_deref().is_some_and(|a| a.starts_with("Basic "))));
    assert!(seen
        .iter()
        .any(|(path, a)| path == "/v2/lib/app/manifests/v1" && a.as_deref() == Some(bearer.as_str())));
}

#[tokio::test]
async fn redirect_proxy_sends_blobs_elsewhere() {
    let reg = registry().await;
    let p = push_image(&reg.addr(), "r/img", "v1", &ImageSpec::busybox(), None)
        .await
        .unwrap();
    let blobs = RecordingProxy::start(&reg.addr());
    let front = RedirectProxy::start(&reg.addr(), &blobs.addr());

    let (status, manifest) = get_bytes(&format!("{}/v2/r/img/manifests/v1", front.url())).await;
    assert_eq!(status, 200);
    assert_eq!(sha256_digest(&manifest), p.manifest_digest);

    let path = format!("/v2/r/img/blobs/{}", p.layer_digests[0]);
    let resp = get(&format!("{}{path}?x=1", front.url()), Some("Basic c2VjcmV0")).await;
    assert_eq!(resp.status(), 307);
    let location = resp.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(location, format!("{}{path}?x=1", blobs.url()));

    // A client that follows without credentials, as it must across hosts.
    let (status, blob) = get_bytes(&location).await;
    assert_eq!(status, 200);
    assert_eq!(sha256_digest(&blob), p.layer_digests[0]);
    assert_eq!(blobs.seen_auth(), vec![(path.clone(), None)]);
    assert_eq!(front.requests(), 2);
    assert!(front.seen_auth().contains(&(path, Some("Basic c2VjcmV0".into()))));
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn registry_ends_on_stop_and_on_panic() {
    let mut reg = registry().await;
    let pid = reg.pid().unwrap();
    assert!(pid_alive(pid));
    assert!(reg.storage_dir().is_dir());
    reg.stop();
    assert!(!pid_alive(pid));
    assert!(reg.pid().is_none());

    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let reg = registry().await;
        tx.send(reg.pid().unwrap()).unwrap();
        panic!("a failing test");
    });
    assert!(task.await.is_err());
    let pid = rx.await.unwrap();
    assert!(!pid_alive(pid), "the registry of a panicking test must be gone");
}

fn fake_berthd() -> PathBuf {
    // target/debug/deps/harness-* -> target/debug/examples/fake_berthd
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("examples/fake_berthd");
    assert!(p.exists(), "{} missing: cargo test builds examples", p.display());
    p
}

#[tokio::test]
async fn berthd_runner_starts_restarts_and_cleans_up() -> Result<()> {
    require_root();
    let mut d = Berthd::start(BerthdOpts {
        binary: Some(fake_berthd()),
        ready_on_connect: true,
        config_toml: Some("[x]\ny = 1\n".into()),
        registry_config_dir: Some("/nonexistent/certs.d".into()),
        extra_args: vec!["--extra".into()],
        runtime: Some(berth_e2e::containerd::Runtime::Berth),
        sandbox_image: None,
    })
    .await?;
    let dir = d.dir().to_path_buf();
    assert_eq!(d.endpoint(), format!("unix://{}", d.socket().display()));
    assert!(d.socket().starts_with(d.state()));
    let log = d.log();
    for want in [
        "--listen unix://",
        "--registry-config-path /nonexistent/certs.d",
        "berthd.toml --log-level debug --extra",
    ] {
        assert!(log.contains(want), "{want:?} not in {log}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("berthd.toml"))?, "[x]\ny = 1\n");

    // A mount left behind under root is detached on drop.
    let mnt = d.root().join("m/inner");
    std::fs::create_dir_all(&mnt)?;
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "berth-e2e-test"])
        .arg(&mnt)
        .status()?;
    assert!(st.success());
    let nested = mnt.join("nested");
    std::fs::create_dir_all(&nested)?;
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "berth-e2e-test"])
        .arg(&nested)
        .status()?;
    assert!(st.success());
    assert_eq!(berth_e2e::berthd::mounts_under(&dir).len(), 2);

    let pid = d.pid().unwrap();
    d.kill9();
    assert!(!pid_alive(pid));
    d.restart().await?;
    let pid2 = d.pid().unwrap();
    assert_ne!(pid, pid2);
    wait_for_socket(d.socket(), Duration::from_secs(1)).await?;
    d.stop();
    assert!(!pid_alive(pid2));
    d.restart().await?;
    assert!(d.is_running());
    assert_eq!(d.log().matches("fake-berthd starting").count(), 3);
    let pid3 = d.pid().unwrap();

    drop(d);
    assert!(!pid_alive(pid3));
    assert!(berth_e2e::berthd::mounts_under(&dir).is_empty());
    assert!(!dir.exists());

    let err = Berthd::start(BerthdOpts {
        binary: Some(fake_berthd()),
        ready_on_connect: true,
        extra_args: vec!["--fail-start".into()],
        ..BerthdOpts::default()
    })
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("exited during startup") && msg.contains("failing on purpose"),
        "{msg}"
    );
    Ok(())
}
