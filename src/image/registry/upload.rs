//! The upload side of the distribution API, for pushes: blob existence checks (`HEAD`),
//! cross-repository mounts, uploads (one `PUT` for small blobs, `PATCH` chunks and a
//! closing `PUT` for large ones) and manifest `PUT`s. Requests answer challenges as pulls
//! do, with tokens scoped `pull,push`; they go to the registry's upstream server only
//! (mirrors serve pulls), and redirects are followed by hand so credentials stay on their
//! host.

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use tokio::io::AsyncReadExt as _;

use super::error::RegistryError;
use super::response::{body_snippet, error_chain};
use super::transport::same_origin;
use super::{PullAuth, RegistryClient};
use crate::image::auth::Credentials;
use crate::image::hosts::Endpoint;
use crate::image::reference::{Digest, Reference};

/// Blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks of this size.
pub const CHUNK_SIZE: u64 = 8 << 20;
const MAX_REDIRECTS: usize = 5;
const OCTET_STREAM: &str = "application/octet-stream";

/// The token scope a push asks for: `pull,push` on its repository, and `pull` on the
/// repository a blob is mounted from.
pub fn push_scope(repository: &str, mount_from: Option<&str>) -> String {
    let mut scope = format!("repository:{repository}:pull,push");
    if let Some(from) = mount_from.filter(|f| *f != repository) {
        scope.push_str(&format!(" repository:{from}:pull"));
    }
    scope
}

/// Where an upload goes on: the `Location` a registry answered (relative or absolute),
/// taken against the URL of the request it answered; its query is kept.
pub fn resolve_location(request: &Url, location: &str) -> Result<Url, RegistryError> {
    request
        .join(location.trim())
        .map_err(|e| RegistryError::Protocol(format!("{request}: bad Location {location:?}: {e}")))
}

/// The upload URL with `digest=` added to whatever query it has (`_state` and the like).
pub fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut url = location.clone();
    url.query_pairs_mut().append_pair("digest", digest.as_str());
    url
}

/// The byte ranges `[start, end)` of a blob of `size` bytes cut into `chunk`-byte pieces.
pub fn chunks(size: u64, chunk: u64) -> Vec<(u64, u64)> {
    let chunk = chunk.max(1);
    (0..size.div_ceil(chunk))
        .map(|i| (i * chunk, ((i + 1) * chunk).min(size)))
        .collect()
}

/// A `Content-Range` value for `[start, end)`: the distribution API's inclusive `start-last`.
pub fn content_range(start: u64, end: u64) -> String {
    format!("{start}-{}", end.saturating_sub(1).max(start))
}

/// What a mount request came to.
#[derive(Debug)]
pub enum Mount {
    Mounted,
    /// The registry would not mount and opened an upload at this URL instead.
    Upload(Url),
}

/// Pushing to one repository: its endpoint, credentials and the authorization that works.
pub struct PushSession<'a> {
    client: &'a RegistryClient,
    endpoint: Endpoint,
    /// `<base>/<repository>`.
    repo_url: String,
    name: String,
    creds: Credentials,
    scope: String,
    token_key: (String, String),
    authorization: Mutex<Option<String>>,
}

impl RegistryClient {
    /// Where pushes to `registry` go: its upstream server, never a mirror.
    pub fn push_endpoint(&self, registry: &str) -> Result<Endpoint, RegistryError> {
        self.endpoints(registry)?
            .into_iter()
            .rev()
            .find(|e| !e.mirror)
            .ok_or_else(|| RegistryError::Protocol(format!("no registry endpoint of {registry} takes pushes")))
    }

    /// A session pushing to `reference`'s repository, allowed to mount blobs from
    /// `mount_from` (a repository on the same registry).
    pub fn push_session(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        mount_from: Option<&str>,
    ) -> Result<PushSession<'_>, RegistryError> {
        let endpoint = self.push_endpoint(&reference.registry)?;
        let creds = if auth.registry == reference.registry {
            auth.credentials.clone()
        } else {
            Credentials::Anonymous
        };
        let scope = push_scope(&reference.repository, mount_from);
        let token_key = (endpoint.origin().to_string(), scope.clone());
        let authorization = self.cached_token(&token_key).or(match &creds {
            Credentials::Bearer(t) => Some(format!("Bearer {t}")),
            _ => None,
        });
        Ok(PushSession {
            client: self,
            repo_url: format!("{}/{}", endpoint.base, reference.repository),
            endpoint,
            name: reference.name(),
            creds,
            scope,
            token_key,
            authorization: Mutex::new(authorization),
        })
    }
}

