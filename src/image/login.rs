//! Checking registry credentials (`berthctl login`): a `GET /v2/` on the registry's own
//! endpoint (never a mirror), answering its challenge the way pulls do — HTTP Basic, or a
//! bearer token fetched with the credentials.

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;

use super::auth::Credentials;
use super::registry::{RegistryClient, RegistryError};

impl RegistryClient {
    /// Succeeds when `registry` accepts `creds` (or needs none). Returns the endpoint host
    /// that answered.
    pub async fn check_login(&self, registry: &str, creds: &Credentials) -> Result<String, RegistryError> {
        let endpoint = self
            .endpoints(registry)?
            .into_iter()
            .rfind(|e| !e.mirror)
            .ok_or_else(|| RegistryError::Protocol(format!("{registry}: no registry endpoint configured")))?;
        let url = format!("{}/", endpoint.base);
        let host = endpoint.host().to_string();
        let mut authorization = None;
        for attempt in 0..2 {
            let response = self.send(&endpoint, &url, &[], authorization.as_deref(), None).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(host);
            }
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let key = (endpoint.origin().to_string(), String::new());
                authorization = Some(self.answer_challenge(&endpoint, &challenge, creds, "", &key).await?);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Unauthorized(format!(
                    "{host}: the registry refused the credentials ({status})"
                )));
            }
            return Err(RegistryError::Http {
                url,
                status: status.as_u16(),
                detail: String::new(),
            });
        }
        Err(RegistryError::Unauthorized(format!(
            "{host}: the registry refused the credentials"
        )))
    }
}

impl super::Images {
    /// Checks `input`'s credentials against `registry` (a host or URL; Docker Hub's
    /// aliases mean `docker.io`). Returns the registry host.
    pub async fn check_login(
        &self,
        registry: &str,
        input: &super::auth::AuthInput,
    ) -> Result<String, super::ImageError> {
        let host = super::auth::server_host(registry);
        if host.is_empty() {
            return Err(super::ImageError::Invalid("name a registry to log in to".into()));
        }
        let creds = Credentials::from_input(input).map_err(|e| super::ImageError::Invalid(format!("auth: {e}")))?;
        if creds.is_anonymous() {
            return Err(super::ImageError::Invalid("no credentials given".into()));
        }
        self.registry.check_login(&host, &creds).await?;
        Ok(host)
    }

    /// A temporary file under the content store for an incoming archive; it is removed
    /// when dropped (and swept at start-up after a crash).
    pub fn spool_file(&self) -> Result<tempfile::NamedTempFile, super::ImageError> {
        Ok(self.content.spool()?)
    }
}
