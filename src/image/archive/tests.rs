//! Archives written and read back through a real content store and overlay snapshotter.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::image::content::ContentStore;
use crate::image::hosts::HostsConfig;
use crate::image::reference::Digest;
use crate::image::registry::RegistryClient;
use crate::image::{ImageError, Images, ImagesOptions};
use crate::snapshot::overlay::OverlaySnapshotter;
use crate::store::MetaStore;

struct Node {
    _dir: tempfile::TempDir,
    images: Images,
    spool: std::path::PathBuf,
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let content = ContentStore::open(&dir.path().join("content")).unwrap();
    let snapshots = Arc::new(OverlaySnapshotter::open(&dir.path().join("snapshots")).unwrap());
    let meta = Arc::new(MetaStore::open(&dir.path().join("meta.db")).unwrap());
    let registry = RegistryClient::new(HostsConfig::default(), std::time::Duration::from_secs(5));
    let options = ImagesOptions {
        limits: Default::default(),
        max_concurrent_downloads: 2,
        auth_file: dir.path().join("config.json"),
        signature_policy: None,
    };
    let images = Images::open(content, snapshots, registry, meta, options).unwrap();
    let spool = dir.path().join("archive.tar");
    Node {
        _dir: dir,
        images,
        spool,
    }
}

/// A tar of regular files, names written raw (so `../` can be tested too).
fn tar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A layer tar with one file, and its gzip form.
fn layer(content: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("hello.txt").unwrap();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, content).unwrap();
    let plain = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    (plain.clone(), gz.finish().unwrap())
}

fn config(diff_ids: &[Digest]) -> Vec<u8> {
    let ids: Vec<&str> = diff_ids.iter().map(Digest::as_str).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": [
            {"created_by": "ADD one"},
            {"created_by": "ENV A=1", "empty_layer": true},
            {"created_by": "ADD two", "comment": "second"},
        ],
    }))
    .unwrap()
}

/// A `docker save` archive: a gzip layer and an uncompressed one.
fn docker_archive(tag: &str, diff_override: Option<Digest>) -> Vec<u8> {
    let (plain1, gz1) = layer(b"one\n");
    let (plain2, _) = layer(b"two\n");
    let diff1 = diff_override.unwrap_or_else(|| Digest::of(&plain1));
    let cfg = config(&[diff1, Digest::of(&plain2)]);
    let cfg_name = format!("{}.json", Digest::of(&cfg).hex());
    let manifest = json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": ["l1/layer.tar", "./l2/layer.tar"]}]);
    tar_of(&[
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        (&cfg_name, cfg.clone()),
        ("l1/layer.tar", gz1),
        ("l2/layer.tar", plain2),
    ])
}

async fn import(n: &Node, bytes: &[u8]) -> Result<Vec<crate::image::ImageRecord>, ImageError> {
    std::fs::write(&n.spool, bytes).unwrap();
    n.images.import_archive(&n.spool).await
}

async fn export(n: &Node, names: &[&str], format: ArchiveFormat) -> Vec<u8> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let plan = n.images.export_plan(&names, format).await.unwrap();
    write_archive(plan, Vec::new()).unwrap()
}

fn blobs(n: &Node) -> usize {
    n.images.content.list().unwrap().len()
}

