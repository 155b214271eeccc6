//! Signature policy in the containers-policy.json(5) format: a `default` list of
//! requirements and, under `transports.docker`, lists for scopes — an image name with its
//! tag or digest, a repository, a namespace, a registry host, or a `*.domain` wildcard —
//! the most specific scope that matches an image deciding. Every requirement of that list
//! must hold. Berth pulls over the docker transport only; other transports' entries are
//! read and otherwise left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::identity::SignedIdentity;
use super::keys::PublicKey;
use crate::image::reference::Reference;

/// One requirement an image must meet.
#[derive(Debug, Clone)]
pub enum Requirement {
    /// `insecureAcceptAnything`.
    Accept,
    /// `reject`.
    Reject,
    /// `sigstoreSigned` with public keys: some signature made by one of `keys` must name
    /// the image's manifest digest and an identity `identity` accepts.
    Sigstore {
        keys: Vec<PublicKey>,
        identity: SignedIdentity,
    },
}

impl Requirement {
    pub fn name(&self) -> &'static str {
        match self {
            Requirement::Accept => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::Sigstore { .. } => "sigstoreSigned",
        }
    }
}

/// A loaded policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    default: Vec<Requirement>,
    docker: BTreeMap<String, Vec<Requirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Option<Vec<Value>>,
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSigstore {
    #[serde(rename = "type")]
    _type: String,
    key_path: Option<PathBuf>,
    key_paths: Option<Vec<PathBuf>>,
    key_data: Option<String>,
    key_datas: Option<Vec<String>>,
    fulcio: Option<Value>,
    rekor_public_key_path: Option<Value>,
    rekor_public_key_paths: Option<Value>,
    rekor_public_key_data: Option<Value>,
    rekor_public_key_datas: Option<Value>,
    signed_identity: Option<Value>,
}

impl Policy {
    /// Reads and checks the policy at `path`: every key it names is read and parsed, so a
    /// policy that loads is one that can be applied.
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Policy::parse(path, &text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(path: &Path, text: &str) -> Result<Policy, String> {
        let raw: RawPolicy = serde_json::from_str(text).map_err(|e| format!("not a valid policy: {e}"))?;
        let base = path.parent().unwrap_or(Path::new("/"));
        let default = raw.default.ok_or("the policy has no \"default\" requirements")?;
        let default = requirements(&default, base).map_err(|e| format!("default: {e}"))?;
        let mut docker = BTreeMap::new();
        if let Some(scopes) = raw.transports.get("docker") {
            for (scope, list) in scopes {
                check_scope(scope).map_err(|e| format!("transports.docker {scope:?}: {e}"))?;
                let list = requirements(list, base).map_err(|e| format!("transports.docker {scope:?}: {e}"))?;
                docker.insert(scope.clone(), list);
            }
        }
        Ok(Policy {
            path: path.to_path_buf(),
            default,
            docker,
        })
    }

    /// The scope that decides for `image` (`"default"` when none matches) and its
    /// requirements.
    pub fn requirements_for(&self, image: &Reference) -> (String, &[Requirement]) {
        for scope in scopes_of(image) {
            if let Some(list) = self.docker.get(&scope) {
                let shown = if scope.is_empty() {
                    "transports.docker \"\"".into()
                } else {
                    scope
                };
                return (shown, list);
            }
        }
        ("default".into(), &self.default)
    }
}

/// The scopes that may name `image`, most specific first: `name@digest`, `name:tag`,
/// `name`, each parent namespace up to the registry host, the host's `*.` wildcards,
/// then the transport's own default `""`.
fn scopes_of(image: &Reference) -> Vec<String> {
    let name = image.name();
    let mut out = Vec::new();
    if let Some(d) = &image.digest {
        out.push(format!("{name}@{d}"));
    }
    if let Some(t) = &image.tag {
        out.push(format!("{name}:{t}"));
    }
    let mut n = name.as_str();
    out.push(n.to_string());
    while let Some(i) = n.rfind('/') {
        n = &n[..i];
        out.push(n.to_string());
    }
    let mut host = image.registry.as_str();
    while let Some(i) = host.find('.') {
        host = &host[i + 1..];
        out.push(format!("*.{host}"));
    }
    out.push(String::new());
    out
}

fn check_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    if let Some(domain) = scope.strip_prefix("*.") {
        if domain.is_empty() || domain.contains(['/', '*']) {
            return Err("a wildcard scope is `*.` followed by a domain".into());
        }
        return Ok(());
    }
    if scope.contains('*') || scope.ends_with('/') || scope.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err("not an image name, namespace, registry or `*.domain` wildcard".into());
    }
    Ok(())
}

