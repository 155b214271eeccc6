//! Byte ranges of blobs: the `Range` header asked for and the `Content-Range` a registry
//! answers with. A lazy reader fetches closed ranges and takes nothing but a 206 that
//! names exactly the range asked for; a resumed download asks from a byte on.

use reqwest::header::CONTENT_RANGE;
use reqwest::StatusCode;

use super::{read_limited, PullAuth, RegistryClient, RegistryError};
use crate::digest::Digest;
use crate::image::reference::Reference;

/// The bytes asked for: from `start`, to `end` inclusive or to the blob's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl ByteRange {
    pub(super) fn header(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }
}

/// A `Content-Range: bytes START-END/TOTAL` value (`TOTAL` may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

impl ContentRange {
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes ")?;
        let (span, total) = rest.split_once('/')?;
        let (start, end) = span.split_once('-')?;
        let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        (start <= end && total.is_none_or(|t| end < t)).then_some(ContentRange { start, end, total })
    }

    pub fn of(response: &reqwest::Response) -> Option<ContentRange> {
        let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
        ContentRange::parse(value)
    }
}

impl RegistryClient {
    /// Bytes `start..end` of the blob `digest` of `size` bytes. Only a 206 whose
    /// Content-Range is that range (of a blob of that size) with a body of that length is
    /// taken; a registry that answers 200 does not serve ranges, and that is an error
    /// the caller can fall back on (a whole pull).
    pub async fn get_blob_range(
        &self,
        reference: &Reference,
        auth: &PullAuth,
        digest: &Digest,
        size: u64,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, RegistryError> {
        if range.start >= range.end || range.end > size {
            return Err(RegistryError::Protocol(format!(
                "bytes {}..{} of a {size}-byte blob",
                range.start, range.end
            )));
        }
        let asked = ByteRange {
            start: range.start,
            end: Some(range.end - 1),
        };
        let path = format!("blobs/{digest}");
        let fetched = self.get_ranged(reference, auth, &path, &[], false, Some(asked)).await?;
        let response = fetched.response;
        let url = response.url().to_string();
        if response.status() != StatusCode::PARTIAL_CONTENT {
            return Err(RegistryError::NoRanges(format!(
                "{url}: asked for bytes {}-{}, the registry answered {} (it does not serve byte ranges)",
                range.start,
                range.end - 1,
                response.status()
            )));
        }
        let exact =
            |a: ContentRange| a.start == asked.start && Some(a.end) == asked.end && a.total.is_none_or(|t| t == size);
        if !ContentRange::of(&response).is_some_and(exact) {
            return Err(RegistryError::Protocol(format!(
                "{url}: asked for bytes {}-{}/{size}, the registry answered Content-Range {:?}",
                range.start,
                range.end - 1,
                response.headers().get(CONTENT_RANGE)
            )));
        }
        let len = range.end - range.start;
        let body = read_limited(response, len).await?;
        if body.len() as u64 != len {
            return Err(RegistryError::Protocol(format!(
                "{url}: asked for {len} bytes, the registry sent {}",
                body.len()
            )));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        let r = |start, end, total| Some(ContentRange { start, end, total });
        assert_eq!(ContentRange::parse("bytes 600-999/1000"), r(600, 999, Some(1000)));
        assert_eq!(ContentRange::parse("bytes 0-9/*"), r(0, 9, None));
        assert_eq!(ContentRange::parse("bytes */1000"), None);
        assert_eq!(ContentRange::parse("bytes 9-0/10"), None);
        assert_eq!(ContentRange::parse("bytes 0-10/10"), None);
        assert_eq!(ContentRange::parse(""), None);
        assert_eq!(ContentRange::parse("items 1-2/3"), None);
    }

    #[test]
    fn range_headers() {
        let closed = ByteRange { start: 5, end: Some(9) };
        assert_eq!(closed.header(), "bytes=5-9");
        assert_eq!(ByteRange { start: 5, end: None }.header(), "bytes=5-");
    }
}
