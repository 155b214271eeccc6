//! Registries that lie, played by a scripted fake registry in front of a real berthd:
//! manifests and configs whose bytes do not match their digest, Content-Length and
//! descriptor sizes that disagree with the blob, blob redirects to an unconfigured port,
//! and a 100 MB manifest. Each pull fails with a code and message naming the problem,
//! stores nothing unverified, and berthd stays small and alive.

use std::time::{Duration, Instant};

use berth_e2e::canary::{store_leftovers, store_listing};
use berth_e2e::cri::{basic_auth, Cri};
use berth_e2e::forged::{with_manifest, with_wrong_diff_id};
use berth_e2e::image::{BuiltImage, Compression, Entry, ImageSpec, Layer};
use berth_e2e::scripted::{Payload, Route, ScriptedRegistry};
use berth_e2e::{free_port, sha256_digest, Berthd};
use serde_json::Value;
use tonic::Code;

const REPO: &str = "e2e/lie";

async fn berthd_for(reg: &str) -> (Berthd, Cri, tempfile::TempDir) {
    berth_e2e::ctl::berthd_reaching(reg, None).await.expect("berthd starts")
}

fn image() -> BuiltImage {
    ImageSpec {
        layers: vec![Layer::new(
            Compression::Gzip,
            vec![Entry::file("hello", "hello from a lying registry\n")],
        )],
        ..Default::default()
    }
    .build()
}

fn blob_path(digest: &str) -> String {
    format!("/v2/{REPO}/blobs/{digest}")
}

fn manifest_path(reference: &str) -> String {
    format!("/v2/{REPO}/manifests/{reference}")
}

/// Scripts `img` honestly under `tag`: manifest, config and layers.
fn serve(reg: &ScriptedRegistry, tag: &str, img: &BuiltImage) {
    reg.serve_image(REPO, tag, img, None);
}

fn flipped(mut data: Vec<u8>) -> Vec<u8> {
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    data
}

async fn refused(cri: &mut Cri, name: &str, code: Code, needle: &str) {
    let err = cri.pull(name, None).await.expect_err(name);
    assert_eq!(err.code(), code, "{name}: {err:?}");
    assert!(
        err.message().contains(needle),
        "{name}: {needle:?} in {:?}",
        err.message()
    );
}

fn assert_clean(berthd: &Berthd, kept: &[String], what: &str) {
    let left = store_leftovers(berthd.root(), kept);
    assert!(left.is_empty(), "{what}: left in the store: {left:?}");
}

#[tokio::test]
async fn manifest_config_and_layer_bytes_must_match_their_digests() {
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let img = image();
    let a = reg.addr();

    // By digest: the registry answers other bytes.
    let mut other = img.manifest.clone();
    other.push(b'\n');
    reg.route(
        &manifest_path(&img.manifest_digest),
        Route::ok(img.manifest_media_type, other),
    );
    refused(
        &mut cri,
        &format!("{a}/{REPO}@{}", img.manifest_digest),
        Code::DataLoss,
        "digest",
    )
    .await;
    assert_clean(&berthd, &[], "manifest by digest");

    // By tag: Docker-Content-Digest disagrees with the body.
    let lie = sha256_digest(b"something else");
    reg.route(
        &manifest_path("tagged"),
        Route::ok(img.manifest_media_type, img.manifest.clone()).header("docker-content-digest", &lie),
    );
    refused(&mut cri, &format!("{a}/{REPO}:tagged"), Code::DataLoss, &lie).await;
    assert_clean(&berthd, &[], "manifest by tag");

    // The config's bytes do not match the manifest's config digest.
    serve(&reg, "badconfig", &img);
    reg.route(
        &blob_path(&img.config_digest),
        Route::ok("application/json", flipped(img.config.clone())),
    );
    refused(
        &mut cri,
        &format!("{a}/{REPO}:badconfig"),
        Code::DataLoss,
        &img.config_digest,
    )
    .await;
    assert_clean(&berthd, &[], "config");

    // The layer's bytes do not match (same length).
    serve(&reg, "badlayer", &img);
    let layer = &img.layers[0];
    reg.route(
        &blob_path(&layer.digest),
        Route::ok("application/octet-stream", flipped(layer.blob.clone())),
    );
    let err = cri
        .pull(&format!("{a}/{REPO}:badlayer"), None)
        .await
        .expect_err("layer");
    // The flipped byte breaks the gzip stream before the digest is known; the digest is
    // still what is reported.
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert!(err.message().contains(&layer.digest), "{err:?}");
    assert_clean(&berthd, &[], "layer");
    assert!(cri.list().await.expect("list").is_empty());

    // Served honestly, the same image pulls: the failures above were the lies.
    serve(&reg, "honest", &img);
    cri.pull(&format!("{a}/{REPO}:honest"), None)
        .await
        .expect("honest pull");
}

