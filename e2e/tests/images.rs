//! Image pulls end to end: a real `docker-registry` on 127.0.0.1, images built by the
//! test, a real berthd on a temporary socket and root, driven through the CRI.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_e2e::cri::{basic_auth, Cri};
use berth_e2e::image::{busybox_layer, push_image, push_index, Compression, Entry, ImageSpec, Layer, RawKind};
use berth_e2e::proxy::{RecordingProxy, RedirectProxy, Tamper, TamperProxy, TokenAuthProxy};
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::{free_port, require_root, Berthd, BerthdOpts};
use tonic::Code;

/// A berthd whose registry config maps each given host to plain HTTP on itself.
/// The hosts directory lives as long as the returned `TempDir`.
async fn berthd_for(hosts: &[&str]) -> (Berthd, Cri, tempfile::TempDir) {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    for host in hosts {
        write_hosts(dir.path(), host, &format!("server = \"http://{host}\"\n"));
    }
    let berthd = Berthd::start(BerthdOpts {
        registry_config_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .expect("berthd starts");
    let cri = Cri::connect(berthd.socket()).await.expect("connect");
    (berthd, cri, dir)
}

fn write_hosts(dir: &Path, host: &str, text: &str) {
    std::fs::create_dir_all(dir.join(host)).expect("mkdir");
    std::fs::write(dir.join(host).join("hosts.toml"), text).expect("write hosts.toml");
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count()
}

fn two_layer_image() -> ImageSpec {
    ImageSpec {
        layers: vec![
            busybox_layer(Compression::Gzip),
            Layer {
                compression: Compression::Gzip,
                entries: vec![
                    Entry::Dir {
                        path: "data".into(),
                        mode: 0o755,
                    },
                    Entry::File {
                        path: "data/hello.txt".into(),
                        mode: 0o644,
                        uid: 1000,
                        gid: 1000,
                        data: b"hello berth\n".to_vec(),
                    },
                    Entry::File {
                        path: "data/suid".into(),
                        mode: 0o4755,
                        uid: 0,
                        gid: 0,
                        data: b"#!/bin/sh\n".to_vec(),
                    },
                    Entry::Hardlink {
                        path: "data/hello-link.txt".into(),
                        target: "data/hello.txt".into(),
                    },
                    Entry::Symlink {
                        path: "data/abs-link".into(),
                        target: "/etc/passwd".into(),
                    },
                    Entry::Whiteout {
                        path: "etc/group".into(),
                    },
                    Entry::Opaque { dir: "opaque".into() },
                ],
            },
        ],
        user: Some("1000".into()),
        cmd: vec!["sh".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn pull_by_tag_and_digest_then_status_list_remove() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let pushed = push_image(&reg.addr(), "e2e/app", "v1", &two_layer_image(), None)
        .await
        .expect("push");
    let (berthd, mut cri, _hosts) = berthd_for(&[&reg.addr()]).await;
    let name = format!("{}/e2e/app:v1", reg.addr());

    let id = cri.pull(&name, None).await.expect("pull by tag");
    assert_eq!(id, pushed.config_digest, "PullImage returns the image id");

    // The unpacked snapshots are on disk, in overlayfs form.
    let snaps = berthd.root().join("snapshots");
    let layer_dirs: Vec<PathBuf> = std::fs::read_dir(&snaps)
        .expect("snapshots dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    assert_eq!(layer_dirs.len(), 2, "one snapshot per layer");
    let top = layer_dirs
        .iter()
        .map(|d| d.join("fs"))
        .find(|d| d.join("data").exists())
        .expect("top layer");
    assert_eq!(
        std::fs::read(top.join("data/hello.txt")).expect("file"),
        b"hello berth\n"
    );
    let meta = std::fs::metadata(top.join("data/hello.txt")).expect("stat");
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "ownership kept");
    let link = std::fs::metadata(top.join("data/hello-link.txt")).expect("stat link");
    assert_eq!(link.ino(), meta.ino(), "hardlink kept");
    assert_eq!(
        std::fs::metadata(top.join("data/suid")).expect("stat").mode() & 0o7777,
        0o4755,
        "setuid kept"
    );
    assert_eq!(
        std::fs::read_link(top.join("data/abs-link")).expect("symlink"),
        PathBuf::from("/etc/passwd")
    );
    let wh = std::fs::symlink_metadata(top.join("etc/group")).expect("whiteout");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0:0 char device"
    );
    let bottom = layer_dirs
        .iter()
        .map(|d| d.join("fs"))
        .find(|d| d.join("bin/busybox").exists())
        .expect("busybox layer");
    assert!(bottom
        .join("bin/sh")
        .symlink_metadata()
        .expect("sh")
        .file_type()
        .is_symlink());

    // Every name resolves: tag, digest, id, short id.
    let by_digest = format!("{}/e2e/app@{}", reg.addr(), pushed.manifest_digest);
    for n in [name.as_str(), by_digest.as_str(), id.as_str(), &id[7..19]] {
        let img = cri
            .status(n)
            .await
            .expect("status")
            .unwrap_or_else(|| panic!("{n} resolves"));
        assert_eq!(img.id, id);
        assert_eq!(img.uid.as_ref().map(|u| u.value), Some(1000));
        assert_eq!(img.repo_tags, vec![name.clone()]);
        assert_eq!(img.repo_digests, vec![by_digest.clone()]);
        assert_eq!(img.size, pushed.size, "size counts manifest, config and layers");
    }
    assert_eq!(cri.pull(&by_digest, None).await.expect("pull by digest"), id);
    assert_eq!(cri.list().await.expect("list").len(), 1);

    // Filesystem usage reflects the unpacked bytes.
    let fs = cri
        .images
        .image_fs_info(berth_e2e::cri::v1::ImageFsInfoRequest {})
        .await
        .expect("fsinfo")
        .into_inner();
    let used = fs.image_filesystems[0].used_bytes.as_ref().expect("used").value;
    assert!(used > 500_000, "busybox alone is bigger than {used} bytes");

    cri.remove(&name).await.expect("remove");
    assert!(cri.status(&id).await.expect("status").is_none());
    cri.remove(&name).await.expect("removing again is fine");
    assert_eq!(files_under(&snaps), 0, "snapshots collected");
    assert_eq!(
        files_under(&berthd.root().join("content/blobs/sha256")),
        0,
        "blobs collected"
    );
}

#[tokio::test]
async fn manifest_list_selects_this_platform_and_zstd_layers_unpack() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let zstd = |arch: &str, marker: &str| ImageSpec {
        layers: vec![Layer {
            compression: Compression::Zstd,
            entries: vec![Entry::File {
                path: "arch".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                data: marker.as_bytes().to_vec(),
            }],
        }],
        arch: arch.into(),
        ..Default::default()
    };
    let (_, pushed) = push_index(
        &reg.addr(),
        "e2e/multi",
        "1",
        &[zstd("arm64", "arm64"), zstd("amd64", "amd64")],
        true,
        None,
    )
    .await
    .expect("push");
    let (berthd, mut cri, _hosts) = berthd_for(&[&reg.addr()]).await;
    let id = cri
        .pull(&format!("{}/e2e/multi:1", reg.addr()), None)
        .await
        .expect("pull");
    let amd64 = pushed
        .iter()
        .find(|p| p.layer_digests.len() == 1 && p.config_digest == id);
    assert!(amd64.is_some(), "the amd64 image was chosen");
    let snaps = berthd.root().join("snapshots");
    let found = std::fs::read_dir(&snaps)
        .expect("ls")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("fs/arch")).ok())
        .collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![b"amd64".to_vec()],
        "only this platform's zstd layer was unpacked"
    );
}

