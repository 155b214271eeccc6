//! Answering a challenge: HTTP Basic, or a bearer token fetched from the realm (with a
//! refresh token, or the credentials over TLS or to the registry's own host), cached
//! until shortly before it expires.

use std::time::{Duration, Instant};

use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;

use super::challenge::parse_challenge;
use super::error::RegistryError;
use super::response::{body_snippet, error_chain, read_limited};
use super::RegistryClient;
use crate::image::auth::Credentials;
use crate::image::hosts::Endpoint;

impl RegistryClient {
    pub(in crate::image) async fn answer_challenge(
        &self,
        endpoint: &Endpoint,
        challenge: &str,
        creds: &Credentials,
        scope: &str,
        token_key: &(String, String),
    ) -> Result<String, RegistryError> {
        self.answer_challenge_scoped(endpoint, challenge, creds, scope, token_key, false)
            .await
    }

    /// [`RegistryClient::answer_challenge`]; with `own_scope`, a token is asked for `scope`
    /// (space-separated scopes) rather than the one the challenge names: a push needs
    /// `pull,push` on its repository and `pull` on a mount's source.
    pub(super) async fn answer_challenge_scoped(
        &self,
        endpoint: &Endpoint,
        challenge: &str,
        creds: &Credentials,
        scope: &str,
        token_key: &(String, String),
        own_scope: bool,
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
                let scope = match params.get("scope") {
                    Some(theirs) if !own_scope || scope.is_empty() => theirs.clone(),
                    _ => scope.to_string(),
                };
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
                    // Several scopes go as several `scope` parameters.
                    for one in scope.split_whitespace() {
                        q.append_pair("scope", one);
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

    pub(super) fn cached_token(&self, key: &(String, String)) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| format!("Bearer {t}"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_form_encoding() {
        assert_eq!(host_only("127.0.0.1:5000"), Some("127.0.0.1"));
        assert_eq!(urlencode("a b/c"), "a%20b%2Fc");
    }
}
