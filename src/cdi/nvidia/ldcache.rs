//! Reader for glibc's `/etc/ld.so.cache`.
//!
//! Two layouts are accepted:
//!
//! * the current one, starting with `glibc-ld.so.cache1.1`: a 48-byte header (magic and version, number of entries,
//!   size of the string table, an endianness byte, padding, the offset of an extension area and three unused words)
//!   followed by 24-byte entries `{flags: i32, key: u32, value: u32, osversion: u32, hwcap: u64}`; `key` (the soname)
//!   and `value` (the library path) are offsets of NUL-terminated strings, counted from the start of that header
//!   (which is the start of the file when the file holds only this layout);
//! * the legacy compound one, starting with `ld.so-1.7.0`: a 16-byte header and 12-byte entries, followed (at the
//!   next 8-byte boundary) by a complete table in the current layout, which is what is read.
//!
//! A file holding only the legacy table is rejected; glibc has not written such files for well over a decade.

use std::io;
use std::path::{Path, PathBuf};

const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_HEADER_LEN: usize = 48;
const NEW_ENTRY_LEN: usize = 24;
const OLD_HEADER_LEN: usize = 16;
const OLD_ENTRY_LEN: usize = 12;

/// Endianness byte values of the current layout (`flags` field of the header).
const ENDIAN_LITTLE: u8 = 2;
const ENDIAN_BIG: u8 = 3;

/// One library known to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheEntry {
    /// Entry flags: the low byte is the library type (3 = ELF for libc6), the next byte the architecture
    /// (0x03 = x86-64, 0x0a = AArch64, 0 = the default one, e.g. i386).
    pub flags: i32,
    /// The library's soname, e.g. `libcuda.so.1`.
    pub soname: String,
    /// Where the library lives, an absolute path inside the root the cache belongs to.
    pub path: PathBuf,
}

/// Reads and parses a cache file.
pub(crate) fn read(path: &Path) -> io::Result<Vec<CacheEntry>> {
    let data = std::fs::read(path)?;
    parse(&data)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("ld.so.cache: {}", msg.into()))
}

fn u32_at(data: &[u8], off: usize) -> io::Result<u32> {
    let bytes = data
        .get(off..off + 4)
        .ok_or_else(|| invalid(format!("truncated at offset {off}")))?;
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    Ok(u32::from_ne_bytes(buf))
}

fn str_at(data: &[u8], base: usize, off: u32) -> io::Result<&str> {
    let start = base
        .checked_add(off as usize)
        .filter(|s| *s < data.len())
        .ok_or_else(|| invalid(format!("string offset {off} out of range")))?;
    let len = data[start..]
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| invalid("unterminated string"))?;
    std::str::from_utf8(&data[start..start + len]).map_err(|_| invalid("string is not UTF-8"))
}

/// Parses the contents of a cache file.
pub(crate) fn parse(data: &[u8]) -> io::Result<Vec<CacheEntry>> {
    let base = if data.starts_with(NEW_MAGIC) {
        0
    } else if data.starts_with(OLD_MAGIC) {
        let old_count = u32_at(data, 12)? as usize;
        let end = old_count
            .checked_mul(OLD_ENTRY_LEN)
            .and_then(|n| n.checked_add(OLD_HEADER_LEN))
            .ok_or_else(|| invalid("legacy entry count overflows"))?;
        let aligned = end.div_ceil(8) * 8;
        if data.get(aligned..).is_some_and(|rest| rest.starts_with(NEW_MAGIC)) {
            aligned
        } else {
            return Err(invalid("legacy-only cache format is not supported"));
        }
    } else {
        return Err(invalid("unknown magic"));
    };

    let endian = *data.get(base + 28).ok_or_else(|| invalid("truncated header"))?;
    let native = if cfg!(target_endian = "big") {
        ENDIAN_BIG
    } else {
        ENDIAN_LITTLE
    };
    if endian != 0 && endian != native {
        return Err(invalid("cache was written for the other byte order"));
    }
    let count = u32_at(data, base + 20)? as usize;
    let table_end = count
        .checked_mul(NEW_ENTRY_LEN)
        .and_then(|n| n.checked_add(base + NEW_HEADER_LEN))
        .ok_or_else(|| invalid("entry count overflows"))?;
    if table_end > data.len() {
        return Err(invalid(format!("{count} entries do not fit in {} bytes", data.len())));
    }

    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let off = base + NEW_HEADER_LEN + i * NEW_ENTRY_LEN;
        let flags = u32_at(data, off)? as i32;
        let key = u32_at(data, off + 4)?;
        let value = u32_at(data, off + 8)?;
        entries.push(CacheEntry {
            flags,
            soname: str_at(data, base, key)?.to_string(),
            path: PathBuf::from(str_at(data, base, value)?),
        });
    }
    Ok(entries)
}