#[tokio::test]
async fn docker_import_then_round_trip_in_both_formats() {
    let n = node();
    let imported = import(&n, &docker_archive("example.com/app:v1", None)).await.unwrap();
    assert_eq!(imported.len(), 1);
    let original = imported[0].clone();
    assert_eq!(original.repo_tags, vec!["example.com/app:v1".to_string()]);
    assert_eq!(original.layers.len(), 2);
    assert!(n.images.resolve("example.com/app:v1").is_some());
    let (_, history) = n.images.history("example.com/app:v1").unwrap();
    assert_eq!(history.len(), 3);
    assert!(history[0].layer.is_some() && history[1].empty_layer && history[2].comment == "second");
    assert_eq!(history[2].layer.as_deref(), Some(original.layers[1].as_str()));

    for format in [ArchiveFormat::Oci, ArchiveFormat::Docker] {
        let archive = export(&n, &["example.com/app:v1"], format).await;
        assert!(n.images.remove(&original.id).await.unwrap());
        assert_eq!(blobs(&n), 0, "removal collects every blob");
        let back = import(&n, &archive).await.unwrap();
        assert_eq!(back.len(), 1, "{format:?}");
        assert_eq!(back[0].id, original.id, "{format:?}");
        assert_eq!(back[0].layers, original.layers, "{format:?}");
        assert_eq!(back[0].repo_tags, original.repo_tags, "{format:?}");
        if format == ArchiveFormat::Oci {
            assert_eq!(back[0].manifest, original.manifest, "the OCI layout keeps the manifest");
            assert_eq!(
                back[0].repo_digests,
                vec![format!("example.com/app@{}", original.manifest)]
            );
        }
    }
}

#[tokio::test]
async fn tampered_blobs_wrong_diff_ids_and_escapes_are_refused_leaving_nothing() {
    let n = node();
    let good = import(&n, &docker_archive("example.com/app:v1", None)).await.unwrap();
    let oci = export(&n, &["example.com/app:v1"], ArchiveFormat::Oci).await;
    n.images.remove(&good[0].id).await.unwrap();
    assert_eq!(blobs(&n), 0);

    // One byte of a layer blob changed (a tar member's data, past the 512-byte header).
    let layer_hex = Digest::parse(&good[0].layers[1]).unwrap().hex().to_string();
    let at = find(&oci, format!("blobs/sha256/{layer_hex}\0").as_bytes()) + 512 + 10;
    let mut tampered = oci.clone();
    tampered[at] ^= 0xff;
    let err = import(&n, &tampered).await.unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_eq!(blobs(&n), 0);

    // A config whose diff id does not match the layer.
    let err = import(&n, &docker_archive("example.com/app:v1", Some(Digest::of(b"x"))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the image config says"), "{err}");
    assert_eq!(blobs(&n), 0, "nothing stored after a failed import");
    assert!(n.images.snapshots.list().unwrap().is_empty());
    assert!(n.images.list().is_empty());

    // Paths that climb out, and archives of neither format.
    let err = import(&n, &tar_of(&[("../manifest.json", b"[]".to_vec())]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::Invalid(_)) && err.to_string().contains("climbs out"),
        "{err}"
    );
    let err = import(&n, &tar_of(&[("hello", b"x".to_vec())])).await.unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
    let err = import(
        &n,
        &tar_of(&[("manifest.json", br#"[{"Config":"../c.json","Layers":[]}]"#.to_vec())]),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("climbs out"), "{err}");
    // The ingest area holds no leftovers.
    assert_eq!(
        std::fs::read_dir(n._dir.path().join("content/ingest")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn tag_moves_and_validates() {
    let n = node();
    let first = import(&n, &docker_archive("example.com/app:v1", None)).await.unwrap();
    let (record, tag) = n.images.tag("example.com/app:v1", "other/name").await.unwrap();
    assert_eq!(tag, "docker.io/other/name:latest");
    assert!(record.repo_tags.contains(&tag) && record.id == first[0].id);
    assert!(matches!(
        n.images.tag("nope:1", "x:1").await.unwrap_err(),
        ImageError::NotFound(_)
    ));
    assert!(matches!(
        n.images.tag("example.com/app:v1", "UPPER/Case").await.unwrap_err(),
        ImageError::Reference(_)
    ));
    assert!(matches!(
        n.images
            .tag("example.com/app:v1", &format!("x@{}", first[0].id))
            .await
            .unwrap_err(),
        ImageError::Invalid(_)
    ));
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).unwrap()
}
