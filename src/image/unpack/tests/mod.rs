//! Layers built entry by entry (names written raw, so hostile ones can be made) and
//! unpacked into a temporary directory beside an `outside` one that must stay untouched.

use std::fs;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::{unpack_layer, UnpackError, UnpackLimits, UnpackStats};

mod entries;
mod hostile;

struct Fx {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

fn fx() -> Fx {
    let tmp = tempfile::tempdir().expect("test setup");
    let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
    fs::create_dir(&dest).expect("test setup");
    fs::create_dir(&outside).expect("test setup");
    fs::write(outside.join("sentinel"), b"orig").expect("test setup");
    Fx { tmp, dest, outside }
}

impl Fx {
    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(tar, &self.dest, &UnpackLimits::default())
    }
    /// `outside` still holds only the untouched sentinel, and nothing
    /// appeared next to `dest`.
    fn assert_outside_untouched(&self) {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p)
                .expect("test setup")
                .map(|e| e.expect("test setup").file_name())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&self.outside), ["sentinel"]);
        assert_eq!(fs::read(self.outside.join("sentinel")).expect("test setup"), b"orig");
        assert_eq!(names(self.tmp.path()), ["dest", "outside"]);
    }
    /// The `outside` dir as seen from `/`, without the leading slash.
    fn outside_from_root(&self) -> String {
        self.outside
            .to_str()
            .expect("test setup")
            .trim_start_matches('/')
            .to_owned()
    }
}

/// A header whose name (and link name) bytes are written verbatim.
fn raw(kind: EntryType, name: &[u8], link: &[u8], size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    h
}

#[derive(Default)]
struct T(Vec<(Header, Vec<u8>)>);

impl T {
    fn raw(mut self, kind: EntryType, name: &str, link: &str, data: &[u8]) -> Self {
        let h = raw(kind, name.as_bytes(), link.as_bytes(), data.len() as u64);
        self.0.push((h, data.to_vec()));
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(EntryType::Regular, name, "", data)
    }
    fn dir(self, name: &str) -> Self {
        self.raw(EntryType::Directory, name, "", b"")
    }
    fn link(self, kind: EntryType, name: &str, target: &str) -> Self {
        self.raw(kind, name, target, b"")
    }
    /// Changes the last header.
    fn with(mut self, f: impl FnOnce(&mut Header)) -> Self {
        let h = &mut self.0.last_mut().expect("test setup").0;
        f(h);
        h.set_cksum();
        self
    }
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = [b" ", k.as_bytes(), b"=", v, b"\n"].concat();
            let mut len = body.len() + 1;
            while format!("{len}").len() + body.len() != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len}").as_bytes());
            data.extend_from_slice(&body);
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.push((h, data));
        self
    }
    fn build(self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (h, data) in self.0 {
            b.append(&h, data.as_slice()).expect("test setup");
        }
        b.into_inner().expect("test setup")
    }
}

fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).expect("test setup")
}

fn xattr(p: &Path, key: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0; 256];
    let n = rustix::fs::lgetxattr(p, key, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn assert_escape(f: &Fx, tar: Vec<u8>) {
    let err = f.unpack(&tar).expect_err("must fail");
    assert!(err.is_escape(), "expected escape, got {err}");
    f.assert_outside_untouched();
}
