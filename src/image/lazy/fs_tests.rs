//! A converted layer's tree mounted through FUSE (real `/dev/fuse`, real mounts) and read
//! with ordinary file calls, alone and as an overlayfs lower layer.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::image::estargz::tests::{header, noise};
use crate::image::estargz::{self, Chunk, Tree, FOOTER_SIZE};

/// An eStargz blob (1 MiB chunks) with a file in several chunks, links, devices,
/// whiteouts and an xattr, and the tree of its TOC.
fn layer(big: &[u8]) -> (Vec<u8>, Tree) {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |h: &mut tar::Header, name: &str, data: &[u8]| b.append_data(h, name, data).expect("test data");
    add(&mut header(T::Directory, 0, 0o755), "etc/", &[]);
    add(&mut header(T::Regular, 6, 0o644), "etc/hostname", b"berth\n");
    add(&mut header(T::Regular, big.len() as u64, 0o755), "bin/big", big);
    add(&mut header(T::Regular, 0, 0o644), "etc/.wh.passwd", &[]);
    add(&mut header(T::Regular, 0, 0o644), "opaque/.wh..wh..opq", &[]);
    add(&mut header(T::Fifo, 0, 0o600), "dev/fifo", &[]);
    let mut null = header(T::Char, 0, 0o666);
    null.set_device_major(1).expect("test data");
    null.set_device_minor(3).expect("test data");
    add(&mut null, "dev/null", &[]);
    b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v"[..])])
        .expect("test data");
    b.append_data(&mut header(T::Regular, 1, 0o600), "etc/xattr", &b"x"[..])
        .expect("test data");
    b.append_link(&mut header(T::Symlink, 0, 0o777), "etc/link", "hostname")
        .expect("test data");
    b.append_link(&mut header(T::Link, 0, 0o644), "etc/hard", "etc/hostname")
        .expect("test data");
    let tar = b.into_inner().expect("test data");
    let (blob, converted) = estargz::write(&tar[..], Vec::new(), 1 << 20).expect("test data");
    let at = estargz::footer_offset(&blob[blob.len() - FOOTER_SIZE..]).expect("test data");
    let toc =
        estargz::read_toc(&blob[at as usize..blob.len() - FOOTER_SIZE], &converted.toc_digest).expect("test data");
    (blob, Tree::build(&toc, at).expect("test data"))
}

struct Mounted {
    dir: tempfile::TempDir,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Mounted {
    fn new(tree: Tree, source: Box<dyn ChunkSource>) -> Mounted {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("m")).expect("mountpoint");
        let fd = crate::sys::fuse::mount(&dir.path().join("m"), "berth-test").expect("FUSE mount");
        let fs = Arc::new(TreeFs::new(Arc::new(tree), source));
        let threads = crate::fuse::serve(fd, fs, 2).expect("serve");
        Mounted { dir, threads }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("m").join(rel)
    }
}

