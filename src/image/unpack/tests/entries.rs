//! Well-formed layers: every entry type, metadata, whiteouts and replacements.

use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

#[test]
fn regular_files_nested_dirs_and_stats() {
    let f = fx();
    let tar = T::default()
        .file("a.txt", b"hello")
        .file("./x//y/z/b.bin", &[7; 300_000])
        .build();
    let stats = f.unpack(&tar).expect("unpack");
    assert_eq!(fs::read(f.dest.join("a.txt")).expect("test setup"), b"hello");
    assert_eq!(
        fs::read(f.dest.join("x/y/z/b.bin")).expect("test setup"),
        vec![7; 300_000]
    );
    for d in ["x", "x/y", "x/y/z"] {
        let m = meta(&f.dest.join(d));
        assert!(m.is_dir());
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 0, 0));
    }
    assert_eq!(meta(&f.dest.join("a.txt")).mtime(), 1_600_000_000);
    assert_eq!(
        stats,
        UnpackStats {
            bytes: 300_005,
            inodes: 5
        }
    );
}

#[test]
fn setuid_mode_and_owner_kept() {
    let f = fx();
    let tar = T::default()
        .file("bin/su", b"#!")
        .with(|h| {
            h.set_mode(0o4755);
            h.set_uid(1000);
            h.set_gid(2000);
        })
        .dir("tmp")
        .with(|h| h.set_mode(0o1777))
        .build();
    f.unpack(&tar).expect("unpack");
    let m = meta(&f.dest.join("bin/su"));
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4755, 1000, 2000));
    assert_eq!(meta(&f.dest.join("tmp")).mode() & 0o7777, 0o1777);
}

#[test]
fn root_entry_sets_dest_metadata() {
    let f = fx();
    let tar = T::default()
        .dir("./")
        .with(|h| h.set_mode(0o750))
        .file("a", b"")
        .build();
    f.unpack(&tar).expect("unpack");
    let m = meta(&f.dest);
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o750, 1_600_000_000));
    let err = fx()
        .unpack(&T::default().file(".", b"x").build())
        .expect_err("must fail");
    assert!(err.is_escape(), "{err}");
}

#[test]
fn symlink_stored_verbatim_and_owned() {
    let f = fx();
    let tar = T::default()
        .link(EntryType::Symlink, "etc/passwd-link", "/etc/passwd")
        .with(|h| h.set_uid(33))
        .link(EntryType::Symlink, "up", "../../..")
        .build();
    f.unpack(&tar).expect("unpack");
    let l = f.dest.join("etc/passwd-link");
    assert_eq!(fs::read_link(&l).expect("test setup"), Path::new("/etc/passwd"));
    assert_eq!((meta(&l).uid(), meta(&l).mtime()), (33, 1_600_000_000));
    assert_eq!(
        fs::read_link(f.dest.join("up")).expect("test setup"),
        Path::new("../../..")
    );
}

#[test]
fn hardlink_shares_inode() {
    let f = fx();
    let tar = T::default()
        .file("a/orig", b"data")
        .link(EntryType::Link, "b/copy", "./a/orig")
        .build();
    let stats = f.unpack(&tar).expect("unpack");
    let (a, b) = (meta(&f.dest.join("a/orig")), meta(&f.dest.join("b/copy")));
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    assert_eq!(stats.inodes, 3, "a, b, orig; the link adds no inode");
}

#[test]
fn hardlink_to_symlink_links_the_symlink() {
    let f = fx();
    let out = f.outside.join("sentinel");
    let tar = T::default()
        .link(EntryType::Symlink, "s", out.to_str().expect("test setup"))
        .link(EntryType::Link, "h", "s")
        .build();
    f.unpack(&tar).expect("unpack");
    assert!(meta(&f.dest.join("h")).file_type().is_symlink());
    assert_eq!(meta(&out).nlink(), 1);
    f.assert_outside_untouched();
}

#[test]
fn hardlink_missing_target() {
    let f = fx();
    let err = f
        .unpack(&T::default().link(EntryType::Link, "h", "nope").build())
        .expect_err("must fail");
    assert!(matches!(err, UnpackError::MissingLinkTarget { .. }), "{err}");
}