#[tokio::test]
async fn missing_image_and_bad_names() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let (_berthd, mut cri, _hosts) = berthd_for(&[&reg.addr()]).await;
    let err = cri
        .pull(&format!("{}/e2e/nothing:here", reg.addr()), None)
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = cri.pull("Not A Valid Name", None).await.expect_err("bad name");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = cri.pull("", None).await.expect_err("empty");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(cri
        .status("sha256:0000000000000000000000000000000000000000000000000000000000000000")
        .await
        .expect("ok")
        .is_none());
    cri.remove("never/pulled:1").await.expect("idempotent remove");
}

#[tokio::test]
async fn mirror_is_used_and_a_dead_mirror_falls_back() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    push_image(&reg.addr(), "team/app", "1", &two_layer_image(), None)
        .await
        .expect("push");
    require_root();
    let dead = format!("127.0.0.1:{}", free_port());
    let hosts = tempfile::tempdir().expect("tempdir");
    // The registry's own server is unreachable; the mirror has the image.
    write_hosts(
        hosts.path(),
        "registry.berth.test",
        &format!(
            "server = \"http://{dead}\"\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            reg.addr()
        ),
    );
    // The mirror is dead; the server has the image.
    write_hosts(
        hosts.path(),
        "fallback.berth.test",
        &format!(
            "server = \"http://{}\"\n[host.\"http://{dead}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            reg.addr()
        ),
    );
    let berthd = Berthd::start(BerthdOpts {
        registry_config_dir: Some(hosts.path().into()),
        config_toml: Some(format!("registry_mirrors = [\"http://{}\"]\n", reg.addr())),
        ..Default::default()
    })
    .await
    .expect("berthd");
    let mut cri = Cri::connect(berthd.socket()).await.expect("connect");
    cri.pull("registry.berth.test/team/app:1", None)
        .await
        .expect("pull through the mirror");
    cri.pull("fallback.berth.test/team/app:1", None)
        .await
        .expect("pull falls back to the server");
    // docker.io through config.toml's registry_mirrors (the upstream is never reached offline).
    push_image(&reg.addr(), "library/mirrored", "1", &two_layer_image(), None)
        .await
        .expect("push");
    cri.pull("mirrored:1", None)
        .await
        .expect("docker.io pull through registry_mirrors");
    assert!(cri
        .status("docker.io/library/mirrored:1")
        .await
        .expect("status")
        .is_some());
}

