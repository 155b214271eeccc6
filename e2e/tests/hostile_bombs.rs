//! Resource bombs in image layers, against berthd's `[limits]`: gzip layers of a GiB of
//! zeros declared as ~1 MB blobs (in a tar entry, and hidden after the tar's end), a zstd
//! frame that asks for a 1 GiB window, too many entries, too many layers. Each is refused
//! quickly with a message naming the limit, leaving nothing behind.

use std::io::Write;
use std::time::{Duration, Instant};

use berth_e2e::canary::store_leftovers;
use berth_e2e::cri::Cri;
use berth_e2e::image::{media, push_built, BuiltLayer, Compression, Entry, ImageSpec, Layer, Pushed};
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::{sha256_digest, Berthd};
use sha2::{Digest, Sha256};
use tonic::Code;

const MIB: usize = 1 << 20;
/// The per-layer byte limit the bomb tests configure.
const LAYER_BYTES: u64 = 16 << 20;
const LIMITS: &str = "[limits]\nmax_layer_bytes = 16777216\nmax_layers = 4\nmax_layer_entries = 100\n";

async fn berthd_for(reg: &str) -> (Berthd, Cri, tempfile::TempDir) {
    berth_e2e::ctl::berthd_reaching(reg, Some(LIMITS.into()))
        .await
        .expect("berthd starts")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// A 512-byte tar header for a regular file `name` of `size` bytes.
fn file_header(name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).expect("name");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// `prefix` + `zero_mib` MiB of zeros + `suffix`, as concatenated gzip members (one per MiB
/// of zeros, all the same ~1 KiB), with the diff id of the whole decompressed stream.
fn zero_bomb(prefix: &[u8], zero_mib: usize, suffix: &[u8]) -> BuiltLayer {
    let zeros = vec![0u8; MIB];
    let member = gzip(&zeros);
    let mut blob = gzip(prefix);
    let mut diff = Sha256::new();
    diff.update(prefix);
    for _ in 0..zero_mib {
        blob.extend_from_slice(&member);
        diff.update(&zeros);
    }
    blob.extend_from_slice(&gzip(suffix));
    diff.update(suffix);
    BuiltLayer {
        digest: sha256_digest(&blob),
        size: blob.len() as u64,
        media_type: media::OCI_LAYER_GZIP,
        diff_id: format!("sha256:{}", hex::encode(diff.finalize())),
        blob,
    }
}

async fn push(reg: &str, tag: &str, layers: Vec<BuiltLayer>) -> Pushed {
    let types = layers.iter().map(|l| l.media_type).collect();
    let img = ImageSpec::default().build_with(layers, types);
    push_built(reg, "e2e/bomb", tag, &img, None).await.expect("push")
}

/// Pulls `pushed`, expects `code` with `needle` in the message within 60 s, and a clean store.
async fn refused(
    berthd: &Berthd,
    cri: &mut Cri,
    reg: &str,
    pushed: &Pushed,
    kept: &mut Vec<String>,
    code: Code,
    needle: &str,
) {
    let started = Instant::now();
    let err = cri
        .pull(&pushed.image_ref(reg), None)
        .await
        .expect_err(&pushed.reference);
    let tag = &pushed.reference;
    assert_eq!(err.code(), code, "{tag}: {err:?}");
    assert!(
        err.message().contains(needle),
        "{tag}: {needle:?} in {:?}",
        err.message()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{tag}: took {:?}",
        started.elapsed()
    );
    kept.extend([pushed.manifest_digest.clone(), pushed.config_digest.clone()]);
    let left = store_leftovers(berthd.root(), kept);
    assert!(left.is_empty(), "{tag}: left in the store: {left:?}");
}

#[tokio::test]
async fn gzip_bombs_stop_at_the_layer_byte_limit() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let mut kept = Vec::new();

    // One entry declaring 1 GiB of zeros: ~1 MB on the wire.
    let declared = zero_bomb(&file_header("zeros", 1 << 30), 1024, &[0u8; 1024]);
    assert!(declared.size < 2 * MIB as u64, "the bomb is small: {}", declared.size);
    let pushed = push(&reg.addr(), "declared", vec![declared]).await;
    let limit = format!("exceeds {LAYER_BYTES} bytes");
    refused(
        &berthd,
        &mut cri,
        &reg.addr(),
        &pushed,
        &mut kept,
        Code::ResourceExhausted,
        &limit,
    )
    .await;

    // A valid small tar, then 1 GiB of zeros after its end-of-archive blocks, all hashed
    // into the diff id: the unpacker is done early, but the rest must not be inflated
    // without bound either.
    let small = Layer::new(Compression::None, vec![Entry::file("a", "x")]).tar();
    let trailing = zero_bomb(&small, 1024, b"");
    let pushed = push(&reg.addr(), "trailing", vec![trailing]).await;
    refused(
        &berthd,
        &mut cri,
        &reg.addr(),
        &pushed,
        &mut kept,
        Code::ResourceExhausted,
        "limit",
    )
    .await;

    // The same layers below the limit are fine (the limit is what stopped them).
    let ok = zero_bomb(&file_header("zeros", 8 << 20), 8, &[0u8; 1024]);
    let pushed = push(&reg.addr(), "under-limit", vec![ok]).await;
    cri.pull(&pushed.image_ref(&reg.addr()), None)
        .await
        .expect("8 MiB layer");
    assert!(!berthd.log().contains("panicked"));
}