#[tokio::test]
async fn sizes_that_disagree_with_the_blob_are_refused() {
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let img = image();
    let layer = img.layers[0].clone();
    let a = reg.addr();
    let resize = |delta: i64| {
        with_manifest(&img, |m| {
            m["layers"][0]["size"] = Value::from(layer.size as i64 + delta);
        })
    };
    let blob = |payload: Payload, content_length: Option<u64>| {
        let mut r = Route {
            status: 200,
            headers: vec![],
            payload,
        };
        if let Some(n) = content_length {
            r = r.header("content-length", &n.to_string());
        }
        r
    };

    // Content-Length larger than the descriptor: the blob plus trailing garbage.
    serve(&reg, "cl-larger", &img);
    let padded = [layer.blob.clone(), vec![0u8; 1000]].concat();
    reg.route(&blob_path(&layer.digest), blob(Payload::Bytes(padded), None));
    refused(
        &mut cri,
        &format!("{a}/{REPO}:cl-larger"),
        Code::Unavailable,
        "the manifest says",
    )
    .await;
    assert_clean(&berthd, &[], "content-length larger");

    // Descriptor smaller than the blob, sent without a Content-Length.
    let small = resize(-10);
    serve(&reg, "desc-smaller", &small);
    reg.route(
        &blob_path(&layer.digest),
        blob(Payload::Chunked(layer.blob.clone()), None),
    );
    refused(
        &mut cri,
        &format!("{a}/{REPO}:desc-smaller"),
        Code::Unavailable,
        "more than the",
    )
    .await;
    assert_clean(&berthd, &[], "descriptor smaller");

    // Descriptor larger than the blob: with an honest Content-Length, then without one.
    let large = resize(10);
    serve(&reg, "desc-larger", &large);
    refused(
        &mut cri,
        &format!("{a}/{REPO}:desc-larger"),
        Code::Unavailable,
        "the manifest says",
    )
    .await;
    reg.route(
        &blob_path(&layer.digest),
        blob(Payload::Chunked(layer.blob.clone()), None),
    );
    refused(&mut cri, &format!("{a}/{REPO}:desc-larger"), Code::DataLoss, "size").await;
    assert_clean(&berthd, &[], "descriptor larger");

    // The config's descriptor is smaller than the config.
    // (A config not fetched before: a cached, verified one is not fetched again.)
    let mut fresh = image();
    fresh.config.extend_from_slice(b"\n\n");
    fresh.config_digest = sha256_digest(&fresh.config);
    let fresh = with_manifest(&fresh, |m| {
        m["config"]["digest"] = Value::from(fresh.config_digest.clone())
    });
    let cfg_small = with_manifest(&fresh, |m| m["config"]["size"] = Value::from(fresh.config.len() - 5));
    serve(&reg, "config-smaller", &cfg_small);
    let err = cri
        .pull(&format!("{a}/{REPO}:config-smaller"), None)
        .await
        .expect_err("config size");
    assert!(
        matches!(
            err.code(),
            Code::DataLoss | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{err:?}"
    );
    assert!(
        err.message().contains("limit") || err.message().contains("size"),
        "{err:?}"
    );
    assert!(cri.list().await.expect("list").is_empty());
    assert_clean(&berthd, &[], "config smaller");
    assert!(!berthd.log().contains("panicked"));
}

fn listing(berthd: &Berthd) -> Vec<String> {
    store_listing(berthd.root())
}

#[tokio::test]
async fn size_lies_are_refused_when_the_blob_is_already_stored() {
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let img = image();
    let a = reg.addr();
    serve(&reg, "honest", &img);
    cri.pull(&format!("{a}/{REPO}:honest"), None)
        .await
        .expect("honest pull");
    let before = listing(&berthd);
    assert!(!before.is_empty());

    // The same layer and config, already stored, under descriptors that misstate their size.
    let layer_lie = with_manifest(&img, |m| {
        m["layers"][0]["size"] = Value::from(img.layers[0].size as i64 - 7)
    });
    serve(&reg, "layer-lie", &layer_lie);
    refused(&mut cri, &format!("{a}/{REPO}:layer-lie"), Code::DataLoss, "size").await;
    assert_eq!(listing(&berthd), before, "a refused pull changed the store");

    let config_lie = with_manifest(&img, |m| m["config"]["size"] = Value::from(img.config.len() + 3));
    serve(&reg, "config-lie", &config_lie);
    refused(&mut cri, &format!("{a}/{REPO}:config-lie"), Code::DataLoss, "size").await;
    assert_eq!(listing(&berthd), before, "a refused pull changed the store");
    assert_eq!(cri.list().await.expect("list").len(), 1, "only the honest image");

    // Nothing about the lies was recorded.
    let status = cri.status(&format!("{a}/{REPO}:layer-lie")).await.expect("status");
    assert!(status.is_none(), "{status:?}");
}

#[tokio::test]
async fn blob_redirects_to_another_port_get_no_credentials_and_are_verified() {
    let reg = ScriptedRegistry::start();
    let elsewhere = ScriptedRegistry::start(); // not in berthd's registry configuration
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let img = image();
    let layer = &img.layers[0];
    let a = reg.addr();
    // The registry demands Basic auth (any value), so berthd sends the credentials.
    reg.require_auth();
    serve(&reg, "1", &img);
    let target = format!("http://{}{}", elsewhere.addr(), blob_path(&layer.digest));
    reg.route(&blob_path(&layer.digest), Route::redirect(&target));
    elsewhere.route(
        &blob_path(&layer.digest),
        Route::ok("application/octet-stream", flipped(layer.blob.clone())),
    );
    let err = cri
        .pull(&format!("{a}/{REPO}:1"), Some(basic_auth("alice", "s3cret-redirect")))
        .await
        .expect_err("tampered redirect target");
    assert_eq!(
        err.code(),
        Code::DataLoss,
        "a tampered blob is a digest mismatch: {err:?}"
    );
    let to_reg = reg.seen();
    assert!(
        to_reg
            .iter()
            .any(|(_, a)| a.as_deref().is_some_and(|a| a.starts_with("Basic "))),
        "{to_reg:?}"
    );
    let seen = elsewhere.seen();
    assert!(!seen.is_empty(), "the redirect was followed");
    assert!(
        seen.iter().all(|(_, a)| a.is_none()),
        "credentials crossed the redirect: {seen:?}"
    );
    let kept = [img.manifest_digest.clone(), img.config_digest.clone()];
    assert_clean(&berthd, &kept, "redirect");

    // A redirect to a dead port is a transport error naming the URL.
    let dead = format!("http://127.0.0.1:{}{}", free_port(), blob_path(&layer.digest));
    reg.route(&blob_path(&layer.digest), Route::redirect(&dead));
    let creds = || Some(basic_auth("alice", "s3cret-redirect"));
    let err = cri.pull(&format!("{a}/{REPO}:1"), creds()).await.expect_err("dead");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&dead), "{err:?}");
    // A redirect loop ends.
    let me = format!("http://{a}{}", blob_path(&layer.digest));
    reg.route(&blob_path(&layer.digest), Route::redirect(&me));
    let err = cri.pull(&format!("{a}/{REPO}:1"), creds()).await.expect_err("loop");
    assert!(err.message().contains("redirects"), "{err:?}");
    assert_clean(&berthd, &kept, "dead redirect");
    assert!(
        !berthd.log().contains("s3cret-redirect"),
        "the password reached the log"
    );
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn a_100_mb_manifest_is_refused_without_reading_it_all() {
    const HUGE: u64 = 100 << 20;
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let pid = berthd.pid().expect("pid");
    let a = reg.addr();
    let huge = |content_length: bool| {
        let mut r = Route {
            status: 200,
            headers: vec![(
                "content-type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            payload: Payload::Repeat { byte: b' ', len: HUGE },
        };
        if content_length {
            r = r.header("content-length", &HUGE.to_string());
        }
        r
    };
    // Declared: refused on the header.
    reg.route(&manifest_path("declared"), huge(true));
    let started = Instant::now();
    refused(
        &mut cri,
        &format!("{a}/{REPO}:declared"),
        Code::ResourceExhausted,
        "limit",
    )
    .await;
    // Chunked: refused once past the limit.
    reg.route(&manifest_path("chunked"), huge(false));
    refused(
        &mut cri,
        &format!("{a}/{REPO}:chunked"),
        Code::ResourceExhausted,
        "limit",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let sent = reg.bytes_sent();
    assert!(sent < 40 << 20, "berthd read {sent} bytes of the 2 x 100 MB manifests");
    let hwm = vm_hwm_kib(pid);
    eprintln!("berthd read {sent} bytes of the manifests; peak RSS {hwm} KiB");
    assert!(hwm < 90 << 10, "berthd's peak RSS is {hwm} KiB");
    assert_clean(&berthd, &[], "huge manifest");
    cri.list().await.expect("berthd still answers");
}

#[tokio::test]
async fn a_layer_refused_for_its_diff_id_leaves_the_store_as_it_was() {
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let a = reg.addr();
    let honest = image();
    serve(&reg, "honest", &honest);
    cri.pull(&format!("{a}/{REPO}:honest"), None)
        .await
        .expect("honest pull");
    let before = listing(&berthd);

    // A new layer whose bytes match its digest but whose config names another diff id:
    // the blob verifies and is stored on the way, the image is refused at the end.
    let other = ImageSpec {
        layers: vec![Layer::new(
            Compression::Gzip,
            vec![Entry::file("other", "a layer no image keeps\n")],
        )],
        ..Default::default()
    }
    .build();
    let lie = with_wrong_diff_id(&other);
    serve(&reg, "diffid", &lie);
    let err = cri
        .pull(&format!("{a}/{REPO}:diffid"), None)
        .await
        .expect_err("diff id mismatch");
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert_eq!(listing(&berthd), before, "the refused pull left something behind");
    assert_eq!(cri.list().await.expect("list").len(), 1);
}
