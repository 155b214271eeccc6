//! `berthctl` against a real berthd through Berth's own image API: pull with progress,
//! login/logout against an htpasswd registry, tag, history, save/load in both archive
//! formats (the loaded image runs), and a tampered archive refused without leftovers.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use berth_e2e::cri::Cri;
use berth_e2e::ctl::{berthctl, berthctl_binary, berthd_reaching, blobs, files_in, tar_listing, CtlOut};
use berth_e2e::image::{busybox_layer, push_image, random_layer, Compression, ImageSpec};
use berth_e2e::proxy::TokenAuthProxy;
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::{require_root, Berthd};
use tonic::Code;

/// Runs `berthctl -r <berthd> ARGS`, feeding `stdin` when given.
fn ctl(berthd: &Berthd, args: &[&str], stdin: Option<&str>) -> CtlOut {
    berthctl(&berthd.endpoint(), args, stdin).expect("berthctl (cargo build --bin berthctl)")
}

/// A berthd reaching `reg` over plain HTTP; extra TOML for its config.
async fn berthd_for(reg: &TestRegistry, toml: Option<String>) -> (Berthd, Cri, tempfile::TempDir) {
    berthd_reaching(&reg.addr(), toml).await.expect("berthd")
}

fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}

#[tokio::test]
async fn pull_with_progress_then_tag_and_history() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let spec = ImageSpec {
        layers: vec![
            busybox_layer(Compression::Gzip),
            random_layer(3 << 20, 7, Compression::Gzip),
        ],
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    let pushed = push_image(&reg.addr(), "e2e/progress", "v1", &spec, None)
        .await
        .expect("push");
    let (berthd, mut cri, _hosts) = berthd_for(&reg, None).await;
    let name = pushed.image_ref(&reg.addr());

    let out = ctl(&berthd, &["pull", &name], None);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    for layer in &pushed.layer_digests {
        let s = short(layer);
        assert!(out.stderr.contains(&format!("{s}: downloading")), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("{s}: done")), "{}", out.stderr);
    }
    assert!(
        !out.stderr.contains('\x1b'),
        "no terminal codes off a terminal: {:?}",
        out.stderr
    );
    assert!(
        out.stdout.contains("Pulled ") && out.stdout.contains("2 layers"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" MB/s"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("Digest: {}", pushed.digest_ref(&reg.addr()))),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("Image: {}", pushed.config_digest)),
        "{}",
        out.stdout
    );

    // Again: every layer is already there; -q prints the id alone.
    let out = ctl(&berthd, &["pull", &name], None);
    assert!(
        out.ok && out.stderr.matches("already present").count() == 2,
        "{}",
        out.stderr
    );
    let out = ctl(&berthd, &["pull", "-q", &name], None);
    assert_eq!(out.stdout.trim(), pushed.config_digest, "{}", out.stderr);

    // On a terminal (script(1) gives it one): bars redrawn in place, then the summary.
    let other = ImageSpec {
        layers: vec![random_layer(2 << 20, 8, Compression::Gzip)],
        ..Default::default()
    };
    let pushed2 = push_image(&reg.addr(), "e2e/progress", "tty", &other, None)
        .await
        .expect("push");
    let bin = berthctl_binary().expect("berthctl");
    let line = format!(
        "{} -r {} pull {}",
        bin.display(),
        berthd.endpoint(),
        pushed2.image_ref(&reg.addr())
    );
    let tty = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1)");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{text}");
    assert!(
        text.contains("\x1b[2K") && text.contains("\x1b[2A"),
        "redrawn in place: {text:?}"
    );
    assert!(
        text.contains(&format!("{}: done", short(&pushed2.layer_digests[0]))),
        "{text:?}"
    );
    assert!(
        text.contains("[========================]") && text.contains("1 layer:"),
        "{text:?}"
    );
    assert!(text.contains("Pulled "), "{text:?}");

    // A pull of what is not there fails with the registry's answer.
    let out = ctl(&berthd, &["pull", &format!("{}/e2e/nothing:1", reg.addr())], None);
    assert!(!out.ok && out.stderr.contains("not found"), "{}", out.stderr);

    // Tag, then the CRI lists the new name on the same image.
    let out = ctl(&berthd, &["tag", &name, "e2e/other:v2"], None);
    assert!(out.ok, "{}", out.stderr);
    let status = cri
        .status("docker.io/e2e/other:v2")
        .await
        .expect("status")
        .expect("tagged");
    assert_eq!(status.id, pushed.config_digest);
    assert!(status.repo_tags.contains(&name), "{:?}", status.repo_tags);
    let out = ctl(&berthd, &["images"], None);
    assert!(
        out.stdout.contains("docker.io/e2e/other") && out.stdout.contains("v2"),
        "{}",
        out.stdout
    );
    let out = ctl(&berthd, &["tag", "e2e/missing:1", "e2e/x:1"], None);
    assert!(!out.ok && out.stderr.contains("not found"), "{}", out.stderr);
    let out = ctl(&berthd, &["tag", &name, "Bad/UPPER:case"], None);
    assert!(!out.ok && out.stderr.contains("invalid request"), "{}", out.stderr);

    // History: one step per layer, from the config, aligned with the layers.
    let out = ctl(&berthd, &["history", "-o", "json", "e2e/other:v2"], None);
    assert!(out.ok, "{}", out.stderr);
    let h: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let steps = h["history"].as_array().expect("history");
    assert_eq!(steps.len(), 2);
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["layer"], pushed.layer_digests[i].as_str());
        assert_eq!(step["createdBy"], format!("berth-e2e layer {i}"));
        assert!(step["size"].as_u64().unwrap_or(0) > 0, "{step}");
    }
    let out = ctl(&berthd, &["history", &name], None);
    assert!(out.ok && out.stdout.contains("CREATED BY") && out.stdout.contains("berth-e2e layer 1"));
    let out = ctl(&berthd, &["history", "e2e/missing:1"], None);
    assert!(!out.ok && out.stderr.contains("not found"), "{}", out.stderr);
}