impl PushSession<'_> {
    /// `host[:port]` pushed to.
    pub fn host(&self) -> &str {
        self.endpoint.host()
    }

    /// Whether the repository already has the blob (`HEAD /v2/<name>/blobs/<digest>`).
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let response = self.request(Method::HEAD, url, HeaderMap::new(), None).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(http_error(response).await),
        }
    }

    /// Asks the registry to mount `digest` from repository `from`; a registry that will
    /// not (202) opens an upload instead.
    pub async fn mount(&self, digest: &Digest, from: &str) -> Result<Mount, RegistryError> {
        let mut url = self.url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from);
        let response = self
            .request(Method::POST, url, HeaderMap::new(), Some(Bytes::new()))
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(next_location(&response)?)),
            _ => Err(http_error(response).await),
        }
    }

    /// Opens an upload; returns where it goes on.
    pub async fn start_upload(&self) -> Result<Url, RegistryError> {
        let url = self.url("blobs/uploads/")?;
        let response = self
            .request(Method::POST, url, HeaderMap::new(), Some(Bytes::new()))
            .await?;
        match response.status() {
            StatusCode::ACCEPTED => next_location(&response),
            _ => Err(http_error(response).await),
        }
    }

    /// Uploads the blob at `path` (`size` bytes, `digest`) to the upload at `location`:
    /// one `PUT` up to [`CHUNK_SIZE`], else `PATCH` chunks and a closing `PUT`. Calls
    /// `progress` with the bytes sent so far after each piece.
    pub async fn upload(
        &self,
        location: Url,
        digest: &Digest,
        size: u64,
        path: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| RegistryError::Protocol(format!("reading {}: {e}", path.display())))?;
        let mut octets = HeaderMap::new();
        octets.insert(CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
        let response = if size <= CHUNK_SIZE {
            let data = read_piece(&mut file, size, path).await?;
            self.request(Method::PUT, with_digest(&location, digest), octets, Some(data))
                .await?
        } else {
            let mut location = location;
            for (start, end) in chunks(size, CHUNK_SIZE) {
                let data = read_piece(&mut file, end - start, path).await?;
                let mut headers = octets.clone();
                headers.insert(
                    CONTENT_RANGE,
                    HeaderValue::from_str(&content_range(start, end))
                        .map_err(|e| RegistryError::Protocol(e.to_string()))?,
                );
                let response = self.request(Method::PATCH, location, headers, Some(data)).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(http_error(response).await);
                }
                location = next_location(&response)?;
                progress(end);
            }
            self.request(Method::PUT, with_digest(&location, digest), octets, Some(Bytes::new()))
                .await?
        };
        if !response.status().is_success() {
            return Err(http_error(response).await);
        }
        check_digest(&response, digest)?;
        progress(size);
        Ok(())
    }

    /// PUTs a manifest's exact bytes under `reference` (a tag or a digest) with its media
    /// type; returns its digest, which the registry must agree with.
    pub async fn put_manifest(&self, reference: &str, media_type: &str, body: Bytes) -> Result<Digest, RegistryError> {
        let digest = Digest::of(&body);
        let url = self.url(&format!("manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .map_err(|_| RegistryError::Protocol(format!("bad media type {media_type:?}")))?,
        );
        let response = self.request(Method::PUT, url, headers, Some(body)).await?;
        if !response.status().is_success() {
            return Err(http_error(response).await);
        }
        check_digest(&response, &digest)?;
        Ok(digest)
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        let url = format!("{}/{path}", self.repo_url);
        Url::parse(&url).map_err(|e| RegistryError::Protocol(format!("bad registry URL {url:?}: {e}")))
    }

    /// Sends a request, answering one challenge (and keeping the answer for what follows).
    async fn request(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut tried_auth = false;
        loop {
            let authorization = self.authorization.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let response = self
                .send(&method, url.clone(), &headers, body.clone(), authorization.as_deref())
                .await?;
            match response.status() {
                StatusCode::UNAUTHORIZED if !tried_auth => {
                    tried_auth = true;
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let answer = self
                        .client
                        .answer_challenge_scoped(
                            &self.endpoint,
                            &challenge,
                            &self.creds,
                            &self.scope,
                            &self.token_key,
                            true,
                        )
                        .await?;
                    *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
                }
                status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                    return Err(RegistryError::Unauthorized(format!(
                        "{}: push access to {} denied ({status}){}",
                        self.host(),
                        self.name,
                        if self.creds.is_anonymous() {
                            "; no credentials were given (berthctl login?)"
                        } else {
                            "; check the credentials and that they may push"
                        }
                    )))
                }
                _ => return Ok(response),
            }
        }
    }

    /// Sends one request, following redirects by hand (307/308 for any method, with the
    /// body again; others for HEAD): `Authorization` goes only to the endpoint's origin.
    async fn send(
        &self,
        method: &Method,
        mut url: Url,
        headers: &HeaderMap,
        body: Option<Bytes>,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let client = self.client.client(&self.endpoint)?;
        let origin = self.endpoint.origin().to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut all = HeaderMap::new();
            for (k, v) in &self.endpoint.headers {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
                    all.append(k, v);
                }
            }
            for (k, v) in headers {
                all.insert(k.clone(), v.clone());
            }
            if let Some(a) = authorization.filter(|_| same_origin(url.as_str(), &origin)) {
                let mut v = HeaderValue::from_str(a)
                    .map_err(|_| RegistryError::Protocol("invalid authorization value".into()))?;
                v.set_sensitive(true);
                all.insert(AUTHORIZATION, v);
            }
            let mut request = client.request(method.clone(), url.clone()).headers(all);
            if let Some(b) = &body {
                request = request.body(b.clone());
            }
            let response = request.send().await.map_err(|e| RegistryError::Transport {
                url: url.to_string(),
                message: error_chain(&e),
            })?;
            let follow = match response.status() {
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => true,
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER => *method == Method::HEAD,
                _ => false,
            };
            if !follow {
                return Ok(response);
            }
            url = next_location(&response)?;
        }
        Err(RegistryError::Protocol(format!(
            "{url}: more than {MAX_REDIRECTS} redirects"
        )))
    }
}

