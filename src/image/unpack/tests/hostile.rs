//! Hostile layers: escapes through paths, symlinks, hard links and whiteouts, limits,
//! and malformed tars.

use super::*;

#[test]
fn rejects_dotdot_and_absolute_paths() {
    for name in ["../evil", "a/../../evil", "ok/../x", "../outside/sentinel"] {
        let f = fx();
        assert_escape(&f, T::default().file(name, b"pwned").build());
    }
    let f = fx();
    let abs = format!("{}/evil", f.outside.display());
    assert_escape(&f, T::default().file(&abs, b"pwned").build());
    let f = fx();
    assert_escape(&f, T::default().dir("d").file("/abs/path", b"pwned").build());
}

#[test]
fn rejects_write_through_absolute_symlink() {
    let f = fx();
    let through = format!("link/{}/evil", f.outside_from_root());
    let tar = T::default()
        .link(EntryType::Symlink, "link", "/")
        .file(&through, b"pwned")
        .build();
    assert_escape(&f, tar);
    let f = fx();
    let tar = T::default()
        .link(EntryType::Symlink, "evil", f.outside.to_str().expect("test setup"))
        .file("evil/pwned", b"pwned")
        .build();
    assert_escape(&f, tar);
}

#[test]
fn rejects_write_through_climbing_symlink() {
    let f = fx();
    let through = format!("link/{}/x", f.outside_from_root());
    let tar = T::default()
        .link(EntryType::Symlink, "link", "../../..")
        .file(&through, b"pwned")
        .build();
    assert_escape(&f, tar);
    let f = fx();
    let tar = T::default()
        .link(EntryType::Symlink, "a/b", "../../outside")
        .dir("a/b/newdir")
        .build();
    assert_escape(&f, tar);
    // The same trick as a whiteout, an opaque marker and a hard link.
    for last in ["p/.wh.sentinel", "p/.wh..wh..opq"] {
        let f = fx();
        let tar = T::default()
            .link(EntryType::Symlink, "p", "../outside")
            .file(last, b"")
            .build();
        assert_escape(&f, tar);
    }
    let f = fx();
    let tar = T::default()
        .link(EntryType::Symlink, "p", "../outside")
        .link(EntryType::Link, "h", "p/sentinel")
        .build();
    assert_escape(&f, tar);
}

#[test]
fn symlink_inside_dest_is_followed_for_parents() {
    let f = fx();
    let tar = T::default()
        .dir("usr/lib")
        .link(EntryType::Symlink, "lib", "usr/lib")
        .link(EntryType::Symlink, "usr/lib/self", "../lib")
        .file("lib/self/a", b"a")
        .build();
    f.unpack(&tar).expect("unpack");
    assert_eq!(fs::read(f.dest.join("usr/lib/a")).expect("test setup"), b"a");
    f.assert_outside_untouched();
}

#[test]
fn rejects_hostile_hardlinks() {
    for target in ["../../etc/passwd", "/etc/passwd", "a/../../x", "."] {
        let f = fx();
        assert_escape(&f, T::default().link(EntryType::Link, "h", target).build());
    }
}

#[test]
fn rejects_hostile_whiteouts() {
    for name in [".wh..", "d/.wh...", ".wh."] {
        let f = fx();
        assert_escape(&f, T::default().file(name, b"").build());
    }
}

#[test]
fn entry_limit() {
    let f = fx();
    let tar = T::default().file("a", b"").file("b", b"").file("c", b"").build();
    let limits = UnpackLimits {
        max_entries: 2,
        ..Default::default()
    };
    let err = unpack_layer(tar.as_slice(), &f.dest, &limits).expect_err("must fail");
    assert!(matches!(err, UnpackError::Limit(_)), "{err}");
    assert!(!err.is_escape());
    f.assert_outside_untouched();
}

#[test]
fn byte_limit() {
    let f = fx();
    let tar = T::default().file("a", &[0; 600]).file("b", &[0; 600]).build();
    let limits = UnpackLimits {
        max_bytes: 1000,
        ..Default::default()
    };
    let err = unpack_layer(tar.as_slice(), &f.dest, &limits).expect_err("must fail");
    assert!(matches!(err, UnpackError::Limit(_)), "{err}");
    assert!(fs::symlink_metadata(f.dest.join("b")).is_err());
    // Content hidden in extension headers counts against the stream cap.
    let tar = T::default()
        .pax(&[("comment", &vec![b'x'; 64 * 1024])])
        .file("c", b"")
        .build();
    let limits = UnpackLimits {
        max_bytes: 1000,
        max_entries: 1,
    };
    let err = unpack_layer(tar.as_slice(), &fx().dest, &limits);
    assert!(err.is_ok(), "1 MiB slack");
    let tar = T::default()
        .pax(&[("comment", &vec![b'x'; 2 << 20])])
        .file("c", b"")
        .build();
    let err = unpack_layer(tar.as_slice(), &f.dest, &limits).expect_err("must fail");
    assert!(matches!(err, UnpackError::Limit(_)), "{err}");
}

#[test]
fn rejects_sparse_and_truncated() {
    let f = fx();
    let tar = T::default()
        .raw(EntryType::GNUSparse, "s", "", b"")
        .with(|h| h.as_gnu_mut().expect("test setup").set_real_size(0))
        .build();
    let err = f.unpack(&tar).expect_err("must fail");
    assert!(matches!(err, UnpackError::Unsupported { .. }), "{err}");
    let f = fx();
    let tar = T::default().pax(&[("GNU.sparse.major", b"1")]).file("s", b"").build();
    let err = f.unpack(&tar).expect_err("must fail");
    assert!(matches!(err, UnpackError::Unsupported { .. }), "{err}");
    let f = fx();
    let mut tar = T::default().file("a", &[1; 4096]).build();
    tar.truncate(1024);
    assert!(matches!(f.unpack(&tar).expect_err("must fail"), UnpackError::Tar(_)));
}

/// A reader that fails as a full disk does (the blob being stored as it is read).
struct FullDisk<'a>(&'a [u8]);

impl std::io::Read for FullDisk<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn a_full_disk_while_reading_is_no_malformed_tar() {
    let f = fx();
    let tar = T::default().file("a", &[1; 4096]).build();
    let err = unpack_layer(FullDisk(&tar[..1024]), &f.dest, &UnpackLimits::default()).expect_err("must fail");
    assert!(matches!(err, UnpackError::NoSpace(_)), "{err}");
}
