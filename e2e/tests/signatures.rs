//! Signature policy end to end: a real `docker-registry`, images built by the test, key
//! pairs and signatures made with `openssl` (an implementation independent of Berth's),
//! signatures pushed the way cosign stores them (`sha256-<hex>.sig`), and a real berthd
//! whose `signature_policy` decides every pull.

use std::path::Path;
use std::process::Command;

use berth_e2e::canary::store_listing;
use berth_e2e::cri::{spec, Cri};
use berth_e2e::image::{push_image, put_blob, put_manifest, Compression, Entry, ImageSpec, Layer, Pushed};
use berth_e2e::registry::{RegistryOpts, TestRegistry};
use berth_e2e::Berthd;
use serde_json::{json, Value};
use tonic::Code;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// A key pair made by openssl: `<name>.key` (private) and `<name>.pub` (SubjectPublicKeyInfo).
fn keypair(dir: &Path, name: &str, algorithm: &[&str]) {
    let key = dir.join(format!("{name}.key"));
    let mut gen = Command::new("openssl");
    gen.arg("genpkey").args(algorithm).arg("-out").arg(&key);
    run(&mut gen);
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(dir.join(format!("{name}.pub"))));
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("openssl runs (the suite installs it)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Signs `payload` with `<dir>/<name>.key` (SHA-256; ECDSA gives DER, RSA PKCS#1 v1.5).
fn sign(dir: &Path, name: &str, payload: &[u8]) -> Vec<u8> {
    let file = dir.join(format!(
        "payload-{}",
        berth_e2e::sha256_digest(payload).replace(':', "-")
    ));
    std::fs::write(&file, payload).expect("write payload");
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join(format!("{name}.key")))
        .arg(&file))
}

fn payload(identity: &str, digest: &str) -> Vec<u8> {
    json!({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": {"creator": "berth e2e"},
    })
    .to_string()
    .into_bytes()
}

/// Pushes signatures of `digest` into `repo` the way cosign stores them.
async fn push_signatures(reg: &str, repo: &str, digest: &str, signed: &[(Vec<u8>, Vec<u8>)]) {
    use base64::Engine as _;
    let config = put_blob(reg, repo, b"{}", None).await.expect("config blob");
    let mut layers = Vec::new();
    for (payload, signature) in signed {
        let d = put_blob(reg, repo, payload, None).await.expect("payload blob");
        layers.push(json!({
            "mediaType": SIMPLE_SIGNING,
            "digest": d,
            "size": payload.len(),
            "annotations": {
                "dev.cosignproject.cosign/signature": base64::engine::general_purpose::STANDARD.encode(signature),
            },
        }));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": layers,
    });
    let tag = digest.replacen(':', "-", 1) + ".sig";
    put_manifest(reg, repo, &tag, OCI_MANIFEST, manifest.to_string().as_bytes(), None)
        .await
        .expect("push signature manifest");
}

async fn push_small(reg: &str, repo: &str, tag: &str, content: &str) -> Pushed {
    let spec = ImageSpec {
        layers: vec![Layer::new(Compression::Gzip, vec![Entry::file("content.txt", content)])],
        ..ImageSpec::default()
    };
    push_image(reg, repo, tag, &spec, None).await.expect("push image")
}

fn policy(dir: &Path, reg: &str, signed_scope: &str) -> String {
    json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {
            signed_scope: [{"type": "sigstoreSigned", "keyPath": dir.join("ec.pub"),
                            "signedIdentity": {"type": "matchRepository"}}],
            format!("{reg}/rsa"): [{"type": "sigstoreSigned", "keyPath": "rsa.pub"}],
            format!("{reg}/open"): [{"type": "insecureAcceptAnything"}],
        }},
    })
    .to_string()
}

async fn verbose_status(cri: &mut Cri, image: &str) -> Value {
    let resp = cri
        .images
        .image_status(berth_e2e::cri::v1::ImageStatusRequest {
            image: Some(spec(image)),
            verbose: true,
        })
        .await
        .expect("ImageStatus")
        .into_inner();
    serde_json::from_str(resp.info.get("info").expect("verbose info")).expect("info is JSON")
}

