//! An uncompressed layer tar, rewritten as an eStargz blob. The tar's own bytes are kept
//! (headers, extension records, padding) so the blob decompresses to the same entries,
//! with a landmark entry first and the TOC entry last.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

use super::{Toc, TocEntry, DEFAULT_CHUNK_SIZE, NO_PREFETCH_LANDMARK, TOC_NAME};
use crate::digest::{Digest, Hashing};

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// Digest and size of the compressed blob.
    pub digest: Digest,
    pub size: u64,
    /// Digest and size of the uncompressed tar (the layer's diff id).
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    /// Digest of the TOC JSON.
    pub toc_digest: Digest,
}

/// The blob being written: one gzip member open at a time, the uncompressed bytes hashed.
struct Members<W: Write> {
    open: Option<GzEncoder<Hashing<W>>>,
    closed: Option<Hashing<W>>,
    tar: Sha256,
    tar_size: u64,
}

impl<W: Write> Members<W> {
    fn new(out: W) -> Members<W> {
        let blob = Hashing::new(out);
        Members {
            open: Some(GzEncoder::new(blob, flate2::Compression::default())),
            closed: None,
            tar: Sha256::new(),
            tar_size: 0,
        }
    }

    /// Ends the open member; returns the blob.
    fn close(&mut self) -> io::Result<&mut Hashing<W>> {
        if let Some(gz) = self.open.take() {
            self.closed = Some(gz.finish()?);
        }
        Ok(self.closed.as_mut().expect("a member was closed"))
    }

    /// Starts a new member and returns its offset in the blob.
    fn start(&mut self) -> io::Result<u64> {
        self.close()?;
        let blob = self.closed.take().expect("closed above");
        let offset = blob.written();
        self.open = Some(GzEncoder::new(blob, flate2::Compression::default()));
        Ok(offset)
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        if self.open.is_none() {
            self.start()?;
        }
        self.open.as_mut().expect("opened above").write_all(data)?;
        self.tar.update(data);
        self.tar_size += data.len() as u64;
        Ok(())
    }
}

/// The 51-byte footer pointing at the TOC's member.
pub(super) fn footer(toc_offset: u64) -> [u8; super::FOOTER_SIZE] {
    let mut f = [0u8; super::FOOTER_SIZE];
    f[..4].copy_from_slice(&[0x1f, 0x8b, 8, 4]); // gzip, deflate, FEXTRA
    f[9] = 255; // OS unknown
    f[10..12].copy_from_slice(&26u16.to_le_bytes());
    f[12..14].copy_from_slice(b"SG");
    f[14..16].copy_from_slice(&22u16.to_le_bytes());
    f[16..38].copy_from_slice(format!("{toc_offset:016x}STARGZ").as_bytes());
    f[38..43].copy_from_slice(&[1, 0, 0, 0xff, 0xff]); // final stored block, length 0
    f
}

/// `secs` since the epoch in RFC 3339, UTC, whole seconds.
fn rfc3339(secs: u64) -> String {
    if secs == 0 {
        return String::new();
    }
    let (y, m, d) = berth_shim::timefmt::civil_from_days((secs / 86400) as i64);
    let t = secs % 86400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

fn kind(entry_type: tar::EntryType) -> io::Result<&'static str> {
    use tar::EntryType as T;
    Ok(match entry_type {
        T::Regular | T::Continuous => "reg",
        T::Directory => "dir",
        T::Symlink => "symlink",
        T::Link => "hardlink",
        T::Char => "char",
        T::Block => "block",
        T::Fifo => "fifo",
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("tar entry type {other:?} cannot be written as eStargz"),
            ))
        }
    })
}

/// Names as the TOC records them: without a leading `./` or `/`.
fn clean(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    s.trim_start_matches("./").trim_start_matches('/').to_string()
}

/// Extension records (PAX `x`, GNU long names) apply to the next real entry.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    xattrs: std::collections::BTreeMap<String, String>,
    size: Option<u64>,
}

fn pax(data: &[u8], pending: &mut Pending) -> io::Result<()> {
    use base64::Engine as _;
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext?;
        let key = ext.key().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match key {
            "path" => pending.path = Some(ext.value_bytes().to_vec()),
            "linkpath" => pending.link = Some(ext.value_bytes().to_vec()),
            "size" => pending.size = ext.value().ok().and_then(|v| v.parse().ok()),
            k if k.starts_with("SCHILY.xattr.") => {
                let name = k["SCHILY.xattr.".len()..].to_string();
                let value = base64::engine::general_purpose::STANDARD.encode(ext.value_bytes());
                pending.xattrs.insert(name, value);
            }
            _ => {}
        }
    }
    Ok(())
}