#[test]
fn devices_and_fifo() {
    let f = fx();
    let dev = |maj, min| {
        move |h: &mut Header| {
            h.set_device_major(maj).expect("major");
            h.set_device_minor(min).expect("minor");
            h.set_mode(0o666);
        }
    };
    let tar = T::default()
        .raw(EntryType::Char, "dev/null", "", b"")
        .with(dev(1, 3))
        .raw(EntryType::Block, "dev/loop0", "", b"")
        .with(dev(7, 0))
        .raw(EntryType::Fifo, "run/fifo", "", b"")
        .build();
    f.unpack(&tar).expect("unpack");
    let null = meta(&f.dest.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode() & 0o7777), (rustix::fs::makedev(1, 3), 0o666));
    let lp = meta(&f.dest.join("dev/loop0"));
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), rustix::fs::makedev(7, 0));
    assert!(meta(&f.dest.join("run/fifo")).file_type().is_fifo());
}

#[test]
fn pax_xattrs_long_names_and_mtime() {
    let f = fx();
    let long = format!("{}/file", "d".repeat(150));
    let tar = T::default()
        .pax(&[
            ("path", long.as_bytes()),
            ("mtime", b"1234567890.5"),
            ("SCHILY.xattr.user.foo", b"bar"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])
        .file("short", b"x")
        .build();
    f.unpack(&tar).expect("unpack");
    let p = f.dest.join(&long);
    assert_eq!(xattr(&p, "user.foo").as_deref(), Some(&b"bar"[..]));
    assert_eq!(xattr(&p, "trusted.overlay.opaque"), None);
    assert_eq!((meta(&p).mtime(), meta(&p).mtime_nsec()), (1_234_567_890, 500_000_000));
}

#[test]
fn whiteouts_become_overlay_form() {
    let f = fx();
    let tar = T::default()
        .file("etc/.wh.gone", b"")
        .with(|h| h.set_uid(5))
        .file("etc/kept", b"k")
        .file("etc/.wh.kept", b"")
        .file("var/lib/.wh..wh..opq", b"")
        .file(".wh..wh.plnk", b"")
        .build();
    let stats = f.unpack(&tar).expect("unpack");
    let w = meta(&f.dest.join("etc/gone"));
    assert!(w.file_type().is_char_device());
    assert_eq!((w.rdev(), w.uid(), w.gid()), (0, 0, 0));
    assert_eq!(fs::read(f.dest.join("etc/kept")).expect("test setup"), b"k");
    assert_eq!(
        xattr(&f.dest.join("var/lib"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    for name in ["etc/.wh.gone", "var/lib/.wh..wh..opq", ".wh..wh.plnk", "plnk"] {
        assert!(fs::symlink_metadata(f.dest.join(name)).is_err(), "{name}");
    }
    assert_eq!(stats.inodes, 5);
}

#[test]
fn later_entries_replace_earlier() {
    let f = fx();
    let tar = T::default()
        .file("f", b"old")
        .file("f", b"new")
        .file("d/sub/x", b"x")
        .link(EntryType::Symlink, "d/sub/l", "../../../outside")
        .file("d", b"now a file")
        .link(EntryType::Symlink, "s", "/etc")
        .dir("s")
        .dir("keep")
        .file("keep/a", b"a")
        .dir("keep")
        .with(|h| h.set_mode(0o700))
        .build();
    f.unpack(&tar).expect("unpack");
    assert_eq!(fs::read(f.dest.join("f")).expect("test setup"), b"new");
    assert_eq!(fs::read(f.dest.join("d")).expect("test setup"), b"now a file");
    assert!(meta(&f.dest.join("s")).is_dir());
    assert_eq!(fs::read(f.dest.join("keep/a")).expect("test setup"), b"a");
    assert_eq!(meta(&f.dest.join("keep")).mode() & 0o7777, 0o700);
    f.assert_outside_untouched();
}

#[test]
fn dir_mtime_preserved_after_children() {
    let f = fx();
    let tar = T::default()
        .dir("d")
        .with(|h| h.set_mtime(1_000_000))
        .file("d/a", b"a")
        .file("d/e/b", b"b")
        .build();
    f.unpack(&tar).expect("unpack");
    assert_eq!(meta(&f.dest.join("d")).mtime(), 1_000_000);
}

#[test]
fn gzip_layer() {
    use flate2::{read::GzDecoder, write::GzEncoder, Compression};
    let f = fx();
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(&T::default().file("z", b"zipped").build())
        .expect("test setup");
    let gz = enc.finish().expect("test setup");
    unpack_layer(GzDecoder::new(gz.as_slice()), &f.dest, &UnpackLimits::default()).expect("test setup");
    assert_eq!(fs::read(f.dest.join("z")).expect("test setup"), b"zipped");
}
