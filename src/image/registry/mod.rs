//! A client for the OCI distribution API: manifests and blobs over HTTP(S), the
//! WWW-Authenticate challenge (bearer token and basic), mirrors with fallback to the
//! upstream, and redirects followed by hand so credentials never leave their host.
//! Pushes (`upload.rs`) go to the upstream only.

mod challenge;
mod error;
mod range;
mod response;
mod token;
mod transport;
mod upload;

pub use challenge::parse_challenge;
pub use error::RegistryError;
pub use range::{ByteRange, ContentRange};
pub use response::{error_chain, read_limited};
pub use upload::{Mount, PushSession, CHUNK_SIZE};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;

use super::auth::Credentials;
use super::hosts::{Endpoint, HostsConfig};
use super::reference::Reference;
use response::body_snippet;

/// What a pull authenticates with, tied to the registry host the credentials belong to.
#[derive(Debug, Clone)]
pub struct PullAuth {
    pub registry: String,
    pub credentials: Credentials,
}

pub struct RegistryClient {
    hosts: HostsConfig,
    timeout: Duration,
    clients: Mutex<HashMap<(bool, Vec<std::path::PathBuf>), reqwest::Client>>,
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

/// A response whose body is still to be read.
pub struct Fetched {
    pub response: reqwest::Response,
    pub endpoint: Endpoint,
}

impl RegistryClient {
    pub fn new(hosts: HostsConfig, timeout: Duration) -> RegistryClient {
        RegistryClient {
            hosts,
            timeout,
            clients: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    pub fn endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, RegistryError> {
        Ok(self.hosts.endpoints(registry)?)
    }

    /// GETs `path` (relative to `/v2/<repository>/`) from the first endpoint that has it,
    /// trying mirrors first and the upstream last. `resolve` marks tag lookups, which only
    /// go to endpoints with the `resolve` capability.
    pub async fn get(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        path: &str,
        accept: &[&str],
        resolve: bool,
    ) -> Result<Fetched, RegistryError> {
        self.get_ranged(reference, auth, path, accept, resolve, None).await
    }

    /// GETs a blob from byte `from` on (`Range: bytes=FROM-`). The registry may answer
    /// 206 with that range or 200 with the whole blob; the caller tells them apart.
    pub async fn get_range(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        path: &str,
        from: u64,
    ) -> Result<Fetched, RegistryError> {
        let range = ByteRange { start: from, end: None };
        self.get_ranged(reference, auth, path, &[], false, Some(range)).await
    }

    async fn get_ranged(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        path: &str,
        accept: &[&str],
        resolve: bool,
        range: Option<ByteRange>,
    ) -> Result<Fetched, RegistryError> {
        let endpoints = self.endpoints(&reference.registry)?;
        let mut last = None;
        for endpoint in endpoints
            .into_iter()
            .filter(|e| if resolve { e.resolve } else { e.pull })
        {
            match self.get_from(&endpoint, reference, auth, path, accept, range).await {
                Ok(response) => return Ok(Fetched { response, endpoint }),
                Err(e) if e.try_next() => {
                    tracing::debug!(endpoint = %endpoint.base, error = %e, "endpoint failed, trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            RegistryError::Protocol(format!(
                "no registry endpoint of {} may serve this request",
                reference.registry
            ))
        }))
    }

    async fn get_from(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        auth: &PullAuth,
        path: &str,
        accept: &[&str],
        range: Option<ByteRange>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut url = format!("{}/{}/{path}", endpoint.base, reference.repository);
        if endpoint.mirror {
            url.push_str(&format!("?ns={}", reference.registry));
        }
        // Credentials belong to the reference's registry; a mirror on another host gets none.
        let creds = if !endpoint.mirror && auth.registry == reference.registry {
            auth.credentials.clone()
        } else {
            Credentials::Anonymous
        };
        let scope = format!("repository:{}:pull", reference.repository);
        let token_key = (endpoint.origin().to_string(), scope.clone());
        let mut authorization = self.cached_token(&token_key).or(match &creds {
            Credentials::Bearer(t) => Some(format!("Bearer {t}")),
            _ => None,
        });
        let mut tried_auth = false;
        loop {
            let response = self
                .send(endpoint, &url, accept, authorization.as_deref(), range)
                .await?;
            match response.status() {
                s if s.is_success() => return Ok(response),
                StatusCode::UNAUTHORIZED if !tried_auth => {
                    tried_auth = true;
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                        .unwrap_or_default();
                    authorization = Some(
                        self.answer_challenge(endpoint, &challenge, &creds, &scope, &token_key)
                            .await?,
                    );
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Unauthorized(format!(
                        "{}: access denied to {} ({}){}",
                        endpoint.host(),
                        reference.name(),
                        response.status(),
                        if creds.is_anonymous() {
                            "; no credentials were given"
                        } else {
                            "; check the credentials"
                        }
                    )))
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound(format!(
                        "{}: {} not found at {}",
                        reference.name(),
                        path,
                        endpoint.host()
                    )))
                }
                status => {
                    let detail = body_snippet(response).await;
                    return Err(RegistryError::Http {
                        url,
                        status: status.as_u16(),
                        detail,
                    });
                }
            }
        }
    }
}