#[tokio::test]
async fn basic_auth_registry_needs_the_right_credentials_even_for_a_present_image() {
    let reg = TestRegistry::start(RegistryOpts {
        htpasswd: Some(("alice".into(), "s3cret".into())),
    })
    .await
    .expect("registry");
    push_image(
        &reg.addr(),
        "private/app",
        "1",
        &two_layer_image(),
        Some(("alice", "s3cret")),
    )
    .await
    .expect("push");
    let (berthd, mut cri, _hosts) = berthd_for(&[&reg.addr()]).await;
    let name = format!("{}/private/app:1", reg.addr());
    let err = cri.pull(&name, None).await.expect_err("anonymous");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = cri
        .pull(&name, Some(basic_auth("alice", "wrong")))
        .await
        .expect_err("wrong password");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    cri.pull(&name, Some(basic_auth("alice", "s3cret")))
        .await
        .expect("right credentials");
    // Ensure secret-pulled images (KEP-2535): with the image on the node, a pull with
    // credentials still asks the registry, so wrong or no credentials are still refused.
    for auth in [Some(basic_auth("alice", "wrong")), None] {
        let err = cri.pull(&name, auth).await.expect_err("present, but not authorized");
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    }
    assert!(
        cri.status(&name).await.expect("status").is_some(),
        "the image itself stays"
    );
    let log = berthd.log();
    assert!(!log.contains("s3cret"), "the password never reaches the log");
}

#[tokio::test]
async fn bearer_token_auth_and_no_credentials_across_redirects() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    push_image(&reg.addr(), "private/app", "1", &two_layer_image(), None)
        .await
        .expect("push");
    let token = TokenAuthProxy::start(&reg.addr(), "bob", "hunter2");
    let (_berthd, mut cri, _hosts) = berthd_for(&[&token.addr()]).await;
    let name = format!("{}/private/app:1", token.addr());
    let err = cri.pull(&name, None).await.expect_err("anonymous");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = cri
        .pull(&name, Some(basic_auth("bob", "nope")))
        .await
        .expect_err("wrong");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    cri.pull(&name, Some(basic_auth("bob", "hunter2")))
        .await
        .expect("token flow");
    assert!(token
        .seen_auth()
        .iter()
        .any(|(_, a)| a.as_deref().is_some_and(|a| a.starts_with("Bearer "))));

    // Blobs redirected to another host: that host must not see the credentials.
    let blobs = RecordingProxy::start(&reg.addr());
    let redirect = RedirectProxy::start(&reg.addr(), &blobs.addr());
    let (_b2, mut cri2, _h2) = berthd_for(&[&redirect.addr(), &blobs.addr()]).await;
    cri2.pull(
        &format!("{}/private/app:1", redirect.addr()),
        Some(basic_auth("bob", "hunter2")),
    )
    .await
    .expect("pull via redirect");
    let seen = blobs.seen_auth();
    assert!(!seen.is_empty(), "blobs were fetched from the redirect target");
    assert!(
        seen.iter().all(|(_, a)| a.is_none()),
        "credentials crossed a redirect: {seen:?}"
    );
}

