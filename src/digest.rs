//! Content digests (`sha256:<hex>`): how blobs, layers, snapshots and images are named.
//! Below both the image store and the snapshotter, which name things by them.

use std::fmt;

/// A content digest `algorithm:hex`. Only sha256 is accepted, as the OCI spec requires of
/// registries today.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// A string that is not a digest Berth accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
pub struct InvalidDigest(pub String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, InvalidDigest> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| InvalidDigest(s.into()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(InvalidDigest(s.into()));
        }
        Ok(Digest(s.into()))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest::from_sha256(sha2::Sha256::digest(data).into())
    }

    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
}

/// A writer that hashes and counts what passes through it.
pub struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W> Hashing<W> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            written: 0,
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_sha256(sha2::Digest::finalize(self.hasher).into()),
            self.written,
        )
    }
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_only_lowercase_sha256() {
        assert_eq!(Digest::parse(D).expect("digest").hex().len(), 64);
        assert_eq!(Digest::of(b"").as_str(), D);
        for bad in [&D.to_uppercase()[..], "sha256:../../etc", "md5:00", "", &D[..70]] {
            let err = Digest::parse(bad).expect_err("not a digest");
            assert!(err.to_string().contains("invalid digest"), "{bad:?}: {err}");
        }
    }
}
