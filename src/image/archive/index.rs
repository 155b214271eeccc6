//! Reading an archive: one pass over the tar records where each member's data lies, with
//! every path checked; members are then read by offset, never extracted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::image::reference::Digest;
use crate::image::ImageError;

/// Most members an archive may hold.
const MAX_MEMBERS: usize = 100_000;

/// Where one member's data is in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub offset: u64,
    pub size: u64,
}

/// The regular files of an archive, by normalised path.
#[derive(Debug)]
pub struct ArchiveIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
}

fn invalid(message: impl Into<String>) -> ImageError {
    ImageError::Invalid(format!("image archive: {}", message.into()))
}

/// Normalises a member path (`./a/b` is `a/b`; a trailing `/` is dropped) and refuses
/// absolute paths, `..`, empty names and NUL bytes.
pub fn clean_path(raw: &str) -> Result<String, ImageError> {
    if raw.starts_with('/') {
        return Err(invalid(format!("absolute path {raw:?}")));
    }
    if raw.contains('\0') || raw.contains('\\') {
        return Err(invalid(format!("bad character in path {raw:?}")));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid(format!("path {raw:?} climbs out of the archive"))),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(invalid(format!("empty path {raw:?}")));
    }
    Ok(parts.join("/"))
}

impl ArchiveIndex {
    /// Indexes the tar at `path`. Only regular files and directories are accepted; a member
    /// over `max_member` bytes, a duplicate path or more than 100 000 members are errors.
    pub fn read(path: &Path, max_member: u64) -> Result<ArchiveIndex, ImageError> {
        let file = File::open(path).map_err(|e| ImageError::Internal(format!("{}: {e}", path.display())))?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut members = HashMap::new();
        let entries = archive
            .entries()
            .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| invalid(format!("corrupt tar: {e}")))?;
            let raw = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| invalid("a member's path is not UTF-8"))?;
            let name = clean_path(&raw)?;
            match entry.header().entry_type() {
                tar::EntryType::Directory => continue,
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                other => return Err(invalid(format!("{name:?}: unsupported member type {other:?}"))),
            }
            let size = entry.size();
            if size > max_member {
                return Err(invalid(format!(
                    "{name:?}: {size} bytes, over the {max_member}-byte limit"
                )));
            }
            if members.len() >= MAX_MEMBERS {
                return Err(invalid(format!("more than {MAX_MEMBERS} members")));
            }
            let member = Member {
                offset: entry.raw_file_position(),
                size,
            };
            if members.insert(name.clone(), member).is_some() {
                return Err(invalid(format!("{name:?} appears twice")));
            }
        }
        Ok(ArchiveIndex {
            path: path.to_path_buf(),
            members,
        })
    }

    pub fn get(&self, name: &str) -> Option<Member> {
        self.members.get(name).copied()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// A member, found by a path as written inside the archive's own documents.
    pub fn member(&self, name: &str) -> Result<(String, Member), ImageError> {
        let clean = clean_path(name)?;
        let m = self
            .get(&clean)
            .ok_or_else(|| invalid(format!("{name:?} is referenced but missing")))?;
        Ok((clean, m))
    }

    /// A reader over one member's data.
    pub fn open(&self, member: Member) -> Result<io::Take<io::BufReader<File>>, ImageError> {
        let mut file =
            File::open(&self.path).map_err(|e| ImageError::Internal(format!("{}: {e}", self.path.display())))?;
        file.seek(SeekFrom::Start(member.offset))
            .map_err(|e| ImageError::Internal(format!("{}: {e}", self.path.display())))?;
        Ok(io::BufReader::with_capacity(256 << 10, file).take(member.size))
    }

    /// A small member read whole, refusing more than `limit` bytes.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
        let (clean, m) = self.member(name)?;
        if m.size > limit {
            return Err(invalid(format!(
                "{clean:?}: {} bytes, over the {limit}-byte limit",
                m.size
            )));
        }
        let mut out = Vec::with_capacity(m.size as usize);
        self.open(m)?
            .read_to_end(&mut out)
            .map_err(|e| ImageError::Internal(format!("reading {clean:?}: {e}")))?;
        Ok(out)
    }

    /// The sha256 of a member's data.
    pub fn digest(&self, member: Member) -> Result<Digest, ImageError> {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        let mut reader = self.open(member)?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| ImageError::Internal(format!("reading the archive: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Digest::from_sha256(hasher.finalize().into()))
    }

    /// The first bytes of a member (for telling compressions apart).
    pub fn magic(&self, member: Member) -> Result<[u8; 4], ImageError> {
        let mut out = [0u8; 4];
        let n = member.size.min(4) as usize;
        self.open(member)?
            .read_exact(&mut out[..n])
            .map_err(|e| ImageError::Internal(format!("reading the archive: {e}")))?;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_escapes_refused() {
        assert_eq!(clean_path("./blobs/sha256/ab").unwrap(), "blobs/sha256/ab");
        assert_eq!(clean_path("manifest.json").unwrap(), "manifest.json");
        assert_eq!(clean_path("dir/").unwrap(), "dir");
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "", "./", "a\0b"] {
            assert!(clean_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn tar_with(entries: &[(&str, &[u8], tar::EntryType)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(file.reopen().unwrap());
        for (name, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Bypass the builder's own path checks: the index must do them.
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.finish().unwrap();
        file
    }

    #[test]
    fn index_reads_members_by_offset() {
        let f = tar_with(&[
            ("./a.json", b"{}", tar::EntryType::Regular),
            ("blobs/", b"", tar::EntryType::Directory),
            ("blobs/x", b"hello", tar::EntryType::Regular),
        ]);
        let idx = ArchiveIndex::read(f.path(), 1 << 20).unwrap();
        assert_eq!(idx.read_small("a.json", 10).unwrap(), b"{}");
        assert_eq!(idx.read_small("./blobs/x", 10).unwrap(), b"hello");
        assert_eq!(idx.digest(idx.get("blobs/x").unwrap()).unwrap(), Digest::of(b"hello"));
        assert!(idx.read_small("blobs/x", 2).is_err(), "limit");
        assert!(idx.read_small("missing", 2).is_err());
        assert!(idx.read_small("../blobs/x", 10).is_err());
    }

    #[test]
    fn index_refuses_escapes_links_dupes_and_big_members() {
        let f = tar_with(&[("../evil", b"x", tar::EntryType::Regular)]);
        assert!(ArchiveIndex::read(f.path(), 10).is_err());
        let f = tar_with(&[("/abs", b"x", tar::EntryType::Regular)]);
        assert!(ArchiveIndex::read(f.path(), 10).is_err());
        let f = tar_with(&[("link", b"", tar::EntryType::Symlink)]);
        assert!(ArchiveIndex::read(f.path(), 10).is_err());
        let f = tar_with(&[
            ("a", b"x", tar::EntryType::Regular),
            ("./a", b"y", tar::EntryType::Regular),
        ]);
        assert!(ArchiveIndex::read(f.path(), 10).is_err());
        let f = tar_with(&[("big", b"0123456789", tar::EntryType::Regular)]);
        assert!(ArchiveIndex::read(f.path(), 5).is_err());
    }
}
