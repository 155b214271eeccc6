//! Reading an eStargz blob piecewise, as a lazy reader does: the footer gives the TOC's
//! offset, the TOC is checked against the digest the manifest carries, and each chunk is
//! decompressed from its own member and checked against the TOC before it is returned.

use std::io::Read;

use flate2::read::GzDecoder;

use super::{Chunk, Toc, TocEntry, FOOTER_SIZE, TOC_NAME};
use crate::digest::Digest;

/// The largest TOC accepted, uncompressed.
pub const MAX_TOC: u64 = 64 << 20;
/// The largest chunk accepted, uncompressed (writers chunk at 4 MiB by default).
pub const MAX_CHUNK: u64 = 64 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TocError {
    #[error("not an eStargz blob: {0}")]
    NotEstargz(String),
    #[error("the eStargz TOC is malformed: {0}")]
    Malformed(String),
    #[error("the eStargz TOC has digest {actual}, the manifest says {expected}")]
    TocDigest { expected: String, actual: String },
    #[error("{name} at {offset}: chunk digest {actual}, the TOC says {expected}")]
    ChunkDigest {
        name: String,
        offset: u64,
        expected: String,
        actual: String,
    },
}

/// The TOC's offset, from the blob's last 51 bytes.
pub fn footer_offset(footer: &[u8]) -> Result<u64, TocError> {
    let bad = |why: &str| TocError::NotEstargz(why.to_string());
    if footer.len() != FOOTER_SIZE {
        return Err(bad("the footer is not 51 bytes"));
    }
    if footer[..4] != [0x1f, 0x8b, 8, 4] || footer[12..14] != *b"SG" || footer[32..38] != *b"STARGZ" {
        return Err(bad("no eStargz footer"));
    }
    if u16::from_le_bytes([footer[10], footer[11]]) != 26 || u16::from_le_bytes([footer[14], footer[15]]) != 22 {
        return Err(bad("the footer's extra field has the wrong length"));
    }
    let hex = std::str::from_utf8(&footer[16..32]).map_err(|_| bad("the TOC offset is not hex"))?;
    u64::from_str_radix(hex, 16).map_err(|_| bad("the TOC offset is not hex"))
}

/// The TOC from `member` (the blob from the TOC's offset on, footer excluded), checked
/// against `expected` (the layer's TOC digest annotation).
pub fn read_toc(member: &[u8], expected: &Digest) -> Result<Toc, TocError> {
    let mut archive = tar::Archive::new(GzDecoder::new(member));
    let mut entries = archive.entries().map_err(|e| TocError::Malformed(e.to_string()))?;
    let mut entry = entries
        .next()
        .ok_or_else(|| TocError::Malformed("no tar entry".into()))?
        .map_err(|e| TocError::Malformed(e.to_string()))?;
    let path = entry.path_bytes().into_owned();
    if path != TOC_NAME.as_bytes() {
        return Err(TocError::Malformed(format!(
            "the entry is {:?}, not {TOC_NAME}",
            String::from_utf8_lossy(&path)
        )));
    }
    if entry.size() > MAX_TOC {
        return Err(TocError::Malformed(format!("{} bytes, over {MAX_TOC}", entry.size())));
    }
    let mut json = Vec::with_capacity(entry.size().min(1 << 20) as usize);
    (&mut entry)
        .take(MAX_TOC)
        .read_to_end(&mut json)
        .map_err(|e| TocError::Malformed(e.to_string()))?;
    let actual = Digest::of(&json);
    if actual != *expected {
        return Err(TocError::TocDigest {
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    let toc: Toc = serde_json::from_slice(&json).map_err(|e| TocError::Malformed(e.to_string()))?;
    if toc.version != 1 {
        return Err(TocError::Malformed(format!("version {}", toc.version)));
    }
    Ok(toc)
}

/// The uncompressed bytes of the chunk `entry` (a `reg` or `chunk` entry of a file of
/// `file_size` bytes) from `member`, the blob from the entry's offset on; checked against
/// the entry's chunk digest.
pub fn chunk(member: &[u8], entry: &TocEntry, file_size: u64) -> Result<Vec<u8>, TocError> {
    let len = if entry.chunk_size == 0 {
        file_size.saturating_sub(entry.chunk_offset)
    } else {
        entry.chunk_size
    };
    if len > MAX_CHUNK {
        return Err(TocError::Malformed(format!(
            "{}: a chunk of {len} bytes (at most {MAX_CHUNK})",
            entry.name
        )));
    }
    checked(member, len, &entry.chunk_digest, &entry.name, entry.offset)
}

/// The uncompressed bytes of `chunk` of the file `name` from `member` (the blob from the
/// chunk's member on), checked against the chunk's digest.
pub fn inflate(member: &[u8], chunk: &Chunk, name: &str) -> Result<Vec<u8>, TocError> {
    checked(member, chunk.len, &chunk.digest, name, chunk.member.start)
}

fn checked(member: &[u8], len: u64, digest: &str, name: &str, offset: u64) -> Result<Vec<u8>, TocError> {
    let mut data = Vec::with_capacity(len.min(1 << 20) as usize);
    GzDecoder::new(member)
        .take(len)
        .read_to_end(&mut data)
        .map_err(|e| TocError::Malformed(format!("{name}: {e}")))?;
    let actual = Digest::of(&data);
    if data.len() as u64 != len || actual.as_str() != digest {
        return Err(TocError::ChunkDigest {
            name: name.to_string(),
            offset,
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(data)
}