/// The window log a zstd frame header asks for, `None` for single-segment frames.
fn zstd_window_log(frame: &[u8]) -> Option<u32> {
    assert_eq!(&frame[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    let fhd = frame[4];
    (fhd & 0x20 == 0).then(|| 10 + u32::from(frame[5] >> 3))
}

#[tokio::test]
async fn zstd_huge_window_too_many_entries_and_layers_are_refused() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr()).await;
    let mut kept = Vec::new();

    let tar = Layer::new(Compression::None, vec![Entry::file("a", "x")]).tar();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    enc.window_log(30).expect("window log");
    enc.long_distance_matching(true).expect("ldm");
    enc.write_all(&tar).expect("zstd");
    let blob = enc.finish().expect("zstd");
    assert_eq!(zstd_window_log(&blob), Some(30), "the frame asks for a 1 GiB window");
    let layer = BuiltLayer {
        digest: sha256_digest(&blob),
        size: blob.len() as u64,
        media_type: media::OCI_LAYER_ZSTD,
        diff_id: sha256_digest(&tar),
        blob,
    };
    let pushed = push(&reg.addr(), "zstd-window", vec![layer]).await;
    refused(
        &berthd,
        &mut cri,
        &reg.addr(),
        &pushed,
        &mut kept,
        Code::InvalidArgument,
        "memory",
    )
    .await;

    let many: Vec<Entry> = (0..150).map(|i| Entry::file(&format!("f{i}"), "")).collect();
    let pushed = push(
        &reg.addr(),
        "entries",
        vec![Layer::new(Compression::Gzip, many).build()],
    )
    .await;
    refused(
        &berthd,
        &mut cri,
        &reg.addr(),
        &pushed,
        &mut kept,
        Code::ResourceExhausted,
        "more than 100 entries",
    )
    .await;

    let layers = (0..5)
        .map(|i| Layer::new(Compression::Gzip, vec![Entry::file(&format!("l{i}"), "x")]).build())
        .collect();
    let pushed = push(&reg.addr(), "layers", layers).await;
    refused(
        &berthd,
        &mut cri,
        &reg.addr(),
        &pushed,
        &mut kept,
        Code::InvalidArgument,
        "5 layers, over the limit of 4",
    )
    .await;
    assert!(cri.list().await.expect("list").is_empty());
    assert!(!berthd.log().contains("panicked"));
}