#[tokio::test]
async fn login_then_private_pull_then_logout() {
    let reg = TestRegistry::start(RegistryOpts {
        htpasswd: Some(("alice".into(), "s3cret".into())),
    })
    .await
    .expect("registry");
    let spec = ImageSpec::busybox();
    push_image(&reg.addr(), "private/app", "1", &spec, Some(("alice", "s3cret")))
        .await
        .expect("push");
    let creds_dir = tempfile::tempdir().expect("tempdir");
    let config = creds_dir.path().join("docker/config.json");
    let toml = format!("registry_auth_file = \"{}\"\n", config.display());
    let (berthd, mut cri, _hosts) = berthd_for(&reg, Some(toml)).await;
    let name = format!("{}/private/app:1", reg.addr());
    let config_arg = config.display().to_string();
    let addr = reg.addr();

    // Wrong password: refused by the registry, nothing written.
    let out = ctl(
        &berthd,
        &[
            "login",
            &addr,
            "-u",
            "alice",
            "--password-stdin",
            "--config",
            &config_arg,
        ],
        Some("wrong\n"),
    );
    assert!(
        !out.ok && out.stderr.contains("authentication failed"),
        "{}",
        out.stderr
    );
    assert!(!config.exists());

    let out = ctl(
        &berthd,
        &[
            "login",
            &addr,
            "-u",
            "alice",
            "--password-stdin",
            "--config",
            &config_arg,
        ],
        Some("s3cret\n"),
    );
    assert!(
        out.ok && out.stdout.contains("Login Succeeded"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"));
    let mode = std::fs::metadata(&config).expect("config").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
    assert_eq!(saved["auths"][addr.as_str()]["auth"], "YWxpY2U6czNjcmV0", "{saved}");
    assert_eq!(files_in(config.parent().expect("dir")), 1, "no temporary file left");

    // berthctl pull finds the credentials itself; so does a CRI pull (berthd reads the file).
    let out = ctl(&berthd, &["pull", &name, "--config", &config_arg], None);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    cri.pull(&name, None)
        .await
        .expect("CRI pull with the stored credentials");

    let out = ctl(&berthd, &["logout", &addr, "--config", &config_arg], None);
    assert!(out.ok && out.stdout.contains("Removed"), "{}", out.stdout);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
    assert!(saved["auths"].get(addr.as_str()).is_none(), "{saved}");
    let err = cri.pull(&name, None).await.expect_err("logged out");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let out = ctl(&berthd, &["pull", &name, "--config", &config_arg], None);
    assert!(
        !out.ok && out.stderr.contains("authentication failed"),
        "{}",
        out.stderr
    );
    let out = ctl(&berthd, &["logout", &addr, "--config", &config_arg], None);
    assert!(out.ok && out.stdout.contains("Not logged in"), "{}", out.stdout);
}

// Multi-threaded: the token proxy runs in this runtime while berthctl is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_a_bearer_token_service() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    push_image(&reg.addr(), "private/app", "1", &ImageSpec::busybox(), None)
        .await
        .expect("push");
    let token = TokenAuthProxy::start(&reg.addr(), "bob", "hunter2");
    let (berthd, _cri, _hosts) = berthd_reaching(&token.addr(), None).await.expect("berthd");
    let creds_dir = tempfile::tempdir().expect("tempdir");
    let config = creds_dir.path().join("config.json");
    let config_arg = config.display().to_string();
    let addr = token.addr();
    let login = |pass: &str| {
        ctl(
            &berthd,
            &[
                "login",
                &addr,
                "--username",
                "bob",
                "--password-stdin",
                "--config",
                &config_arg,
            ],
            Some(&format!("{pass}\n")),
        )
    };
    let out = login("nope");
    assert!(
        !out.ok && out.stderr.contains("authentication failed"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("nope"), "{}", out.stderr);
    assert!(!config.exists());
    let out = login("hunter2");
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(token
        .seen_auth()
        .iter()
        .any(|(path, a)| path.starts_with("/v2") && a.as_deref().is_some_and(|a| a.starts_with("Bearer "))));
    let out = ctl(
        &berthd,
        &["pull", &format!("{addr}/private/app:1"), "--config", &config_arg],
        None,
    );
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
}

#[tokio::test]
async fn save_rmi_load_in_both_formats_and_the_image_runs() {
    require_root();
    let mut env = berth_e2e::workload::env(None).await;
    let image = env.image.clone();
    let original = env.cri.status(&image).await.expect("status").expect("pulled");
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["docker", "oci"] {
        let archive = dir.path().join(format!("{format}.tar"));
        let archive_arg = archive.display().to_string();
        let out = ctl(
            &env.berthd,
            &["save", &image, "-o", &archive_arg, "--format", format],
            None,
        );
        assert!(out.ok, "{}", out.stderr);
        let listing = tar_listing(&archive).expect("archive");
        match format {
            "docker" => assert!(listing.contains(&"manifest.json".to_string()), "{listing:?}"),
            _ => assert!(
                listing.contains(&"oci-layout".to_string()) && listing.contains(&"index.json".to_string()),
                "{listing:?}"
            ),
        }
        env.cri.remove(&image).await.expect("rmi");
        assert!(env.cri.status(&image).await.expect("status").is_none());

        let out = ctl(&env.berthd, &["load", "-i", &archive_arg], None);
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains(&format!("Loaded image: {image}")), "{}", out.stdout);
        let loaded = env.cri.status(&image).await.expect("status").expect("loaded");
        assert_eq!(loaded.id, original.id, "{format}");
        if format == "oci" {
            assert_eq!(
                loaded.repo_digests, original.repo_digests,
                "the OCI layout keeps the manifest"
            );
        }

        let pod = env.pod(&format!("load-{format}")).await;
        let c = env.container("hello", &["sh", "-c", "echo loaded-and-running"]);
        let (code, _, log) = env.run_to_exit(&pod, c).await;
        assert_eq!(code, 0, "{log}");
        assert!(log.contains("loaded-and-running"), "{log}");
        berth_e2e::pod::stop_remove(&mut env.cri, &pod.0).await;
    }
    // Saving what is not there fails and writes no file.
    let missing = dir.path().join("missing.tar");
    let out = ctl(
        &env.berthd,
        &["save", "e2e/missing:1", "-o", &missing.display().to_string()],
        None,
    );
    assert!(!out.ok && out.stderr.contains("not found"), "{}", out.stderr);
    assert!(!missing.exists());
}

#[tokio::test]
async fn tampered_archive_is_refused_and_leaves_nothing() {
    let reg = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let pushed = push_image(&reg.addr(), "e2e/tamper", "1", &ImageSpec::busybox(), None)
        .await
        .expect("push");
    let (berthd, mut cri, _hosts) = berthd_for(&reg, None).await;
    let name = pushed.image_ref(&reg.addr());
    cri.pull(&name, None).await.expect("pull");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("a.tar");
    let out = ctl(
        &berthd,
        &["save", &name, "-o", &archive.display().to_string(), "--format", "oci"],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    cri.remove(&name).await.expect("rmi");
    let before = blobs(&berthd);

    // Flip one byte inside the layer blob's data (its tar header is 512 bytes).
    let mut bytes = std::fs::read(&archive).expect("read");
    let header = format!(
        "blobs/sha256/{}\0",
        pushed.layer_digests[0].trim_start_matches("sha256:")
    );
    let at = bytes
        .windows(header.len())
        .position(|w| w == header.as_bytes())
        .expect("layer member");
    bytes[at + 512 + 100] ^= 0x55;
    let tampered = dir.path().join("tampered.tar");
    std::fs::write(&tampered, &bytes).expect("write");
    let out = ctl(&berthd, &["load", "-i", &tampered.display().to_string()], None);
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("content verification failed") && out.stderr.contains("digest mismatch"),
        "{}",
        out.stderr
    );
    assert_eq!(blobs(&berthd), before, "no new blobs");
    assert_eq!(
        files_in(&berthd.root().join("content/ingest")),
        0,
        "no spool or ingest leftovers"
    );
    assert!(cri.status(&name).await.expect("status").is_none());

    // An archive whose paths climb out, and one that is not an archive at all.
    let mut evil = tar::Header::new_gnu();
    evil.set_size(2);
    evil.set_entry_type(tar::EntryType::Regular);
    evil.as_gnu_mut().expect("gnu").name[..16].copy_from_slice(b"../manifest.json");
    evil.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&evil, &b"[]"[..]).expect("append");
    let evil_path = dir.path().join("evil.tar");
    std::fs::write(&evil_path, b.into_inner().expect("tar")).expect("write");
    let out = ctl(&berthd, &["load", "-i", &evil_path.display().to_string()], None);
    assert!(
        !out.ok && out.stderr.contains("invalid request") && out.stderr.contains("climbs out"),
        "{}",
        out.stderr
    );
    let out = ctl(&berthd, &["load"], Some("this is not a tar archive, not at all, no"));
    assert!(!out.ok && out.stderr.contains("invalid request"), "{}", out.stderr);
    assert_eq!(blobs(&berthd), before);
    assert_eq!(files_in(&berthd.root().join("content/ingest")), 0);
    assert_eq!(
        files_in(&berthd.root().join("snapshots/.ingest")),
        0,
        "no half-unpacked snapshot"
    );

    // The untampered archive still loads.
    let out = ctl(&berthd, &["load", "-i", &archive.display().to_string()], None);
    assert!(out.ok, "{}", out.stderr);
    let loaded = cri.status(&name).await.expect("status").expect("loaded");
    assert_eq!(loaded.id, pushed.config_digest);
}
