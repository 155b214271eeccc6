//! Sending requests: one HTTP client per TLS setup, and redirects followed by hand so
//! the `Authorization` header never leaves the endpoint's origin.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, RANGE};
use reqwest::Method;

use super::error::RegistryError;
use super::response::error_chain;
use super::RegistryClient;
use crate::image::hosts::Endpoint;

const MAX_REDIRECTS: usize = 5;

impl RegistryClient {
    /// Sends one GET, following redirects by hand: the `Authorization` header goes only to
    /// the endpoint's own origin, never across a redirect to another host.
    pub(in crate::image) async fn send(
        &self,
        endpoint: &Endpoint,
        url: &str,
        accept: &[&str],
        authorization: Option<&str>,
        range: Option<super::ByteRange>,
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
            if let Some(range) = range {
                headers.insert(
                    RANGE,
                    HeaderValue::from_str(&range.header()).map_err(|e| RegistryError::Protocol(e.to_string()))?,
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

    pub(super) fn client(&self, endpoint: &Endpoint) -> Result<reqwest::Client, RegistryError> {
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

pub(super) fn same_origin(url: &str, origin: &str) -> bool {
    url == origin
        || url
            .strip_prefix(origin)
            .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(same_origin("http://127.0.0.1:5000/v2/x", "http://127.0.0.1:5000"));
        assert!(!same_origin("http://127.0.0.1:50001/v2/x", "http://127.0.0.1:5000"));
        assert!(!same_origin("https://s3.example/blob", "https://registry.example"));
    }
}