#[tokio::test]
async fn tampered_and_truncated_blobs_leave_nothing_behind() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    push_image(&reg.addr(), "e2e/app", "1", &two_layer_image(), None)
        .await
        .expect("push");
    for mode in [Tamper::FlipByteInBlobs, Tamper::TruncateBlobs] {
        let proxy = TamperProxy::start(&reg.addr(), mode);
        let (berthd, mut cri, _hosts) = berthd_for(&[&proxy.addr()]).await;
        let err = cri
            .pull(&format!("{}/e2e/app:1", proxy.addr()), None)
            .await
            .expect_err("tampered");
        assert!(matches!(err.code(), Code::DataLoss | Code::Unavailable), "{err:?}");
        assert!(cri.list().await.expect("list").is_empty(), "no half image listed");
        assert_eq!(files_under(&berthd.root().join("snapshots")), 0, "no snapshot kept");
        assert_eq!(
            files_under(&berthd.root().join("content/ingest")),
            0,
            "no half-written blob"
        );
        // Only manifests and the config (verified) may be cached; no layer blob is.
        let blobs = files_under(&berthd.root().join("content/blobs/sha256"));
        assert!(blobs <= 2, "{blobs} blobs kept after a failed pull");
    }
}

#[tokio::test]
async fn hostile_layers_are_rejected_and_write_nothing_outside() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let canary_dir = tempfile::tempdir().expect("tempdir");
    let canary = canary_dir.path().join("pwned");
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        (
            "dotdot",
            vec![Entry::RawName {
                name: b"../../../../../../tmp/berth-e2e-pwned".to_vec(),
                kind: RawKind::File(b"x".to_vec()),
            }],
        ),
        (
            "absolute",
            vec![Entry::RawName {
                name: canary.to_string_lossy().as_bytes().to_vec(),
                kind: RawKind::File(b"x".to_vec()),
            }],
        ),
        (
            "symlink",
            vec![
                Entry::Symlink {
                    path: "escape".into(),
                    target: canary_dir.path().to_string_lossy().into_owned(),
                },
                Entry::File {
                    path: "escape/pwned".into(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    data: b"x".to_vec(),
                },
            ],
        ),
        (
            "hardlink",
            vec![Entry::RawName {
                name: b"passwd".to_vec(),
                kind: RawKind::Hardlink("../../../../../../etc/passwd".into()),
            }],
        ),
    ];
    let (berthd, mut cri, _hosts) = berthd_for(&[&reg.addr()]).await;
    for (tag, entries) in cases {
        let spec = ImageSpec {
            layers: vec![Layer {
                compression: Compression::Gzip,
                entries,
            }],
            ..Default::default()
        };
        push_image(&reg.addr(), "e2e/hostile", tag, &spec, None)
            .await
            .expect("push");
        let err = cri
            .pull(&format!("{}/e2e/hostile:{tag}", reg.addr()), None)
            .await
            .expect_err(tag);
        assert_eq!(err.code(), Code::InvalidArgument, "{tag}: {err:?}");
        assert!(!canary.exists(), "{tag}: wrote outside the layer");
        assert!(
            !Path::new("/tmp/berth-e2e-pwned").exists(),
            "{tag}: wrote outside the layer"
        );
        assert_eq!(files_under(&berthd.root().join("snapshots")), 0, "{tag}: snapshot kept");
    }
    assert!(cri.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn images_survive_a_restart_and_concurrent_pulls_share_work() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let pushed = push_image(&reg.addr(), "e2e/app", "1", &two_layer_image(), None)
        .await
        .expect("push");
    let counter = RecordingProxy::start(&reg.addr());
    let (mut berthd, cri, _hosts) = berthd_for(&[&counter.addr()]).await;
    let name = format!("{}/e2e/app:1", counter.addr());
    let (mut c1, mut c2) = (cri.clone(), cri.clone());
    let (a, b) = tokio::join!(c1.pull(&name, None), c2.pull(&name, None));
    assert_eq!(a.expect("first"), pushed.config_digest);
    assert_eq!(b.expect("second"), pushed.config_digest);
    for layer in &pushed.layer_digests {
        let fetches = counter
            .seen_auth()
            .iter()
            .filter(|(p, _)| p.ends_with(&format!("/blobs/{layer}")))
            .count();
        assert_eq!(fetches, 1, "layer {layer} downloaded {fetches} times");
    }
    berthd.restart().await.expect("restart");
    let mut cri = Cri::connect(berthd.socket()).await.expect("reconnect");
    let img = cri
        .status(&name)
        .await
        .expect("status")
        .expect("still there after restart");
    assert_eq!(img.id, pushed.config_digest);
}
