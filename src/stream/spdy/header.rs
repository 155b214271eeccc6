//! SPDY/3 name/value header blocks and their per-direction zlib contexts.
//!
//! A block is a 32-bit count followed by that many (32-bit length, name, 32-bit length, value) pairs.
//! A value may carry several values separated by NUL. Blocks are zlib-compressed with the fixed SPDY/3
//! dictionary, and one compression stream runs across all blocks of one direction of a connection.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest decompressed header block accepted by [`HeaderDecoder`] by default.
pub const MAX_BLOCK_SIZE: usize = 256 * 1024;
/// Largest number of header values (after NUL splitting) accepted in one block.
pub const MAX_HEADER_COUNT: usize = 1024;

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
];

const TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized",
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
);

/// Length of the SPDY/3 header compression dictionary.
pub const DICTIONARY_LEN: usize = 1423;

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): length-prefixed words, then a
/// text tail. Built at compile time; a wrong length fails the build.
pub static SPDY_DICTIONARY: [u8; DICTIONARY_LEN] = build_dictionary();

const fn build_dictionary() -> [u8; DICTIONARY_LEN] {
    let mut out = [0u8; DICTIONARY_LEN];
    let mut pos = 0;
    let mut i = 0;
    while i < WORDS.len() {
        let w = WORDS[i].as_bytes();
        let len = (w.len() as u32).to_be_bytes();
        let mut k = 0;
        while k < 4 {
            out[pos] = len[k];
            pos += 1;
            k += 1;
        }
        k = 0;
        while k < w.len() {
            out[pos] = w[k];
            pos += 1;
            k += 1;
        }
        i += 1;
    }
    let t = TAIL.as_bytes();
    let mut k = 0;
    while k < t.len() {
        out[pos] = t[k];
        pos += 1;
        k += 1;
    }
    assert!(pos == DICTIONARY_LEN, "SPDY/3 dictionary length mismatch");
    out
}

/// Errors from encoding or decoding header blocks. A decoding error leaves the connection's
/// decompression context unusable: the connection must be torn down.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header compression failed: {0}")]
    Compress(String),
    #[error("header decompression failed: {0}")]
    Decompress(String),
    #[error("decompressed header block exceeds {0} bytes")]
    TooLarge(usize),
    #[error("header block holds more than {0} headers")]
    TooMany(usize),
    #[error("malformed header block: {0}")]
    Malformed(&'static str),
}

/// An ordered multi-map of headers. Names are stored lower-cased; lookups are case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value, keeping existing values of the same name.
    pub fn append(&mut self, name: &str, value: &str) {
        self.entries.push((name.to_ascii_lowercase(), value.to_owned()));
    }

    /// Replaces all values of `name` with `value`.
    pub fn insert(&mut self, name: &str, value: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.append(name, value);
    }

    /// First value of `name`, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of `name`, case-insensitively, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All (name, value) pairs in order; names are lower-case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The uncompressed block: values of one name are joined with NUL under a single name.
    pub fn to_block(&self) -> Vec<u8> {
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for (n, v) in &self.entries {
            match groups.iter_mut().find(|(g, _)| *g == n.as_str()) {
                Some((_, vals)) => vals.push(v),
                None => groups.push((n, vec![v])),
            }
        }
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&(groups.len() as u32).to_be_bytes());
        for (name, vals) in groups {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            let value = vals.join("\0");
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses an uncompressed block.
    pub fn from_block(raw: &[u8]) -> Result<Self, HeaderError> {
        let mut cur = raw;
        let count = take_u32(&mut cur)? as usize;
        if count > MAX_HEADER_COUNT {
            return Err(HeaderError::TooMany(MAX_HEADER_COUNT));
        }
        let mut headers = Headers::new();
        for _ in 0..count {
            let name = take_str(&mut cur)?;
            if name.is_empty() {
                return Err(HeaderError::Malformed("empty header name"));
            }
            let name = name.to_ascii_lowercase();
            let value = take_str(&mut cur)?;
            for v in value.split('\0') {
                if headers.entries.len() >= MAX_HEADER_COUNT {
                    return Err(HeaderError::TooMany(MAX_HEADER_COUNT));
                }
                headers.entries.push((name.clone(), v.to_owned()));
            }
        }
        if !cur.is_empty() {
            return Err(HeaderError::Malformed("trailing bytes after the last header"));
        }
        Ok(headers)
    }
}

fn take_u32(cur: &mut &[u8]) -> Result<u32, HeaderError> {
    let (head, rest) = cur
        .split_first_chunk::<4>()
        .ok_or(HeaderError::Malformed("truncated length field"))?;
    *cur = rest;
    Ok(u32::from_be_bytes(*head))
}

fn take_str(cur: &mut &[u8]) -> Result<String, HeaderError> {
    let len = take_u32(cur)? as usize;
    if len > cur.len() {
        return Err(HeaderError::Malformed("length field runs past the block"));
    }
    let (s, rest) = cur.split_at(len);
    *cur = rest;
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// Compression context for one direction (the headers this side sends).
pub struct HeaderEncoder {
    z: Compress,
    primed: bool,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    pub fn new() -> Self {
        Self {
            z: Compress::new(Compression::default(), true),
            primed: false,
        }
    }

    /// Compresses one block and sync-flushes, so the peer can decode it on its own.
    pub fn encode(&mut self, headers: &Headers) -> Result<Vec<u8>, HeaderError> {
        if !self.primed {
            self.z
                .set_dictionary(&SPDY_DICTIONARY)
                .map_err(|e| HeaderError::Compress(e.to_string()))?;
            self.primed = true;
        }
        let raw = headers.to_block();
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 32 {
                out.reserve(out.capacity().max(256));
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Compress(e.to_string()))?;
            pos += (self.z.total_in() - before) as usize;
            if pos == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompression context for one direction (the headers the peer sends).
pub struct HeaderDecoder {
    z: Decompress,
    max: usize,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecoder {
    pub fn new() -> Self {
        Self::with_limit(MAX_BLOCK_SIZE)
    }

    /// `max` bounds the decompressed size of one block.
    pub fn with_limit(max: usize) -> Self {
        Self {
            z: Decompress::new(true),
            max,
        }
    }

    /// Decodes one compressed block. An empty input yields empty headers without touching the stream.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        if block.is_empty() {
            return Ok(Headers::new());
        }
        let raw = self.inflate(block)?;
        Headers::from_block(&raw)
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let limit = self.max + 1;
        let mut out = Vec::with_capacity((input.len() * 4).clamp(256, limit));
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(HeaderError::TooLarge(self.max));
                }
                out.reserve_exact(out.capacity().min(limit - out.len()).max(1));
            }
            let (before_in, before_out) = (self.z.total_in(), out.len());
            let res = self.z.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.z.total_in() - before_in) as usize;
            match res {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(_) => {
                        self.z
                            .set_dictionary(&SPDY_DICTIONARY)
                            .map_err(|e| HeaderError::Decompress(e.to_string()))?;
                        continue;
                    }
                    None => return Err(HeaderError::Decompress(e.to_string())),
                },
            }
            if out.len() > self.max {
                return Err(HeaderError::TooLarge(self.max));
            }
            let room = out.len() < out.capacity();
            if pos == input.len() && room {
                break;
            }
            if room && self.z.total_in() == before_in && out.len() == before_out {
                return Err(HeaderError::Malformed("compressed header block makes no progress"));
            }
        }
        if out.len() > self.max {
            return Err(HeaderError::TooLarge(self.max));
        }
        Ok(out)
    }
}