async fn refused(cri: &mut Cri, berthd: &Berthd, image: &str, why: &str) {
    let before = store_listing(berthd.root());
    let was = cri.status(image).await.expect("status").map(|i| i.id);
    let err = cri.pull(image, None).await.expect_err("the policy refuses it");
    assert_eq!(err.code(), Code::PermissionDenied, "{image}: {err:?}");
    assert!(err.message().contains(why), "{image}: {}", err.message());
    assert!(
        err.message().contains("refused by signature policy"),
        "{}",
        err.message()
    );
    assert_eq!(
        store_listing(berthd.root()),
        before,
        "{image}: a refused pull leaves nothing"
    );
    let now = cri.status(image).await.expect("status").map(|i| i.id);
    assert_eq!(
        now, was,
        "{image}: the refused image is not recorded; what the name meant before stays"
    );
}

#[tokio::test]
async fn pulls_obey_the_signature_policy() {
    let mut registry = TestRegistry::start(RegistryOpts::default()).await.expect("registry");
    let reg = registry.addr();
    let keys = tempfile::tempdir().expect("tempdir");
    keypair(
        keys.path(),
        "ec",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    keypair(
        keys.path(),
        "other",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    keypair(
        keys.path(),
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let policy_file = keys.path().join("policy.json");
    std::fs::write(&policy_file, policy(keys.path(), &reg, &format!("{reg}/signed"))).expect("policy");
    let toml = format!("signature_policy = {:?}\n", policy_file.display().to_string());
    let (berthd, mut cri, _hosts) = berth_e2e::ctl::berthd_reaching(&reg, Some(toml)).await.expect("berthd");

    // Signed with the trusted key: pulled, and the verdict is on record.
    let app = push_small(&reg, "signed/app", "1", "app").await;
    let sig = payload(&format!("{reg}/signed/app"), &app.manifest_digest);
    push_signatures(
        &reg,
        "signed/app",
        &app.manifest_digest,
        &[(sig.clone(), sign(keys.path(), "ec", &sig))],
    )
    .await;
    let app_ref = app.image_ref(&reg);
    cri.pull(&app_ref, None).await.expect("a signed image is pulled");
    let info = verbose_status(&mut cri, &app_ref).await;
    let verdict = &info["signaturePolicy"];
    assert_eq!(verdict["scope"], json!(format!("{reg}/signed")), "{info}");
    assert_eq!(verdict["requirements"], json!(["sigstoreSigned"]));
    assert_eq!(verdict["signatures"][0]["identity"], json!(format!("{reg}/signed/app")));
    assert!(verdict["signatures"][0]["key"]
        .as_str()
        .is_some_and(|k| k.starts_with("sha256:")));
    let shown = berth_e2e::ctl::berthctl(&berthd.endpoint(), &["inspecti", &app_ref], None).expect("berthctl");
    assert!(shown.ok, "berthctl inspecti: {}", shown.stderr);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("inspecti prints JSON");
    assert_eq!(
        shown["info"]["signaturePolicy"], *verdict,
        "berthctl inspecti shows the verdict"
    );

    // Not signed at all.
    let bare = push_small(&reg, "signed/bare", "1", "bare").await;
    refused(&mut cri, &berthd, &bare.image_ref(&reg), "not signed").await;

    // Signed, but by a key the policy does not trust (and the trusted key's signature of
    // another image alongside it).
    let forged = push_small(&reg, "signed/forged", "1", "forged").await;
    let p = payload(&format!("{reg}/signed/forged"), &forged.manifest_digest);
    let elsewhere = payload(&format!("{reg}/signed/forged"), &app.manifest_digest);
    let signatures = [
        (p.clone(), sign(keys.path(), "other", &p)),
        (elsewhere.clone(), sign(keys.path(), "ec", &elsewhere)),
    ];
    push_signatures(&reg, "signed/forged", &forged.manifest_digest, &signatures).await;
    refused(&mut cri, &berthd, &forged.image_ref(&reg), "not made by a trusted key").await;
    refused(&mut cri, &berthd, &forged.image_ref(&reg), "not this image's manifest").await;

    // The tag moved to another image after signing: the signature names the old digest.
    let moved = push_small(&reg, "signed/app", "1", "replaced").await;
    push_signatures(
        &reg,
        "signed/app",
        &moved.manifest_digest,
        &[(sig.clone(), sign(keys.path(), "ec", &sig))],
    )
    .await;
    refused(&mut cri, &berthd, &app_ref, "not this image's manifest").await;

    // Outside every scope: the default rejects. An open scope takes anything.
    let stray = push_small(&reg, "stray/app", "1", "stray").await;
    refused(&mut cri, &berthd, &stray.image_ref(&reg), "(scope \"default\", reject)").await;
    let open = push_small(&reg, "open/app", "1", "open").await;
    cri.pull(&open.image_ref(&reg), None)
        .await
        .expect("an open scope accepts");
    let info = verbose_status(&mut cri, &open.image_ref(&reg)).await;
    assert_eq!(
        info["signaturePolicy"]["requirements"],
        json!(["insecureAcceptAnything"])
    );

    // RSA keys (PKCS#1 v1.5), and the default signedIdentity: pulled by tag, the signature
    // must name that tag.
    let rsa = push_small(&reg, "rsa/app", "v2", "rsa").await;
    let by_tag = payload(&rsa.image_ref(&reg), &rsa.manifest_digest);
    let by_repo = payload(&format!("{reg}/rsa/app"), &rsa.manifest_digest);
    push_signatures(
        &reg,
        "rsa/app",
        &rsa.manifest_digest,
        &[(by_repo.clone(), sign(keys.path(), "rsa", &by_repo))],
    )
    .await;
    refused(
        &mut cri,
        &berthd,
        &rsa.image_ref(&reg),
        "signedIdentity does not accept",
    )
    .await;
    cri.pull(&rsa.digest_ref(&reg), None)
        .await
        .expect("by digest, the repository is enough");
    push_signatures(
        &reg,
        "rsa/app",
        &rsa.manifest_digest,
        &[(by_tag.clone(), sign(keys.path(), "rsa", &by_tag))],
    )
    .await;
    cri.pull(&rsa.image_ref(&reg), None).await.expect("signed as the tag");

    // The policy is read at every pull: an edit takes effect without a restart.
    std::fs::write(&policy_file, policy(keys.path(), &reg, &format!("{reg}/elsewhere"))).expect("edit policy");
    refused(
        &mut cri,
        &berthd,
        &format!("{reg}/signed/app@{}", app.manifest_digest),
        "reject",
    )
    .await;
    std::fs::write(&policy_file, "{\"default\": [{\"type\": \"insecureAcceptAnything\"}]}").expect("edit policy");
    cri.pull(&bare.image_ref(&reg), None)
        .await
        .expect("accepted once the policy allows it");

    // A policy broken by an edit fails pulls closed, with the reason.
    std::fs::write(&policy_file, "{\"default\": []}").expect("break policy");
    let err = cri.pull(&open.image_ref(&reg), None).await.expect_err("broken policy");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("empty requirement list"), "{}", err.message());
    drop(berthd);
    registry.stop();
}

#[tokio::test]
async fn berthd_refuses_to_start_with_a_policy_it_cannot_apply() {
    berth_e2e::require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}]}"#,
    )
    .expect("policy");
    let toml = format!("signature_policy = {:?}\n", policy.display().to_string());
    let err = berth_e2e::Berthd::start(berth_e2e::BerthdOpts {
        config_toml: Some(toml),
        ..Default::default()
    })
    .await
    .expect_err("berthd must not start");
    assert!(format!("{err:#}").contains("signedBy"), "{err:#}");
}
