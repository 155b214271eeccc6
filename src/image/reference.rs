//! Image references in the form users and kubelet write them, normalised the way Docker
//! does: `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;

pub use crate::digest::{Digest, InvalidDigest};

pub const DOCKER_HUB: &str = "docker.io";

/// A fully qualified image reference: registry host, repository path, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("invalid image reference {0:?}: {1}")]
    Invalid(String, &'static str),
    #[error(transparent)]
    Digest(#[from] InvalidDigest),
}

impl Reference {
    /// Parses and normalises a reference (`name[:tag][@digest]`). A reference with neither
    /// tag nor digest gets `latest`.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() > 4096 {
            return Err(ReferenceError::Invalid(truncate(s), "longer than 4096 bytes"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, d)) => (name, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !tag.starts_with(['.', '-']);
            if !ok {
                return Err(ReferenceError::Invalid(truncate(s), "bad tag"));
            }
        }
        let (registry, repository) = split_registry(name);
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        validate_repository(&repository).map_err(|why| ReferenceError::Invalid(truncate(s), why))?;
        if registry.is_empty() || registry.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
            return Err(ReferenceError::Invalid(truncate(s), "bad registry host"));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the name tags and digests hang off.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `name:tag`, when there is a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `name@digest` for a digest (the pulled manifest's, usually).
    pub fn with_digest(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.name())
    }

    /// What to ask the registry for: the digest when known, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn validate_repository(repo: &str) -> Result<(), &'static str> {
    if repo.is_empty() || repo.len() > 255 {
        return Err("repository name must be 1 to 255 characters");
    }
    for component in repo.split('/') {
        let bytes = component.as_bytes();
        let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !edge_ok(bytes.first()) || !edge_ok(bytes.last()) {
            return Err("repository components must start and end with a lowercase letter or digit");
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
        {
            return Err("repository may only hold lowercase letters, digits, '.', '_', '-' and '/'");
        }
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_normalisation() {
        let r = Reference::parse("busybox").expect("parse");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = Reference::parse("user/app:1.0").expect("parse");
        assert_eq!(r.to_string(), "docker.io/user/app:1.0");
        let r = Reference::parse("docker.io/library/busybox:1.36").expect("parse");
        assert_eq!(r.name(), "docker.io/library/busybox");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let r = Reference::parse("127.0.0.1:5000/testkit/big:200mb").expect("parse");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "testkit/big")
        );
        assert_eq!(r.tag.as_deref(), Some("200mb"));
        let r = Reference::parse("localhost:5000/app").expect("parse");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = Reference::parse(&format!("registry.k8s.io/pause@{D}")).expect("parse");
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), D);
        let r = Reference::parse(&format!("quay.io/a/b:v1@{D}")).expect("parse");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(
            r.with_digest(r.digest.as_ref().expect("digest")),
            format!("quay.io/a/b@{D}")
        );
    }

    #[test]
    fn bad_references_are_rejected() {
        for bad in [
            "",
            "UPPER",
            "a/b:",
            "a@sha256:123",
            "a:b c",
            "a//b",
            "-a",
            "a:.tag",
            "a@md5:00",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