impl Mounted {
    /// Unmounts; true once every server thread has ended (the session saw the unmount).
    fn unmount(&mut self) -> bool {
        if let Err(e) = crate::sys::mount::unmount(&self.dir.path().join("m")) {
            eprintln!("unmounting the FUSE test mount: {e}");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.threads.iter().all(|t| t.is_finished()) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn finish(mut self) {
        assert!(self.unmount(), "the FUSE threads did not end after the unmount");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Also on a failing test's unwinding: no panic here.
        self.unmount();
    }
}

#[test]
fn a_layer_is_served_with_its_files_links_devices_and_xattrs() {
    let big = noise(3 << 20 | 12345, 0x2545_f491_4f6c_dd1d);
    let (blob, tree) = layer(&big);
    let m = Mounted::new(tree, Box::new(BlobSource(blob)));
    assert_eq!(std::fs::read(m.path("etc/hostname")).expect("read"), b"berth\n");
    assert_eq!(
        std::fs::read(m.path("bin/big")).expect("read"),
        big,
        "4 chunks, read in pieces"
    );
    let meta = std::fs::metadata(m.path("etc/hostname")).expect("stat");
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o644, 1000, 1001));
    assert_eq!((meta.nlink(), meta.mtime(), meta.len()), (2, 1_600_000_000, 6));
    assert_eq!(meta.ino(), std::fs::metadata(m.path("etc/hard")).expect("stat").ino());
    assert_eq!(
        std::fs::read_link(m.path("etc/link")).expect("readlink"),
        Path::new("hostname")
    );
    assert_eq!(std::fs::read(m.path("etc/link")).expect("through the link"), b"berth\n");
    let null = std::fs::metadata(m.path("dev/null")).expect("stat");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(std::fs::metadata(m.path("dev/fifo"))
        .expect("stat")
        .file_type()
        .is_fifo());
    let mut names: Vec<String> = std::fs::read_dir(m.path("etc"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hard", "hostname", "link", "passwd", "xattr"]);
    let root: Vec<String> = std::fs::read_dir(m.path(""))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !root.iter().any(|n| n.contains("stargz") || n.contains("landmark")),
        "{root:?}"
    );
    let mut value = [0u8; 16];
    let n = rustix::fs::getxattr(m.path("etc/xattr"), "user.k", &mut value).expect("getxattr");
    assert_eq!(&value[..n], b"v");
    let err = std::fs::write(m.path("etc/new"), b"x").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    assert_eq!(
        std::fs::read(m.path("nope")).expect_err("missing").kind(),
        std::io::ErrorKind::NotFound
    );
    m.finish();
}

#[test]
fn as_an_overlay_lower_layer_its_whiteouts_hide_what_is_beneath() {
    let (blob, tree) = layer(b"small");
    let m = Mounted::new(tree, Box::new(BlobSource(blob)));
    let beneath = tempfile::tempdir().expect("tempdir");
    for f in ["etc/passwd", "opaque/old", "keep/file"] {
        let p = beneath.path().join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, f).expect("write");
    }
    let merged = tempfile::tempdir().expect("tempdir");
    let data = format!("lowerdir={}:{}", m.path("").display(), beneath.path().display());
    let data = std::ffi::CString::new(data).expect("no NUL");
    rustix::mount::mount(
        "overlay",
        merged.path(),
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        Some(data.as_c_str()),
    )
    .expect("overlay over the FUSE layer");
    let exists = |f: &str| merged.path().join(f).exists();
    let seen = (
        exists("etc/passwd"),
        exists("opaque/old"),
        exists("keep/file"),
        exists("etc/hostname"),
    );
    let read = std::fs::read(merged.path().join("etc/hostname"));
    crate::sys::mount::unmount(merged.path()).expect("unmount the overlay");
    assert_eq!(
        seen,
        (false, false, true, true),
        "passwd and opaque/old hidden, the rest shown"
    );
    assert_eq!(read.expect("read through the overlay"), b"berth\n");
    m.finish();
}

/// A source that has nothing: the registry went away.
struct Gone;

impl ChunkSource for Gone {
    fn fetch(&self, _: &Chunk, name: &str) -> Result<Vec<u8>, String> {
        Err(format!("{name}: connection refused"))
    }
}

#[test]
fn a_chunk_that_cannot_be_had_is_eio_and_metadata_still_serves() {
    let (_, tree) = layer(b"small");
    let m = Mounted::new(tree, Box::new(Gone));
    assert_eq!(std::fs::metadata(m.path("bin/big")).expect("stat").len(), 5);
    let err = std::fs::read(m.path("bin/big")).expect_err("no data");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    m.finish();
    // A corrupt blob is the same to a reader: the chunk does not verify.
    let (mut blob, tree) = layer(b"small");
    let Some(estargz::Kind::File { chunks, .. }) = tree
        .resolve("bin/big")
        .and_then(|i| tree.node(i))
        .map(|n| n.kind.clone())
    else {
        panic!("bin/big is a file");
    };
    let at = (chunks[0].member.start + 12) as usize;
    blob[at] ^= 0xff;
    let m = Mounted::new(tree, Box::new(BlobSource(blob)));
    assert_eq!(
        std::fs::read(m.path("bin/big")).expect_err("refused").raw_os_error(),
        Some(libc::EIO)
    );
    m.finish();
}

/// A source with a bug.
struct Panics;

impl ChunkSource for Panics {
    fn fetch(&self, _: &Chunk, _: &str) -> Result<Vec<u8>, String> {
        panic!("a bug in a chunk source");
    }
}

#[test]
fn a_handler_that_panics_answers_eio_instead_of_hanging_the_reader() {
    let (_, tree) = layer(b"small");
    let m = Mounted::new(tree, Box::new(Panics));
    let err = std::fs::read(m.path("bin/big")).expect_err("no data");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(
        std::fs::read(m.path("etc/hostname"))
            .expect_err("no data")
            .raw_os_error(),
        Some(libc::EIO)
    );
    assert_eq!(
        std::fs::metadata(m.path("etc/hostname"))
            .expect("stat still served")
            .len(),
        6
    );
    m.finish();
}
