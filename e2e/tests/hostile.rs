//! Hostile image layers against a real berthd and a real registry: path traversal, symlink,
//! hardlink and whiteout escapes (symlinked parents included, within one layer and across
//! two), device nodes and setuid files. Each refused pull must name the problem and leave
//! nothing behind: not outside the store (a canary directory is compared byte for byte), not
//! in it (no snapshot, no scratch directory, no layer blob).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_e2e::canary::{store_leftovers, Canary};
use berth_e2e::cri::Cri;
use berth_e2e::image::{push_built, BuiltLayer, ImageSpec, Pushed};
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::{sha256_digest, Berthd};
use tar::EntryType as T;
use tonic::Code;

/// A berthd reaching `reg` over plain HTTP, with `config` as its config file.
async fn berthd_for(reg: &str, config: Option<String>) -> (Berthd, Cri, tempfile::TempDir) {
    berth_e2e::ctl::berthd_reaching(reg, config)
        .await
        .expect("berthd starts")
}

/// A tar built entry by entry with raw (unchecked) names and link targets.
#[derive(Default)]
struct RawTar(Vec<(tar::Header, Vec<u8>)>);

impl RawTar {
    fn entry(mut self, kind: T, name: &str, link: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "raw names fit the header: {name}"
        );
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.0.push((h, data.to_vec()));
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(T::Regular, name, "", 0o644, data)
    }
    fn dir(self, name: &str, mode: u32) -> Self {
        self.entry(T::Directory, name, "", mode, b"")
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(T::Symlink, name, target, 0o777, b"")
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(T::Link, name, target, 0o644, b"")
    }
    /// Edits the last entry's header (owner, device numbers), re-checksummed.
    fn with(mut self, f: impl FnOnce(&mut tar::Header)) -> Self {
        let (h, _) = self.0.last_mut().expect("an entry");
        f(h);
        h.set_cksum();
        self
    }
    fn build(self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (h, data) in self.0 {
            b.append(&h, data.as_slice()).expect("append");
        }
        b.into_inner().expect("finish")
    }
}

/// An uncompressed layer blob of `tar`.
fn plain_layer(tar: Vec<u8>) -> BuiltLayer {
    let digest = sha256_digest(&tar);
    BuiltLayer {
        size: tar.len() as u64,
        media_type: berth_e2e::image::media::OCI_LAYER,
        diff_id: digest.clone(),
        digest,
        blob: tar,
    }
}

/// Pushes an image made of these layers as `e2e/hostile:<tag>`.
async fn push_layers(reg: &str, tag: &str, layers: Vec<BuiltLayer>) -> Pushed {
    let types = layers.iter().map(|l| l.media_type).collect();
    let img = ImageSpec::default().build_with(layers, types);
    push_built(reg, "e2e/hostile", tag, &img, None).await.expect("push")
}

/// The escape cases, each a list of layers (bottom first), built around the canary.
fn escape_cases(c: &Canary) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let up = "../".repeat(12);
    let (abs, rel) = (c.path().display().to_string(), c.rel());
    let one = |t: RawTar| vec![t.build()];
    let via_link = || RawTar::default().symlink("a", &abs);
    vec![
        (
            "dotdot-file",
            one(RawTar::default().file(&format!("{up}{rel}/victim"), b"pwned")),
        ),
        (
            "absolute-file",
            one(RawTar::default().file(&format!("{abs}/victim"), b"pwned")),
        ),
        ("abs-symlink-parent", one(via_link().file("a/victim", b"pwned"))),
        (
            "rel-symlink-parent",
            one(RawTar::default()
                .symlink("a", &format!("{up}{rel}"))
                .file("a/victim", b"pwned")),
        ),
        (
            "symlink-chain-parent",
            one(RawTar::default()
                .symlink("a", "b")
                .symlink("b", &abs)
                .file("a/sub/new", b"pwned")),
        ),
        (
            "symlinked-dir-entry",
            one(via_link().dir("a/sub/", 0o777).with(|h| h.set_uid(4242))),
        ),
        (
            "hardlink-dotdot",
            one(RawTar::default().hardlink("h", &format!("{up}{rel}/victim"))),
        ),
        (
            "hardlink-absolute",
            one(RawTar::default().hardlink("h", &format!("{abs}/victim"))),
        ),
        ("hardlink-through-symlink", one(via_link().hardlink("h", "a/victim"))),
        (
            "hardlink-into-symlink",
            one(via_link().file("f", b"x").hardlink("a/new", "f")),
        ),
        (
            "device-through-symlink",
            one(via_link().entry(T::Char, "a/null", "", 0o666, b"").with(|h| {
                h.set_device_major(1).expect("major");
                h.set_device_minor(3).expect("minor");
            })),
        ),
        ("whiteout-of-dotdot", one(RawTar::default().file(".wh...", b""))),
        (
            "whiteout-dotdot-path",
            one(RawTar::default().file(&format!("{up}{rel}/.wh.victim"), b"")),
        ),
        ("whiteout-through-symlink", one(via_link().file("a/.wh.victim", b""))),
        ("opaque-through-symlink", one(via_link().file("a/.wh..wh..opq", b""))),
    ]
}