fn requirements(list: &[Value], base: &Path) -> Result<Vec<Requirement>, String> {
    if list.is_empty() {
        return Err("an empty requirement list (write [{\"type\": \"insecureAcceptAnything\"}] to accept)".into());
    }
    list.iter().map(|v| requirement(v, base)).collect()
}

fn requirement(value: &Value, base: &Path) -> Result<Requirement, String> {
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or("a requirement without a \"type\"")?;
    let no_fields = |r: Requirement| {
        if value.as_object().is_some_and(|o| o.len() > 1) {
            Err(format!("{kind:?} takes no other fields"))
        } else {
            Ok(r)
        }
    };
    match kind {
        "insecureAcceptAnything" => no_fields(Requirement::Accept),
        "reject" => no_fields(Requirement::Reject),
        "sigstoreSigned" => sigstore(value, base),
        "signedBy" => Err("\"signedBy\" (GPG simple signing) is not supported (\"sigstoreSigned\" is)".into()),
        other => Err(format!("unknown requirement type {other:?}")),
    }
}

fn sigstore(value: &Value, base: &Path) -> Result<Requirement, String> {
    let raw: RawSigstore = serde_json::from_value(value.clone()).map_err(|e| format!("\"sigstoreSigned\": {e}"))?;
    if raw.fulcio.is_some() {
        return Err("\"sigstoreSigned\" with \"fulcio\" (keyless) is not supported; give keyPath or keyData".into());
    }
    let rekor = [
        &raw.rekor_public_key_path,
        &raw.rekor_public_key_paths,
        &raw.rekor_public_key_data,
        &raw.rekor_public_key_datas,
    ];
    if rekor.iter().any(|r| r.is_some()) {
        return Err("\"sigstoreSigned\" with a Rekor key is not supported (Berth checks no transparency log)".into());
    }
    let mut pems = Vec::new();
    let paths = raw.key_path.into_iter().chain(raw.key_paths.into_iter().flatten());
    for path in paths {
        let path = if path.is_absolute() { path } else { base.join(path) };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading key {}: {e}", path.display()))?;
        pems.push((path.display().to_string(), text));
    }
    for (i, data) in raw
        .key_data
        .into_iter()
        .chain(raw.key_datas.into_iter().flatten())
        .enumerate()
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("keyData {i} is not base64: {e}"))?;
        pems.push((format!("keyData {i}"), String::from_utf8_lossy(&bytes).into_owned()));
    }
    if pems.is_empty() {
        return Err("\"sigstoreSigned\" needs keyPath, keyPaths, keyData or keyDatas".into());
    }
    let mut keys = Vec::new();
    for (source, pem) in pems {
        keys.extend(PublicKey::from_pem(&pem).map_err(|e| format!("{source}: {e}"))?);
    }
    let identity = match raw.signed_identity {
        None => SignedIdentity::MatchRepoDigestOrExact,
        Some(v) => SignedIdentity::parse(&v)?,
    };
    Ok(Requirement::Sigstore { keys, identity })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, String> {
        Policy::parse(Path::new("/etc/berth/policy.json"), text)
    }

    fn decide(policy: &Policy, image: &str) -> (String, Vec<&'static str>) {
        let r = Reference::parse(image).expect("reference");
        let (scope, list) = policy.requirements_for(&r);
        (scope, list.iter().map(Requirement::name).collect())
    }

    #[test]
    fn the_most_specific_scope_decides() {
        let policy = parse(
            r#"{"default": [{"type": "reject"}],
                "transports": {"docker": {
                    "reg.example.com": [{"type": "insecureAcceptAnything"}],
                    "reg.example.com/team": [{"type": "reject"}],
                    "reg.example.com/team/app": [{"type": "insecureAcceptAnything"}],
                    "reg.example.com/team/app:debug": [{"type": "reject"}],
                    "*.example.org": [{"type": "insecureAcceptAnything"}],
                    "docker.io/library/busybox": [{"type": "insecureAcceptAnything"}, {"type": "reject"}]
                },
                "docker-daemon": {"": [{"type": "whatever"}]}}}"#,
        )
        .expect("policy");
        assert_eq!(decide(&policy, "reg.example.com/other:1").0, "reg.example.com");
        assert_eq!(decide(&policy, "reg.example.com/team/x:1").0, "reg.example.com/team");
        assert_eq!(
            decide(&policy, "reg.example.com/team/app:1").0,
            "reg.example.com/team/app"
        );
        assert_eq!(
            decide(&policy, "reg.example.com/team/app:debug").0,
            "reg.example.com/team/app:debug"
        );
        assert_eq!(decide(&policy, "mirror.eu.example.org/x").0, "*.example.org");
        assert_eq!(decide(&policy, "busybox").1, vec!["insecureAcceptAnything", "reject"]);
        assert_eq!(decide(&policy, "quay.io/x/y").0, "default");
        let digest = format!("reg.example.com/team/app@sha256:{}", "a".repeat(64));
        assert_eq!(decide(&policy, &digest).0, "reg.example.com/team/app");
    }

    #[test]
    fn the_transport_default_comes_before_the_global_one() {
        let policy = parse(
            r#"{"default": [{"type": "reject"}],
                "transports": {"docker": {"": [{"type": "insecureAcceptAnything"}]}}}"#,
        )
        .expect("policy");
        assert_eq!(
            decide(&policy, "quay.io/x/y"),
            ("transports.docker \"\"".to_string(), vec!["insecureAcceptAnything"])
        );
    }

    #[test]
    fn policies_that_cannot_be_applied_are_refused_with_the_reason() {
        let cases = [
            ("{}", "no \"default\""),
            (r#"{"default": []}"#, "empty requirement list"),
            (
                r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys"}]}"#,
                "not supported",
            ),
            (r#"{"default": [{"type": "sigstoreSigned"}]}"#, "needs keyPath"),
            (r#"{"default": [{"type": "sigstoreSigned", "fulcio": {}}]}"#, "keyless"),
            (
                r#"{"default": [{"type": "sigstoreSigned", "keyPath": "/nonexistent/key.pub"}]}"#,
                "reading key /nonexistent/key.pub",
            ),
            (
                r#"{"default": [{"type": "reject", "keyPath": "x"}]}"#,
                "takes no other fields",
            ),
            (r#"{"default": [{"type": "acceptAll"}]}"#, "unknown requirement type"),
            (
                r#"{"default": [{"type": "reject"}], "transports": {"docker": {"a/*": [{"type": "reject"}]}}}"#,
                "wildcard",
            ),
            (r#"{"default": [{"type": "reject"}], "extra": 1}"#, "unknown field"),
            ("not json", "not a valid policy"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn keys_come_from_files_relative_to_the_policy_and_from_key_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pem, _) = super::super::keys::test_keys::p256();
        std::fs::write(dir.path().join("team.pub"), &pem).expect("write key");
        let data = base64::engine::general_purpose::STANDARD.encode(&pem);
        let text = format!(
            r#"{{"default": [{{"type": "sigstoreSigned", "keyPath": "team.pub", "keyDatas": ["{data}"],
                "signedIdentity": {{"type": "matchRepository"}}}}]}}"#
        );
        let policy = Policy::parse(&dir.path().join("policy.json"), &text).expect("policy");
        let (_, list) = policy.requirements_for(&Reference::parse("x").expect("ref"));
        match &list[0] {
            Requirement::Sigstore { keys, identity } => {
                assert_eq!(keys.len(), 2);
                assert_eq!(keys[0].fingerprint(), keys[1].fingerprint());
                assert_eq!(*identity, SignedIdentity::MatchRepository);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
