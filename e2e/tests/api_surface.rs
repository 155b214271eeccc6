//! The CRI surface beyond single fields: a gRPC message over the server's 16 MiB limit, the
//! socket's owner and mode, and registry credentials kept out of berthd's debug log and
//! berthctl's output. (The streaming server's loopback address and single-use URLs are
//! covered by `streaming.rs`.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use berth_e2e::abuse::{pb, Abuse};
use berth_e2e::cri::basic_auth;
use berth_e2e::ctl::{berthctl, berthd_reaching};
use berth_e2e::image::{push_image, ImageSpec};
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::{require_root, Berthd, BerthdOpts};
use tonic::Code;

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_socket_is_root_only() {
    require_root();
    let berthd = Berthd::start(BerthdOpts::default()).await.expect("berthd");
    let meta = std::fs::metadata(berthd.socket()).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660, "socket mode");
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "socket owner");

    let mut a = Abuse::connect(&berthd).await;
    // 17 MiB in one field: one gRPC frame over the server's 16 MiB limit.
    let huge = "a".repeat(17 << 20);
    let r =
        a.im.pull_image(pb::PullImageRequest {
            image: Some(pb::ImageSpec {
                image: huge.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    a.check("PullImage(17 MiB)", r, &[Code::ResourceExhausted]).await;
    let r =
        a.rt.exec_sync(pb::ExecSyncRequest {
            container_id: "x".into(),
            cmd: vec![huge],
            timeout: 1,
        })
        .await;
    a.check("ExecSync(17 MiB)", r, &[Code::ResourceExhausted]).await;
    a.assert_all_expected();
    assert!(!berthd.log().contains("panicked"));
}

#[tokio::test]
async fn registry_credentials_never_reach_the_log_or_berthctl_output() {
    const PASS: &str = "Pa55-w0rd-that-must-not-leak";
    let reg = TestRegistry::start(RegistryOpts {
        htpasswd: Some(("alice".into(), PASS.into())),
    })
    .await
    .expect("registry");
    push_image(
        &reg.addr(),
        "private/app",
        "1",
        &ImageSpec::busybox(),
        Some(("alice", PASS)),
    )
    .await
    .expect("push");
    let creds = tempfile::tempdir().expect("tempdir");
    let config = creds.path().join("config.json");
    let toml = format!("registry_auth_file = \"{}\"\n", config.display());
    let (berthd, mut cri, _hosts) = berthd_reaching(&reg.addr(), Some(toml)).await.expect("berthd");
    let name = format!("{}/private/app:1", reg.addr());
    let addr = reg.addr();
    let cfg = config.display().to_string();
    let login = |pass: &str| {
        berthctl(
            &berthd.endpoint(),
            &["login", &addr, "-u", "alice", "--password-stdin", "--config", &cfg],
            Some(&format!("{pass}\n")),
        )
        .expect("berthctl")
    };
    let mut outputs = Vec::new();
    let wrong = login(&format!("{PASS}-wrong"));
    assert!(!wrong.ok, "{}", wrong.stderr);
    outputs.push(wrong);
    let ok = login(PASS);
    assert!(ok.ok, "{}{}", ok.stdout, ok.stderr);
    outputs.push(ok);
    let pull = berthctl(&berthd.endpoint(), &["pull", &name, "--config", &cfg], None).expect("berthctl");
    assert!(pull.ok, "{}{}", pull.stdout, pull.stderr);
    outputs.push(pull);
    // CRI pulls: with the stored credentials, with explicit ones, with wrong ones.
    cri.pull(&name, None).await.expect("pull with the auth file");
    cri.remove(&name).await.expect("remove");
    cri.pull(&name, Some(basic_auth("alice", PASS)))
        .await
        .expect("pull with auth");
    cri.remove(&name).await.expect("remove");
    let err = cri
        .pull(&name, Some(basic_auth("alice", &format!("{PASS}-nope"))))
        .await
        .expect_err("wrong password");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(!err.message().contains(PASS), "{err:?}");

    let basic = base64_of(&format!("alice:{PASS}"));
    let log = berthd.log();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    for secret in [PASS, basic.as_str()] {
        assert!(!log.contains(secret), "berthd's log holds {secret:?}");
        for o in &outputs {
            assert!(
                !o.stdout.contains(secret) && !o.stderr.contains(secret),
                "berthctl printed {secret:?}: {}{}",
                o.stdout,
                o.stderr
            );
        }
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn garbled_protobuf_is_invalid_argument() {
    use berth_e2e::abuse::{channel, raw_unary};
    require_root();
    let berthd = Berthd::start(BerthdOpts::default()).await.expect("berthd");
    let mut a = Abuse::connect(&berthd).await;
    let ch = channel(berthd.socket()).await.expect("connect");
    let bodies: [(&str, Vec<u8>); 4] = [
        ("invalid UTF-8 in a string", vec![0x0a, 0x02, 0xff, 0xfe]),
        ("truncated varint", vec![0x10, 0xff]),
        ("length past the end", vec![0x0a, 0x7f, b'a']),
        ("junk", vec![0xff; 16]),
    ];
    for method in [
        "/runtime.v1.RuntimeService/Version",
        "/runtime.v1.RuntimeService/PodSandboxStatus",
        "/runtime.v1.RuntimeService/ExecSync",
        "/runtime.v1.ImageService/PullImage",
        "/runtime.v1.ImageService/ImageStatus",
    ] {
        for (what, body) in &bodies {
            let r = raw_unary(ch.clone(), method, body.clone()).await;
            a.check(&format!("{method}({what})"), r, &[Code::InvalidArgument]).await;
        }
    }
    a.assert_all_expected();
    assert!(!berthd.log().contains("panicked"));
}