#[tokio::test]
async fn escapes_are_refused_and_write_nothing_anywhere() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let canary = Canary::new();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr(), None).await;
    let mut kept = Vec::new(); // manifests and configs: verified, and may stay cached
    for (tag, tars) in escape_cases(&canary) {
        let pushed = push_layers(&reg.addr(), tag, tars.into_iter().map(plain_layer).collect()).await;
        kept.extend([pushed.manifest_digest.clone(), pushed.config_digest.clone()]);
        let err = cri.pull(&pushed.image_ref(&reg.addr()), None).await.expect_err(tag);
        assert_eq!(err.code(), Code::InvalidArgument, "{tag}: {err:?}");
        let msg = err.message();
        assert!(
            msg.contains("refusing layer entry")
                && (msg.contains("outside")
                    || msg.contains("'..'")
                    || msg.contains("absolute")
                    || msg.contains("whiteout")),
            "{tag}: the error names the problem: {msg}"
        );
        canary.assert_untouched(tag);
        let left = store_leftovers(berthd.root(), &kept);
        assert!(left.is_empty(), "{tag}: left in the store: {left:?}");
    }
    assert!(cri.list().await.expect("list").is_empty(), "no image recorded");
    assert!(!berthd.log().contains("panicked"));
}

/// Layer 1 plants `a -> <canary>`; layer 2 writes `a/victim`, `a/new` and whites out
/// `a/sub`. Each layer is unpacked in its own directory, so layer 2's `a` is a new directory
/// inside its snapshot, never the symlink: the pull succeeds and nothing outside changes.
#[tokio::test]
async fn a_symlink_from_a_lower_layer_is_never_followed() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let canary = Canary::new();
    let abs = canary.path().display().to_string();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr(), None).await;
    let lower = RawTar::default().symlink("a", &abs).build();
    let upper = RawTar::default()
        .file("a/victim", b"pwned")
        .file("a/new", b"pwned")
        .file("a/.wh.sub", b"")
        .file("a/.wh..wh..opq", b"")
        .build();
    let pushed = push_layers(&reg.addr(), "two-layers", vec![plain_layer(lower), plain_layer(upper)]).await;
    cri.pull(&pushed.image_ref(&reg.addr()), None)
        .await
        .expect("pull: each layer stays inside its own snapshot");
    canary.assert_untouched("two layers");
    let snaps: Vec<PathBuf> = std::fs::read_dir(berthd.root().join("snapshots"))
        .expect("snapshots")
        .flatten()
        .map(|e| e.path().join("fs"))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let upper = snaps
        .iter()
        .find(|s| s.join("a").symlink_metadata().is_ok_and(|m| m.is_dir()))
        .expect("layer 2 holds a real directory a");
    assert_eq!(std::fs::read(upper.join("a/victim")).expect("victim"), b"pwned");
    let wh = upper.join("a/sub").symlink_metadata().expect("whiteout");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout inside layer 2"
    );
    let lower = snaps.iter().find(|s| *s != upper).expect("layer 1");
    assert_eq!(
        std::fs::read_link(lower.join("a")).expect("symlink kept"),
        Path::new(&abs)
    );
}

#[tokio::test]
async fn devices_fifos_and_setuid_files_stay_inside_the_snapshot_as_written() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let canary = Canary::new();
    let (berthd, mut cri, _hosts) = berthd_for(&reg.addr(), None).await;
    let dev = |t: RawTar, kind, name: &str, major, minor| {
        t.entry(kind, name, "", 0o640, b"").with(|h| {
            h.set_uid(0);
            h.set_gid(6);
            h.set_device_major(major).expect("major");
            h.set_device_minor(minor).expect("minor");
        })
    };
    let mut t = RawTar::default().dir("dev/", 0o755);
    t = dev(t, T::Char, "dev/mem", 1, 1);
    t = dev(t, T::Block, "dev/sda", 8, 0);
    t = dev(t, T::Fifo, "dev/pipe", 0, 0);
    let tar = t
        .dir("bin/", 0o755)
        .entry(T::Regular, "bin/suid-root", "", 0o4755, b"#!/bin/sh\n")
        .entry(T::Regular, "bin/sgid-1000", "", 0o2711, b"#!/bin/sh\n")
        .with(|h| {
            h.set_uid(1000);
            h.set_gid(1000);
        })
        .dir("tmp/", 0o1777)
        .build();
    let pushed = push_layers(&reg.addr(), "devices", vec![plain_layer(tar)]).await;
    cri.pull(&pushed.image_ref(&reg.addr()), None).await.expect("pull");
    canary.assert_untouched("devices");
    let fs = std::fs::read_dir(berthd.root().join("snapshots"))
        .expect("snapshots")
        .flatten()
        .map(|e| e.path().join("fs"))
        .find(|p| p.join("dev").is_dir())
        .expect("the snapshot");
    let st = |p: &str| fs.join(p).symlink_metadata().unwrap_or_else(|e| panic!("{p}: {e}"));
    let (mem, sda, pipe) = (st("dev/mem"), st("dev/sda"), st("dev/pipe"));
    assert!(mem.file_type().is_char_device() && mem.rdev() == libc::makedev(1, 1));
    assert!(sda.file_type().is_block_device() && sda.rdev() == libc::makedev(8, 0));
    assert!(pipe.file_type().is_fifo());
    for m in [&mem, &sda, &pipe] {
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o640, 0, 6),
            "device mode and owner kept"
        );
    }
    let suid = st("bin/suid-root");
    assert_eq!((suid.mode() & 0o7777, suid.uid()), (0o4755, 0), "setuid root kept");
    let sgid = st("bin/sgid-1000");
    assert_eq!(
        (sgid.mode() & 0o7777, sgid.uid(), sgid.gid()),
        (0o2711, 1000, 1000),
        "setgid kept after chown"
    );
    assert_eq!(st("tmp").mode() & 0o7777, 0o1777, "sticky kept");
    // Nothing named like them appeared on the host.
    for p in ["/dev/pipe", "/bin/suid-root", "/bin/sgid-1000"] {
        assert!(!Path::new(p).exists(), "{p} created on the host");
    }
}
