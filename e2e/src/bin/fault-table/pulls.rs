//! Registries that drop, stall or lie, played by the scripted registry in front of the
//! runtime under test: the same faults as `tests/pull_faults.rs` and
//! `tests/hostile_registry.rs`, observed instead of asserted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::cri::Cri;
use berth_e2e::forged::{with_manifest, with_wrong_diff_id};
use berth_e2e::image::{random_image, BuiltImage};
use berth_e2e::scripted::{Payload, ScriptedRegistry};
use berth_e2e::Berthd;
use serde_json::Value;

use crate::Row;

const REPO: &str = "e2e/faults";
const LAYER_BYTES: usize = 4 << 20;
/// How long a caller waits for a pull that cannot finish.
const CALLER_PATIENCE: Duration = Duration::from_secs(90);

fn image(seed: u64) -> BuiltImage {
    random_image(LAYER_BYTES, seed)
}

/// Scripts `img` under `tag`, its layer as `layer`.
fn serve(reg: &ScriptedRegistry, tag: &str, img: &BuiltImage, layer: Payload) {
    reg.serve_image(REPO, tag, img, Some(layer));
}

/// Every file under the runtime's root with its size, less its metadata databases (which
/// change size with any write): what a pull added shows as new paths.
pub(crate) fn files(root: &Path) -> BTreeMap<String, u64> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                walk(base, &e.path(), out);
            } else if !e.file_name().to_string_lossy().ends_with(".db") {
                let rel = e
                    .path()
                    .strip_prefix(base)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                out.insert(rel, meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What `after` holds that `before` did not, with sizes.
pub(crate) fn added(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    after
        .iter()
        .filter(|(p, _)| !before.contains_key(*p))
        .map(|(p, n)| format!("{p} ({n} bytes)"))
        .collect()
}

async fn daemon(reg: &ScriptedRegistry) -> (Berthd, Cri, tempfile::TempDir) {
    berth_e2e::ctl::berthd_reaching(&reg.addr(), None)
        .await
        .expect("the runtime starts")
}

fn said(err: &tonic::Status) -> String {
    let msg: String = err.message().chars().take(160).collect();
    format!("{:?}: {msg}", err.code())
}

async fn dropped_download() -> Row {
    let reg = ScriptedRegistry::start();
    let (_d, mut cri, _hosts) = daemon(&reg).await;
    let img = image(31);
    let blob = img.layers[0].blob.clone();
    let cut = blob.len() as u64 * 6 / 10;
    serve(
        &reg,
        "drops",
        &img,
        Payload::DropsAt {
            data: blob.clone(),
            cut,
            ranges: true,
        },
    );
    let name = format!("{}/{REPO}:drops", reg.addr());
    let mut outcome = match cri.pull(&name, None).await {
        Ok(_) => "pulled".to_string(),
        Err(e) => match cri.pull(&name, None).await {
            Ok(_) => format!("first pull failed ({}), the retry pulled", said(&e)),
            Err(e2) => format!("failed ({}), the retry too ({})", said(&e), said(&e2)),
        },
    };
    let asked = reg.ranges_asked();
    let sent = reg.bytes_sent();
    let total = blob.len() as u64 + img.config.len() as u64;
    if asked.is_empty() {
        outcome.push_str(&format!("; no Range asked, {sent} bytes sent for {total}"));
    } else {
        outcome.push_str(&format!(
            "; resumed with Range {:?}, {sent} bytes sent for {total}",
            asked[0].1
        ));
    }
    Row::new("a layer download drops at 60%", outcome, Vec::new())
}

async fn stalled_registry() -> Row {
    let reg = ScriptedRegistry::start();
    let (d, mut cri, _hosts) = daemon(&reg).await;
    let img = image(32);
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
    let before = files(d.root());
    let started = Instant::now();
    let name = format!("{}/{REPO}:stalls", reg.addr());
    let pull = cri.pull(&name, None);
    let outcome = match tokio::time::timeout(CALLER_PATIENCE, pull).await {
        Ok(Ok(_)) => "pulled (?)".to_string(),
        Ok(Err(e)) => format!("failed after {:.0} s: {}", started.elapsed().as_secs_f64(), said(&e)),
        Err(_) => format!("no answer in {} s; the caller gave up", CALLER_PATIENCE.as_secs()),
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    Row::new(
        "the registry stops sending mid-layer",
        outcome,
        added(&before, &files(d.root())),
    )
}

async fn abandoned_pull() -> Row {
    let reg = ScriptedRegistry::start();
    let (d, mut cri, _hosts) = daemon(&reg).await;
    let img = image(33);
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
    let before = files(d.root());
    let name = format!("{}/{REPO}:abandoned", reg.addr());
    let _ = tokio::time::timeout(Duration::from_secs(2), cri.pull(&name, None)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = added(&before, &files(d.root()));
    let outcome = if left.is_empty() {
        "stopped; nothing kept 3 s after the caller left".to_string()
    } else {
        "the partial download is kept 3 s after the caller left".to_string()
    };
    Row::new("the caller abandons PullImage", outcome, left)
}

/// Pulls `name` expecting a refusal: the outcome, and what the refused pull added.
async fn refusal(d: &Berthd, cri: &mut Cri, name: &str) -> (String, Vec<String>) {
    let before = files(d.root());
    match cri.pull(name, None).await {
        // What an accepted image stores is its own, not left over.
        Ok(_) => ("ACCEPTED: the image is listed".to_string(), Vec::new()),
        Err(e) => (format!("refused, {}", said(&e)), added(&before, &files(d.root()))),
    }
}

async fn lies(emit: &impl Fn(Row)) {
    let reg = ScriptedRegistry::start();
    let (d, mut cri, _hosts) = daemon(&reg).await;
    let a = reg.addr();

    // A size lie about a blob already stored (pulled before under an honest manifest).
    let img = image(34);
    serve(&reg, "honest", &img, Payload::Bytes(img.layers[0].blob.clone()));
    cri.pull(&format!("{a}/{REPO}:honest"), None)
        .await
        .expect("an honest pull");
    let size = img.layers[0].size as i64;
    let lie = with_manifest(&img, |m| m["layers"][0]["size"] = Value::from(size - 7));
    serve(&reg, "cached-lie", &lie, Payload::Bytes(img.layers[0].blob.clone()));
    let (outcome, left) = refusal(&d, &mut cri, &format!("{a}/{REPO}:cached-lie")).await;
    emit(Row::new(
        "a manifest misstates the size of a layer already stored",
        outcome,
        left,
    ));

    // The same lie about a blob not stored yet.
    let img = image(35);
    let size = img.layers[0].size as i64;
    let lie = with_manifest(&img, |m| m["layers"][0]["size"] = Value::from(size - 10));
    serve(&reg, "fresh-lie", &lie, Payload::Bytes(img.layers[0].blob.clone()));
    let (outcome, left) = refusal(&d, &mut cri, &format!("{a}/{REPO}:fresh-lie")).await;
    emit(Row::new("a manifest misstates a new layer's size", outcome, left));

    // Layer bytes that do not match their digest.
    let img = image(36);
    let mut bad = img.layers[0].blob.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    serve(&reg, "flipped", &img, Payload::Bytes(bad));
    let (outcome, left) = refusal(&d, &mut cri, &format!("{a}/{REPO}:flipped")).await;
    emit(Row::new("layer bytes that do not match their digest", outcome, left));

    // A layer whose uncompressed digest is not the config's diff_id.
    let img = image(37);
    let lie = with_wrong_diff_id(&img);
    serve(&reg, "diff-id", &lie, Payload::Bytes(img.layers[0].blob.clone()));
    let (outcome, left) = refusal(&d, &mut cri, &format!("{a}/{REPO}:diff-id")).await;
    emit(Row::new("a layer that is not the config's diff_id", outcome, left));
}

/// Every pull fault, each row handed to `emit` as soon as it is known.
pub async fn all(emit: impl Fn(Row)) {
    emit(dropped_download().await);
    emit(stalled_registry().await);
    emit(abandoned_pull().await);
    lies(&emit).await;
}