fn regular_header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// Writes a regular file's contents from `entry`, a new gzip member at each chunk; returns
/// the file's TOC entry `first` (its first chunk) and one `chunk` entry for each further one.
fn put_chunks<W: Write>(
    m: &mut Members<W>,
    entry: &mut impl Read,
    first: TocEntry,
    chunk_size: u64,
    buf: &mut [u8],
) -> io::Result<Vec<TocEntry>> {
    let (name, size) = (first.name.clone(), first.size);
    let mut whole = Sha256::new();
    let mut first = Some(first);
    let mut chunks = Vec::new();
    let mut at = 0u64;
    while at < size {
        let this = chunk_size.min(size - at);
        let offset = m.start()?;
        let mut chunk = Sha256::new();
        let mut left = this;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = entry.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name}: the tar ends inside it"),
                ));
            }
            m.put(&buf[..n])?;
            chunk.update(&buf[..n]);
            whole.update(&buf[..n]);
            left -= n as u64;
        }
        let mut c = first.take().unwrap_or_else(|| TocEntry {
            name: name.clone(),
            kind: "chunk".into(),
            ..Default::default()
        });
        c.offset = offset;
        c.chunk_offset = at;
        c.chunk_size = if at + this == size { 0 } else { this };
        c.chunk_digest = Digest::from_sha256(chunk.finalize().into()).to_string();
        chunks.push(c);
        at += this;
    }
    chunks[0].digest = Digest::from_sha256(whole.finalize().into()).to_string();
    Ok(chunks)
}

/// Rewrites the uncompressed layer `tar` into `out` as eStargz, splitting regular files
/// into chunks of `chunk_size` bytes (0: the default).
pub fn write<R: Read, W: Write>(tar: R, out: W, chunk_size: u64) -> io::Result<(W, Converted)> {
    let chunk_size = if chunk_size == 0 {
        DEFAULT_CHUNK_SIZE
    } else {
        chunk_size
    };
    let mut m = Members::new(out);
    let mut entries = Vec::new();

    // No file is marked for prefetching: the landmark says so, first.
    let landmark = regular_header(NO_PREFETCH_LANDMARK, 1)?;
    m.put(landmark.as_bytes())?;
    let offset = m.start()?;
    m.put(&[0xf])?;
    m.put(&[0u8; 511])?;
    entries.push(TocEntry {
        name: NO_PREFETCH_LANDMARK.into(),
        kind: "reg".into(),
        size: 1,
        mode: 0o644,
        digest: Digest::of(&[0xf]).to_string(),
        chunk_digest: Digest::of(&[0xf]).to_string(),
        offset,
        ..Default::default()
    });

    let mut archive = tar::Archive::new(tar);
    let mut pending = Pending::default();
    let mut buf = vec![0u8; 64 << 10];
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let header = entry.header().clone();
        let entry_type = header.entry_type();
        let size = entry.size();
        m.put(header.as_bytes())?;
        let is_extension = matches!(
            entry_type,
            tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink
        );
        if is_extension || entry_type == tar::EntryType::XGlobalHeader {
            if size > 1 << 20 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a tar extension record over 1 MiB",
                ));
            }
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry).take(size).read_to_end(&mut data)?;
            m.put(&data)?;
            m.put(&vec![0u8; padding(size)])?;
            match entry_type {
                tar::EntryType::XHeader => pax(&data, &mut pending)?,
                tar::EntryType::GNULongName => {
                    pending.path = Some(data.split(|b| *b == 0).next().unwrap_or_default().to_vec())
                }
                tar::EntryType::GNULongLink => {
                    pending.link = Some(data.split(|b| *b == 0).next().unwrap_or_default().to_vec())
                }
                _ => {}
            }
            continue;
        }
        let p = std::mem::take(&mut pending);
        let name = clean(&p.path.unwrap_or_else(|| header.path_bytes().into_owned()));
        let link_name = p
            .link
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let kind = kind(entry_type)?;
        if p.size.is_some_and(|s| s != size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: a PAX size record other than the header's"),
            ));
        }
        let mut e = TocEntry {
            name: name.clone(),
            kind: kind.into(),
            modtime: rfc3339(header.mtime().unwrap_or(0)),
            link_name: if kind == "hardlink" {
                clean(link_name.as_bytes())
            } else {
                link_name
            },
            mode: header.mode().unwrap_or(0),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            user_name: header.username().ok().flatten().unwrap_or("").to_string(),
            group_name: header.groupname().ok().flatten().unwrap_or("").to_string(),
            dev_major: header.device_major().ok().flatten().unwrap_or(0).into(),
            dev_minor: header.device_minor().ok().flatten().unwrap_or(0).into(),
            xattrs: p.xattrs,
            ..Default::default()
        };
        if kind == "reg" && size > 0 {
            e.size = size;
            entries.extend(put_chunks(&mut m, &mut entry, e, chunk_size, &mut buf)?);
        } else {
            // A payload on a non-regular entry is kept in the tar, not in the TOC.
            io::copy(&mut (&mut entry).take(size), &mut m)?;
            entries.push(e);
        }
        m.put(&vec![0u8; padding(size)])?;
    }

    let toc = serde_json::to_vec(&Toc { version: 1, entries }).map_err(io::Error::other)?;
    let toc_digest = Digest::of(&toc);
    let toc_offset = m.start()?;
    m.put(regular_header(TOC_NAME, toc.len() as u64)?.as_bytes())?;
    m.put(&toc)?;
    m.put(&vec![0u8; padding(toc.len() as u64)])?;
    m.put(&[0u8; 1024])?;
    let blob = m.close()?;
    blob.write_all(&footer(toc_offset))?;
    blob.flush()?;
    let (out, digest, size) = m.closed.take().expect("closed above").finish();
    let converted = Converted {
        digest,
        size,
        diff_id: Digest::from_sha256(m.tar.finalize().into()),
        uncompressed_size: m.tar_size,
        toc_digest,
    };
    Ok((out, converted))
}

/// Writes into the open member (entry payloads that are not chunked).
impl<W: Write> Write for Members<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