/// The answer's `Location`, resolved against the URL it answered.
fn next_location(response: &reqwest::Response) -> Result<Url, RegistryError> {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol(format!("{}: answer without a Location", response.url())))?;
    resolve_location(response.url(), location)
}

/// A registry that names what it stored by another digest than what was sent.
fn check_digest(response: &reqwest::Response, sent: &Digest) -> Result<(), RegistryError> {
    let claimed = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if !claimed.is_empty() && claimed != sent.as_str() {
        return Err(RegistryError::Protocol(format!(
            "{}: the registry stored {claimed}, but {sent} was sent",
            response.url()
        )));
    }
    Ok(())
}

async fn http_error(response: reqwest::Response) -> RegistryError {
    let url = response.url().to_string();
    let status = response.status().as_u16();
    let detail = body_snippet(response).await;
    RegistryError::Http { url, status, detail }
}

async fn read_piece(file: &mut tokio::fs::File, len: u64, path: &Path) -> Result<Bytes, RegistryError> {
    let mut data = vec![0u8; len as usize];
    file.read_exact(&mut data)
        .await
        .map_err(|e| RegistryError::Protocol(format!("reading {}: {e}", path.display())))?;
    Ok(Bytes::from(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(push_scope("team/app", None), "repository:team/app:pull,push");
        assert_eq!(
            push_scope("team/app", Some("base/img")),
            "repository:team/app:pull,push repository:base/img:pull"
        );
        assert_eq!(push_scope("a/b", Some("a/b")), "repository:a/b:pull,push");
    }

    #[test]
    fn locations_relative_absolute_and_query() {
        let req = Url::parse("http://127.0.0.1:5000/v2/team/app/blobs/uploads/").expect("url");
        let rel = resolve_location(&req, "/v2/team/app/blobs/uploads/abc?_state=x%2By").expect("relative");
        assert_eq!(
            rel.as_str(),
            "http://127.0.0.1:5000/v2/team/app/blobs/uploads/abc?_state=x%2By"
        );
        let abs = resolve_location(&req, "https://uploads.example/u/1?sig=1").expect("absolute");
        assert_eq!(abs.as_str(), "https://uploads.example/u/1?sig=1");
        let d = Digest::of(b"x");
        let done = with_digest(&rel, &d);
        assert_eq!(
            done.query(),
            Some(format!("_state=x%2By&digest=sha256%3A{}", d.hex()).as_str())
        );
        let bare = with_digest(&Url::parse("http://r/v2/a/blobs/uploads/u").expect("url"), &d);
        assert_eq!(
            bare.query_pairs().next().map(|(k, v)| (k.into_owned(), v.into_owned())),
            Some(("digest".into(), d.to_string()))
        );
        assert!(resolve_location(&req, "http://[bad").is_err());
    }

    #[test]
    fn chunking() {
        assert_eq!(chunks(0, 4), vec![]);
        assert_eq!(chunks(4, 4), vec![(0, 4)]);
        assert_eq!(chunks(10, 4), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(chunks(3, 0), vec![(0, 1), (1, 2), (2, 3)]);
        assert_eq!(content_range(0, 4), "0-3");
        assert_eq!(content_range(8, 10), "8-9");
        let total: u64 = chunks(CHUNK_SIZE * 2 + 5, CHUNK_SIZE).iter().map(|(s, e)| e - s).sum();
        assert_eq!(total, CHUNK_SIZE * 2 + 5);
    }
}
