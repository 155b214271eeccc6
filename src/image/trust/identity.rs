//! `signedIdentity`: which image names a signature's `docker-reference` may stand for,
//! compared with the name the image was pulled by (both normalised as Docker does).

use serde_json::Value;

use crate::image::reference::Reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIdentity {
    /// Pulled by digest: the repositories match; pulled by tag: the names match exactly.
    MatchRepoDigestOrExact,
    /// The names, tag or digest included, match exactly.
    MatchExact,
    /// The repositories match; tags and digests are not compared.
    MatchRepository,
    /// The signature names exactly this reference (tagged or digested).
    ExactReference(String),
    /// The signature names this repository.
    ExactRepository(String),
    /// Images under `prefix` were signed as if under `signed_prefix`; then as
    /// `MatchRepoDigestOrExact`.
    Remap { prefix: String, signed_prefix: String },
}

/// A name as a signature gives it: normalised, its tag and digest kept only if written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Named {
    fn parse(text: &str) -> Option<Named> {
        let (rest, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        let parsed = Reference::parse(name).ok()?;
        Some(Named {
            name: parsed.name(),
            tag,
            digest,
        })
    }

    fn of(image: &Reference) -> Named {
        Named {
            name: image.name(),
            tag: image.tag.clone(),
            digest: image.digest.as_ref().map(|d| d.to_string()),
        }
    }

    fn is_specific(&self) -> bool {
        self.tag.is_some() || self.digest.is_some()
    }
}

impl SignedIdentity {
    pub fn parse(value: &Value) -> Result<SignedIdentity, String> {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or("signedIdentity without a \"type\"")?;
        let field = |key: &str| -> Result<String, String> {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(format!("signedIdentity {kind:?} needs {key:?}"))
        };
        let identity = match kind {
            "matchRepoDigestOrExact" => SignedIdentity::MatchRepoDigestOrExact,
            "matchExact" => SignedIdentity::MatchExact,
            "matchRepository" => SignedIdentity::MatchRepository,
            "exactReference" => {
                let r = field("dockerReference")?;
                match Named::parse(&r) {
                    Some(n) if n.is_specific() => SignedIdentity::ExactReference(r),
                    _ => return Err(format!("exactReference {r:?} is not a tagged or digested image name")),
                }
            }
            "exactRepository" => {
                let r = field("dockerRepository")?;
                match Named::parse(&r) {
                    Some(n) if !n.is_specific() => SignedIdentity::ExactRepository(n.name),
                    _ => return Err(format!("exactRepository {r:?} is not a repository name")),
                }
            }
            "remapIdentity" => SignedIdentity::Remap {
                prefix: field("prefix")?,
                signed_prefix: field("signedPrefix")?,
            },
            other => return Err(format!("unknown signedIdentity type {other:?}")),
        };
        Ok(identity)
    }

    /// Whether a signature naming `signed` (its `docker-reference`) stands for `image`.
    pub fn accepts(&self, image: &Reference, signed: &str) -> bool {
        let Some(signed) = Named::parse(signed) else {
            return false;
        };
        let pulled = Named::of(image);
        match self {
            SignedIdentity::MatchRepoDigestOrExact => repo_digest_or_exact(&pulled, &signed),
            SignedIdentity::MatchExact => pulled.is_specific() && pulled == signed,
            SignedIdentity::MatchRepository => pulled.name == signed.name,
            SignedIdentity::ExactReference(r) => Named::parse(r).is_some_and(|want| want == signed),
            SignedIdentity::ExactRepository(name) => *name == signed.name,
            SignedIdentity::Remap { prefix, signed_prefix } => {
                let mut remapped = pulled.clone();
                if let Some(rest) = pulled.name.strip_prefix(prefix.as_str()) {
                    if rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/') {
                        remapped.name = format!("{signed_prefix}{rest}");
                    }
                }
                repo_digest_or_exact(&remapped, &signed)
            }
        }
    }
}

fn repo_digest_or_exact(pulled: &Named, signed: &Named) -> bool {
    if pulled.digest.is_some() {
        pulled.name == signed.name
    } else {
        pulled.tag.is_some() && pulled == signed
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn image(s: &str) -> Reference {
        Reference::parse(s).expect("reference")
    }

    #[test]
    fn each_identity_rule() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let tagged = image("reg.example.com/team/app:1.0");
        let digested = image(&format!("reg.example.com/team/app@{digest}"));
        let exact = SignedIdentity::MatchRepoDigestOrExact;
        assert!(exact.accepts(&tagged, "reg.example.com/team/app:1.0"));
        assert!(!exact.accepts(&tagged, "reg.example.com/team/app"));
        assert!(!exact.accepts(&tagged, "reg.example.com/team/app:2.0"));
        assert!(exact.accepts(&digested, "reg.example.com/team/app"));
        assert!(exact.accepts(&digested, "reg.example.com/team/app:anything"));
        assert!(!exact.accepts(&digested, "reg.example.com/team/other"));

        let repo = SignedIdentity::MatchRepository;
        assert!(repo.accepts(&tagged, "reg.example.com/team/app"));
        assert!(repo.accepts(&tagged, "reg.example.com/team/app:2.0"));
        assert!(!repo.accepts(&tagged, "reg.example.com/team/app2"));
        assert!(!repo.accepts(&tagged, "not a name"));
        assert!(repo.accepts(&image("busybox"), "docker.io/library/busybox"));
        assert!(repo.accepts(&image("docker.io/library/busybox"), "busybox"));

        assert!(SignedIdentity::MatchExact.accepts(&tagged, "reg.example.com/team/app:1.0"));
        assert!(!SignedIdentity::MatchExact.accepts(&digested, "reg.example.com/team/app"));

        let by_ref = SignedIdentity::parse(&json!({"type": "exactReference", "dockerReference": "busybox:1"}))
            .expect("exactReference");
        assert!(by_ref.accepts(&tagged, "docker.io/library/busybox:1"));
        assert!(!by_ref.accepts(&tagged, "docker.io/library/busybox:2"));
        let by_repo =
            SignedIdentity::parse(&json!({"type": "exactRepository", "dockerRepository": "reg.example.com/signed"}))
                .expect("exactRepository");
        assert!(by_repo.accepts(&tagged, "reg.example.com/signed:9"));
        assert!(!by_repo.accepts(&tagged, "reg.example.com/team/app:1.0"));

        let remap = SignedIdentity::parse(
            &json!({"type": "remapIdentity", "prefix": "mirror.local/team", "signedPrefix": "reg.example.com/team"}),
        )
        .expect("remapIdentity");
        assert!(remap.accepts(&image("mirror.local/team/app:1.0"), "reg.example.com/team/app:1.0"));
        assert!(!remap.accepts(&image("mirror.local/teamx/app:1.0"), "reg.example.com/team/app:1.0"));
        assert!(!remap.accepts(&image("mirror.local/team/app:1.0"), "mirror.local/team/app:2.0"));
    }

    #[test]
    fn bad_identities_are_refused() {
        for (v, want) in [
            (json!({}), "without a \"type\""),
            (
                json!({"type": "exactReference", "dockerReference": "busybox"}),
                "not a tagged",
            ),
            (
                json!({"type": "exactRepository", "dockerRepository": "busybox:1"}),
                "not a repository",
            ),
            (
                json!({"type": "remapIdentity", "prefix": "a"}),
                "needs \"signedPrefix\"",
            ),
            (json!({"type": "matchSomething"}), "unknown signedIdentity"),
        ] {
            let err = SignedIdentity::parse(&v).expect_err("refused");
            assert!(err.contains(want), "{v}: {err}");
        }
    }
}
