//! Pulls whose connection drops or stalls, played by a scripted registry in front of a
//! real berthd: a layer download cut at 60% resumes from the bytes already received
//! (with or without Range support on the registry's side), and a registry that goes
//! silent fails the pull with DeadlineExceeded, leaving the store as it was.

use std::time::{Duration, Instant};

use berth_e2e::canary::store_listing;
use berth_e2e::cri::Cri;
use berth_e2e::image::{random_image, BuiltImage};
use berth_e2e::scripted::{Payload, ScriptedRegistry};
use berth_e2e::Berthd;
use tonic::Code;

const REPO: &str = "e2e/faults";
const LAYER_BYTES: usize = 4 << 20;

fn image(seed: u64) -> BuiltImage {
    random_image(LAYER_BYTES, seed)
}

/// Scripts `img` under `tag`, its one layer as `layer`.
fn serve(reg: &ScriptedRegistry, tag: &str, img: &BuiltImage, layer: Payload) {
    reg.serve_image(REPO, tag, img, Some(layer));
}

async fn berthd(reg: &ScriptedRegistry, toml: Option<String>) -> (Berthd, Cri, tempfile::TempDir) {
    berth_e2e::ctl::berthd_reaching(&reg.addr(), toml)
        .await
        .expect("berthd starts")
}

fn listing(berthd: &Berthd) -> Vec<String> {
    store_listing(berthd.root())
}

#[tokio::test]
async fn a_dropped_layer_download_resumes_where_it_stopped() {
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd(&reg, None).await;
    let img = image(21);
    let blob = img.layers[0].blob.clone();
    let cut = blob.len() as u64 * 6 / 10;
    let layer_path = format!("/v2/{REPO}/blobs/{}", img.layers[0].digest);

    serve(
        &reg,
        "ranged",
        &img,
        Payload::DropsAt {
            data: blob.clone(),
            cut,
            ranges: true,
        },
    );
    cri.pull(&format!("{}/{REPO}:ranged", reg.addr()), None)
        .await
        .expect("a pull whose connection drops at 60% completes");
    // One resume, from the bytes received (all that were sent before the drop, unless
    // some were still in flight when the connection went).
    let asked = reg.ranges_asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0, layer_path);
    let from: u64 = asked[0]
        .1
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a Range of bytes=N-: {asked:?}"));
    assert!(from > cut / 2 && from <= cut, "resumed at {from}, {cut} were sent");
    let sent = reg.bytes_sent();
    let total = blob.len() as u64 + img.config.len() as u64;
    assert!(
        sent <= total + 4096,
        "the layer was fetched again from the start: {sent} bytes sent for {total}"
    );
    assert!(berthd.log().contains("resuming the download"));
    cri.remove(&format!("{}/{REPO}:ranged", reg.addr()))
        .await
        .expect("remove");

    // A registry that ignores Range sends the whole blob again; the prefix is skipped.
    let img = image(22);
    let blob = img.layers[0].blob.clone();
    serve(
        &reg,
        "unranged",
        &img,
        Payload::DropsAt {
            data: blob.clone(),
            cut: blob.len() as u64 / 2,
            ranges: false,
        },
    );
    cri.pull(&format!("{}/{REPO}:unranged", reg.addr()), None)
        .await
        .expect("a pull from a registry without Range support completes");
    let images = cri.list().await.expect("list");
    assert_eq!(images.len(), 1, "{images:?}");
}

#[tokio::test]
async fn a_registry_that_goes_silent_fails_the_pull_and_leaves_nothing() {
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd(&reg, Some("registry_timeout_secs = 2\n".into())).await;
    let img = image(23);
    let blob = img.layers[0].blob.clone();
    serve(
        &reg,
        "stalls",
        &img,
        Payload::StallsAt {
            after: blob.len() as u64 * 6 / 10,
            data: blob,
        },
    );
    let before = listing(&berthd);
    let started = Instant::now();
    let err = cri
        .pull(&format!("{}/{REPO}:stalls", reg.addr()), None)
        .await
        .expect_err("a stalled pull fails");
    let took = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("stopped sending"), "{err:?}");
    assert!(took < Duration::from_secs(20), "the stall was noticed after {took:?}");
    assert_eq!(listing(&berthd), before, "the failed pull left something behind");
    assert!(cri.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_pull_its_caller_abandons_stops_and_leaves_nothing() {
    let reg = ScriptedRegistry::start();
    let (berthd, mut cri, _hosts) = berthd(&reg, None).await;
    let img = image(24);
    let blob = img.layers[0].blob.clone();
    serve(
        &reg,
        "abandoned",
        &img,
        Payload::StallsAt {
            after: blob.len() as u64 / 3,
            data: blob,
        },
    );
    let before = listing(&berthd);
    let name = format!("{}/{REPO}:abandoned", reg.addr());
    let gave_up = tokio::time::timeout(Duration::from_secs(2), cri.pull(&name, None)).await;
    assert!(gave_up.is_err(), "the pull cannot finish: {gave_up:?}");

    // The registry stays silent for 30 s more; the pull must not wait for that.
    let deadline = Instant::now() + Duration::from_secs(3);
    while listing(&berthd) != before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listing(&berthd), before, "an abandoned pull left something behind");
    assert!(berthd.log().contains("pull abandoned by its caller"));
    let mut cri = Cri::connect(berthd.socket()).await.expect("connect");
    assert!(cri.list().await.expect("list").is_empty());
}
