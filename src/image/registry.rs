//! A client for the OCI distribution API: manifests and blobs over HTTP(S), the
//! WWW-Authenticate challenge (bearer token and basic), mirrors with fallback to the
//! upstream, and redirects followed by hand so credentials never leave their host.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use super::auth::Credentials;
use super::hosts::{Endpoint, HostsConfig, HostsError};
use super::reference::Reference;

const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("registry request {url} failed: HTTP {status}: {detail}")]
    Http { url: String, status: u16, detail: String },
    #[error("registry request {url} failed: {message}")]
    Transport { url: String, message: String },
    #[error("registry configuration: {0}")]
    Hosts(#[from] HostsError),
    #[error("{0}")]
    Protocol(String),
    /// A response over the size limit for what was asked (a manifest, a config).
    #[error("{0}")]
    TooLarge(String),
}

impl RegistryError {
    /// Whether trying the next endpoint (a mirror's fallback) makes sense.
    fn try_next(&self) -> bool {
        match self {
            RegistryError::Transport { .. } | RegistryError::NotFound(_) | RegistryError::Unauthorized(_) => true,
            RegistryError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 404,
            RegistryError::Hosts(_) | RegistryError::Protocol(_) | RegistryError::TooLarge(_) => false,
        }
    }
}

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
        let endpoints = self.endpoints(&reference.registry)?;
        let mut last = None;
        for endpoint in endpoints
            .into_iter()
            .filter(|e| if resolve { e.resolve } else { e.pull })
        {
            match self.get_from(&endpoint, reference, auth, path, accept).await {
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
            let response = self.send(endpoint, &url, accept, authorization.as_deref()).await?;
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

    /// Sends one GET, following redirects by hand: the `Authorization` header goes only to
    /// the endpoint's own origin, never across a redirect to another host.
    pub(super) async fn send(
        &self,
        endpoint: &Endpoint,
        url: &str,
        accept: &[&str],
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let client = self.client(endpoint)?;
        let origin = endpoint.origin().to_string();
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = HeaderMap::new();
            for (k, v) in &endpoint.headers {
                if let (Ok(k), Ok(v)) = (
                    reqwest::header::HeaderName::try_from(k.as_str()),
                    HeaderValue::from_str(v),
                ) {
                    headers.append(k, v);
                }
            }
            if !accept.is_empty() {
                headers.insert(
                    ACCEPT,
                    HeaderValue::from_str(&accept.join(", ")).map_err(|e| RegistryError::Protocol(e.to_string()))?,
                );
            }
            if let Some(a) = authorization.filter(|_| same_origin(&url, &origin)) {
                let mut v = HeaderValue::from_str(a)
                    .map_err(|_| RegistryError::Protocol("invalid authorization value".into()))?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            let response = client
                .request(Method::GET, &url)
                .headers(headers)
                .send()
                .await
                .map_err(|e| RegistryError::Transport {
                    url: url.clone(),
                    message: error_chain(&e),
                })?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| RegistryError::Protocol(format!("{url}: redirect without a Location")))?;
            url = response
                .url()
                .join(location)
                .map_err(|e| RegistryError::Protocol(format!("{url}: bad redirect {location:?}: {e}")))?
                .to_string();
        }
        Err(RegistryError::Protocol(format!(
            "{url}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    pub(super) async fn answer_challenge(
        &self,
        endpoint: &Endpoint,
        challenge: &str,
        creds: &Credentials,
        scope: &str,
        token_key: &(String, String),
    ) -> Result<String, RegistryError> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.as_str() {
            "basic" => creds.basic_header().ok_or_else(|| {
                RegistryError::Unauthorized(format!(
                    "{}: registry requires credentials and none were given",
                    endpoint.host()
                ))
            }),
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| {
                    RegistryError::Protocol(format!("{}: bearer challenge without realm", endpoint.host()))
                })?;
                let scope = params.get("scope").cloned().unwrap_or_else(|| scope.to_string());
                let token = self
                    .fetch_token(endpoint, realm, params.get("service"), &scope, creds)
                    .await?;
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(token_key.clone(), (token.0.clone(), Instant::now() + token.1));
                Ok(format!("Bearer {}", token.0))
            }
            _ => Err(RegistryError::Unauthorized(format!(
                "{}: unsupported authentication challenge {challenge:?}",
                endpoint.host()
            ))),
        }
    }

    async fn fetch_token(
        &self,
        endpoint: &Endpoint,
        realm: &str,
        service: Option<&String>,
        scope: &str,
        creds: &Credentials,
    ) -> Result<(String, Duration), RegistryError> {
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| RegistryError::Protocol(format!("bad token realm {realm:?}: {e}")))?;
        // The realm gets the registry's credentials only over TLS or on the registry's own host.
        let realm_trusted = url.scheme() == "https" || url.host_str() == host_only(endpoint.host());
        let creds = if realm_trusted { creds } else { &Credentials::Anonymous };
        let client = self.client(endpoint)?;
        let request = match creds {
            Credentials::Identity(refresh) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("scope", scope),
                    ("client_id", "berth"),
                ];
                if let Some(s) = service {
                    form.push(("service", s.as_str()));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    // A login check asks for a token with no scope at all.
                    if !scope.is_empty() {
                        q.append_pair("scope", scope);
                    }
                }
                let mut req = client.get(url.clone());
                if let Some(h) = creds.basic_header() {
                    req = req.header(AUTHORIZATION, h);
                }
                req
            }
        };
        let response = request.send().await.map_err(|e| RegistryError::Transport {
            url: url.to_string(),
            message: error_chain(&e),
        })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized(format!(
                "{}: the token service refused the credentials ({status})",
                endpoint.host()
            )));
        }
        if !status.is_success() {
            let detail = body_snippet(response).await;
            return Err(RegistryError::Http {
                url: url.to_string(),
                status: status.as_u16(),
                detail,
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body = read_limited(response, 1 << 20).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Protocol(format!("token response is not JSON: {e}")))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol("token response holds no token".into()))?;
        let ttl = Duration::from_secs(parsed.expires_in.unwrap_or(60).clamp(10, 3600).saturating_sub(5));
        Ok((token, ttl))
    }

    fn cached_token(&self, key: &(String, String)) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| format!("Bearer {t}"))
    }

    fn client(&self, endpoint: &Endpoint) -> Result<reqwest::Client, RegistryError> {
        let key = (endpoint.skip_verify, endpoint.ca.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(self.timeout)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(endpoint.skip_verify);
        for ca in &endpoint.ca {
            let pem =
                std::fs::read(ca).map_err(|e| RegistryError::Protocol(format!("reading CA {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| RegistryError::Protocol(format!("CA {}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| RegistryError::Protocol(format!("HTTP client: {e}")))?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Reads a whole body, refusing more than `limit` bytes (the registry may lie about sizes).
pub async fn read_limited(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, RegistryError> {
    let url = response.url().to_string();
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(RegistryError::TooLarge(format!(
            "{url}: response larger than the {limit}-byte limit"
        )));
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| RegistryError::Transport {
        url: url.clone(),
        message: error_chain(&e),
    })? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(RegistryError::TooLarge(format!(
                "{url}: response larger than the {limit}-byte limit"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn body_snippet(response: reqwest::Response) -> String {
    let body = read_limited(response, 64 << 10).await.unwrap_or_default();
    String::from_utf8_lossy(&body)
        .chars()
        .take(300)
        .collect::<String>()
        .trim()
        .to_string()
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

fn same_origin(url: &str, origin: &str) -> bool {
    url == origin
        || url
            .strip_prefix(origin)
            .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'))
}

fn host_only(host_port: &str) -> Option<&str> {
    if host_port.starts_with('[') {
        return host_port.split(']').next().map(|h| h.trim_start_matches('['));
    }
    host_port.split(':').next()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parses `Bearer realm="…",service="…"` into a lower-cased scheme and its parameters.
pub fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key, value.trim().to_string());
    }
    (scheme.to_lowercase(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull,push");
        let (scheme, p) = parse_challenge("Basic realm=registry");
        assert_eq!((scheme.as_str(), p["realm"].as_str()), ("basic", "registry"));
    }

    #[test]
    fn origins() {
        assert!(same_origin("http://127.0.0.1:5000/v2/x", "http://127.0.0.1:5000"));
        assert!(!same_origin("http://127.0.0.1:50001/v2/x", "http://127.0.0.1:5000"));
        assert!(!same_origin("https://s3.example/blob", "https://registry.example"));
        assert_eq!(host_only("127.0.0.1:5000"), Some("127.0.0.1"));
        assert_eq!(urlencode("a b/c"), "a%20b%2Fc");
    }
}
