//! Registry credentials: from the CRI `AuthConfig` of a pull, or from a Docker-style
//! `config.json` (`auths`) on the node. Credentials belong to one registry host and are
//! only ever offered to that host (see `registry/`).

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

/// What a pull may authenticate with.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A ready bearer token for the registry (`registry_token`).
    Bearer(String),
    /// An OAuth2 refresh token (`identity_token`), exchanged at the token realm.
    Identity(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Identity(_) => f.write_str("Identity(<redacted>)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth field is not base64 of user:password")]
    BadAuthField,
}

/// The domain form of CRI's `AuthConfig`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthInput {
    pub username: String,
    pub password: String,
    pub auth: String,
    pub server_address: String,
    pub identity_token: String,
    pub registry_token: String,
}

impl fmt::Debug for AuthInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthInput({}, {:?})", self.username, self.server_address)
    }
}

impl Credentials {
    pub fn from_input(input: &AuthInput) -> Result<Credentials, AuthError> {
        if !input.registry_token.is_empty() {
            return Ok(Credentials::Bearer(input.registry_token.clone()));
        }
        if !input.identity_token.is_empty() {
            return Ok(Credentials::Identity(input.identity_token.clone()));
        }
        if !input.username.is_empty() || !input.password.is_empty() {
            return Ok(Credentials::Basic {
                username: input.username.clone(),
                password: input.password.clone(),
            });
        }
        if !input.auth.is_empty() {
            return decode_auth(&input.auth);
        }
        Ok(Credentials::Anonymous)
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credentials::Anonymous)
    }

    /// The `Authorization` header value for HTTP Basic, when these are basic credentials.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

fn decode_auth(auth: &str) -> Result<Credentials, AuthError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| AuthError::BadAuthField)?;
    let text = String::from_utf8(raw).map_err(|_| AuthError::BadAuthField)?;
    let (u, p) = text.split_once(':').ok_or(AuthError::BadAuthField)?;
    Ok(Credentials::Basic {
        username: u.into(),
        password: p.into(),
    })
}

#[derive(Debug, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, DockerAuth>,
}

#[derive(Debug, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

/// Looks `registry` up in a Docker `config.json`. Keys may be a bare host, a URL, or
/// Docker Hub's historical `https://index.docker.io/v1/`. A missing file means no entry.
pub fn from_docker_config(path: &Path, registry: &str) -> Result<Option<Credentials>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let cfg: DockerConfig = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for (key, entry) in cfg.auths {
        if key_host(&key) != registry && !(registry == "docker.io" && is_docker_hub_key(&key)) {
            continue;
        }
        let input = AuthInput {
            username: entry.username,
            password: entry.password,
            auth: entry.auth,
            identity_token: entry.identity_token,
            registry_token: entry.registry_token,
            server_address: key,
        };
        return Credentials::from_input(&input)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    Ok(None)
}

fn key_host(key: &str) -> &str {
    let rest = key.find("://").map_or(key, |i| &key[i + 3..]);
    rest.split('/').next().unwrap_or(rest)
}

fn is_docker_hub_key(key: &str) -> bool {
    matches!(key_host(key), "index.docker.io" | "registry-1.docker.io" | "docker.io")
}

/// The host an `AuthConfig.server_address` names, for matching against a reference.
pub fn server_host(server_address: &str) -> String {
    let host = key_host(server_address);
    if is_docker_hub_key(host) {
        "docker.io".into()
    } else {
        host.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_input() {
        let mut input = AuthInput {
            auth: "YWxpY2U6czNjcmV0".into(),
            ..Default::default()
        };
        assert_eq!(
            Credentials::from_input(&input).expect("auth"),
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        input.registry_token = "tok".into();
        assert_eq!(
            Credentials::from_input(&input).expect("token"),
            Credentials::Bearer("tok".into())
        );
        let bad = AuthInput {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(Credentials::from_input(&bad).is_err());
        assert!(Credentials::from_input(&AuthInput::default())
            .expect("anon")
            .is_anonymous());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let i = AuthInput {
            password: "s3cret".into(),
            auth: "YWxpY2U6czNjcmV0".into(),
            ..Default::default()
        };
        assert!(!format!("{i:?}").contains("s3cret") && !format!("{i:?}").contains("YWxp"));
    }

    #[test]
    fn docker_config_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "aHViOnB3"}, "127.0.0.1:5000": {"username": "u", "password": "p"}}}"#,
        )
        .expect("write");
        assert_eq!(
            from_docker_config(&path, "docker.io").expect("read"),
            Some(Credentials::Basic {
                username: "hub".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            from_docker_config(&path, "127.0.0.1:5000").expect("read"),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(from_docker_config(&path, "quay.io").expect("read"), None);
        assert_eq!(
            from_docker_config(&dir.path().join("missing"), "quay.io").expect("read"),
            None
        );
        assert_eq!(server_host("https://index.docker.io/v1/"), "docker.io");
    }
}