#[cfg(test)]
/// Builds a current-layout table holding `libs` (soname, path); string offsets are relative to its start.
pub(crate) fn new_table(libs: &[(&str, &str)]) -> Vec<u8> {
    let strings_start = NEW_HEADER_LEN + libs.len() * NEW_ENTRY_LEN;
    let mut strings = Vec::new();
    let mut offsets = Vec::new();
    for (key, value) in libs {
        let k = strings_start + strings.len();
        strings.extend_from_slice(key.as_bytes());
        strings.push(0);
        let v = strings_start + strings.len();
        strings.extend_from_slice(value.as_bytes());
        strings.push(0);
        offsets.push((k as u32, v as u32));
    }
    let mut out = Vec::new();
    out.extend_from_slice(NEW_MAGIC);
    out.extend_from_slice(&(libs.len() as u32).to_ne_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_ne_bytes());
    out.push(if cfg!(target_endian = "big") {
        ENDIAN_BIG
    } else {
        ENDIAN_LITTLE
    });
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(&0u32.to_ne_bytes()); // extension offset
    out.extend_from_slice(&[0u8; 12]); // unused
    assert_eq!(out.len(), NEW_HEADER_LEN);
    for (k, v) in offsets {
        out.extend_from_slice(&0x0303i32.to_ne_bytes());
        out.extend_from_slice(&k.to_ne_bytes());
        out.extend_from_slice(&v.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&0u64.to_ne_bytes());
    }
    out.extend_from_slice(&strings);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::process::Command;

    #[test]
    fn parses_new_format() {
        let data = new_table(&[
            ("libcuda.so.1", "/usr/lib/libcuda.so.1"),
            ("libz.so.1", "/lib/libz.so.1"),
        ]);
        let entries = parse(&data).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].soname, "libcuda.so.1");
        assert_eq!(entries[0].path, PathBuf::from("/usr/lib/libcuda.so.1"));
        assert_eq!(entries[0].flags, 0x0303);
        assert_eq!(entries[1].path, PathBuf::from("/lib/libz.so.1"));
    }

    #[test]
    fn parses_compound_old_and_new_format() {
        // Legacy header with 3 entries (their content is ignored): 16 + 36 = 52, aligned to 56.
        let mut data = Vec::new();
        data.extend_from_slice(OLD_MAGIC);
        data.push(0);
        data.extend_from_slice(&3u32.to_ne_bytes());
        data.extend_from_slice(&[0u8; 36]);
        data.extend_from_slice(&[0u8; 4]);
        assert_eq!(data.len(), 56);
        data.extend_from_slice(&new_table(&[("libnvidia-ml.so.1", "/usr/lib64/libnvidia-ml.so.1")]));
        let entries = parse(&data).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].soname, "libnvidia-ml.so.1");
        assert_eq!(entries[0].path, PathBuf::from("/usr/lib64/libnvidia-ml.so.1"));
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(parse(b"not a cache").is_err());
        assert!(parse(b"").is_err());
        let data = new_table(&[("a.so", "/a.so")]);
        assert!(parse(&data[..NEW_HEADER_LEN + 4]).is_err());
        let mut legacy_only = Vec::new();
        legacy_only.extend_from_slice(OLD_MAGIC);
        legacy_only.push(0);
        legacy_only.extend_from_slice(&0u32.to_ne_bytes());
        assert!(parse(&legacy_only).is_err());
    }

    /// Compares the parser with `ldconfig -p` on this machine's real cache.
    #[test]
    fn matches_ldconfig_p() {
        let cache = Path::new("/etc/ld.so.cache");
        let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists());
        let (true, Some(ldconfig)) = (cache.exists(), ldconfig) else {
            eprintln!("no /etc/ld.so.cache or ldconfig here; skipping");
            return;
        };
        let out = Command::new(ldconfig).arg("-p").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let expected: BTreeSet<(String, String)> = text
            .lines()
            .filter_map(|l| {
                let (left, path) = l.split_once(" => ")?;
                let soname = left.trim().split(" (").next()?;
                Some((soname.to_string(), path.trim().to_string()))
            })
            .collect();
        let entries = read(cache).unwrap();
        let got: BTreeSet<(String, String)> = entries
            .iter()
            .map(|e| (e.soname.clone(), e.path.to_string_lossy().into_owned()))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected);
        // `ldconfig -p` announces the entry count on its first line.
        let announced: usize = text.split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(entries.len(), announced);
    }
}
