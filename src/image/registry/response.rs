//! Response bodies read within a limit, and transport errors spelled out in full.

use super::error::RegistryError;

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

pub(super) async fn body_snippet(response: reqwest::Response) -> String {
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
