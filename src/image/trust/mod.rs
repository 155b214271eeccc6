//! Image trust: a signature policy (containers-policy.json(5) format) decides, per image
//! name, whether a pull is accepted as is, rejected, or accepted only with a valid cosign
//! signature by a trusted key. The decision is made on the top-level manifest digest,
//! before any layer is downloaded; fetching signatures is the image service's part.

pub mod cosign;
pub mod identity;
pub mod keys;
pub mod policy;

use serde::{Deserialize, Serialize};

use crate::image::reference::{Digest, Reference};
pub use policy::{Policy, Requirement};

/// What the policy decided for a pulled image, kept in its record and shown by
/// `ImageStatus` (verbose) and `berthctl inspecti`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The policy file.
    pub policy: String,
    /// The scope that decided (`default` when none matched).
    pub scope: String,
    /// The requirements met, by type.
    pub requirements: Vec<String>,
    /// The signatures that satisfied `sigstoreSigned` requirements.
    pub signatures: Vec<Verified>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// Fingerprint of the key (`sha256:` of its SubjectPublicKeyInfo).
    pub key: String,
    /// The identity the image was signed as.
    pub identity: String,
}

/// A signature as fetched: the payload blob and the signature over it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Checks `requirements` (of `scope` in `policy`) for `image`, whose top-level manifest
/// is `digest`. `signatures` are those found for it (only read when a requirement asks).
/// The error says which rule refused the image and why.
pub fn check(
    policy: &Policy,
    scope: &str,
    requirements: &[Requirement],
    image: &Reference,
    digest: &Digest,
    signatures: &[Fetched],
) -> Result<Verdict, String> {
    let refused = |rule: &str, why: String| {
        format!(
            "{image} refused by signature policy {} (scope {scope:?}, {rule}): {why}",
            policy.path.display()
        )
    };
    let mut verdict = Verdict {
        policy: policy.path.display().to_string(),
        scope: scope.to_string(),
        requirements: Vec::new(),
        signatures: Vec::new(),
    };
    for requirement in requirements {
        match requirement {
            Requirement::Accept => {}
            Requirement::Reject => return Err(refused("reject", "images in this scope are rejected".into())),
            Requirement::Sigstore { keys, identity } => {
                let mut reasons = Vec::new();
                let mut good = None;
                for (i, sig) in signatures.iter().enumerate() {
                    let Some(key) = keys.iter().find(|k| k.verifies(&sig.payload, &sig.signature)) else {
                        reasons.push(format!("signature {}: not made by a trusted key", i + 1));
                        continue;
                    };
                    let payload = match cosign::parse_payload(&sig.payload) {
                        Ok(p) => p,
                        Err(e) => {
                            reasons.push(format!("signature {}: {e}", i + 1));
                            continue;
                        }
                    };
                    if payload.manifest_digest != digest.as_str() {
                        reasons.push(format!(
                            "signature {}: signs {}, not this image's manifest {digest}",
                            i + 1,
                            payload.manifest_digest
                        ));
                    } else if !identity.accepts(image, &payload.docker_reference) {
                        reasons.push(format!(
                            "signature {}: signed as {:?}, which the policy's signedIdentity does not accept",
                            i + 1,
                            payload.docker_reference
                        ));
                    } else {
                        good = Some(Verified {
                            key: key.fingerprint().to_string(),
                            identity: payload.docker_reference,
                        });
                        break;
                    }
                }
                let Some(good) = good else {
                    let why = if signatures.is_empty() {
                        format!("the image is not signed (no {} tag)", cosign::signature_tag(digest))
                    } else {
                        reasons.join("; ")
                    };
                    return Err(refused("sigstoreSigned", why));
                };
                verdict.signatures.push(good);
            }
        }
        verdict.requirements.push(requirement.name().to_string());
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::keys::test_keys;
    use super::*;

    fn policy_with_key(pem: &str, identity: &str) -> Policy {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        let text = format!(
            r#"{{"default": [{{"type": "insecureAcceptAnything"}}],
                "transports": {{"docker": {{
                    "reg.local/signed": [{{"type": "sigstoreSigned", "keyData": "{data}",
                                           "signedIdentity": {{"type": "{identity}"}}}}],
                    "reg.local/banned": [{{"type": "reject"}}]}}}}}}"#
        );
        Policy::parse(Path::new("/etc/berth/policy.json"), &text).expect("policy")
    }

    fn run(policy: &Policy, image: &str, digest: &Digest, sigs: &[Fetched]) -> Result<Verdict, String> {
        let image = Reference::parse(image).expect("ref");
        let (scope, reqs) = policy.requirements_for(&image);
        check(policy, &scope, reqs, &image, digest, sigs)
    }

    #[test]
    fn signed_unsigned_forged_and_misdirected_signatures() {
        let (pem, sign) = test_keys::p256();
        let (_, other_sign) = test_keys::p256();
        let policy = policy_with_key(&pem, "matchRepository");
        let digest = Digest::of(b"manifest");
        let other = Digest::of(b"another manifest");
        let good_payload = cosign::payload("reg.local/signed/app", digest.as_str());
        let good = Fetched {
            signature: sign(&good_payload),
            payload: good_payload.clone(),
        };

        let v = run(&policy, "reg.local/signed/app:1", &digest, std::slice::from_ref(&good)).expect("signed");
        assert_eq!(v.scope, "reg.local/signed");
        assert_eq!(v.requirements, vec!["sigstoreSigned"]);
        assert_eq!(v.signatures[0].identity, "reg.local/signed/app");
        assert!(v.signatures[0].key.starts_with("sha256:"));

        let err = run(&policy, "reg.local/signed/app:1", &digest, &[]).expect_err("unsigned");
        assert!(err.contains("not signed") && err.contains("sigstoreSigned") && err.contains("reg.local/signed"));

        let forged = Fetched {
            signature: other_sign(&good_payload),
            payload: good_payload.clone(),
        };
        let err = run(
            &policy,
            "reg.local/signed/app:1",
            &digest,
            std::slice::from_ref(&forged),
        )
        .expect_err("forged");
        assert!(err.contains("not made by a trusted key"), "{err}");
        // A good signature among bad ones is enough.
        run(&policy, "reg.local/signed/app:1", &digest, &[forged, good.clone()]).expect("one good");

        let err = run(&policy, "reg.local/signed/app:1", &other, std::slice::from_ref(&good)).expect_err("moved");
        assert!(err.contains("not this image's manifest"), "{err}");

        let elsewhere = cosign::payload("reg.local/signed/other", digest.as_str());
        let err = run(
            &policy,
            "reg.local/signed/app:1",
            &digest,
            &[Fetched {
                signature: sign(&elsewhere),
                payload: elsewhere,
            }],
        )
        .expect_err("other identity");
        assert!(err.contains("signedIdentity"), "{err}");

        let tampered = Fetched {
            payload: cosign::payload("reg.local/signed/app", other.as_str()),
            signature: good.signature.clone(),
        };
        assert!(run(&policy, "reg.local/signed/app:1", &other, &[tampered]).is_err());

        let err = run(&policy, "reg.local/banned/x", &digest, &[]).expect_err("banned");
        assert!(err.contains("(scope \"reg.local/banned\", reject)"), "{err}");
        let v = run(&policy, "reg.local/open/x", &digest, &[]).expect("default accepts");
        assert_eq!((v.scope.as_str(), v.requirements.len()), ("default", 1));
    }

    #[test]
    fn the_default_identity_wants_the_tag_when_pulled_by_tag() {
        let (pem, sign) = test_keys::ed25519();
        let policy = policy_with_key(&pem, "matchRepoDigestOrExact");
        let digest = Digest::of(b"m");
        let signed = |identity: &str| {
            let payload = cosign::payload(identity, digest.as_str());
            Fetched {
                signature: sign(&payload),
                payload,
            }
        };
        run(
            &policy,
            "reg.local/signed/app:1",
            &digest,
            &[signed("reg.local/signed/app:1")],
        )
        .expect("exact");
        assert!(run(
            &policy,
            "reg.local/signed/app:1",
            &digest,
            &[signed("reg.local/signed/app")]
        )
        .is_err());
        let by_digest = format!("reg.local/signed/app@{digest}");
        run(&policy, &by_digest, &digest, &[signed("reg.local/signed/app")]).expect("by digest");
    }
}
