//! Layer tars (`berth::image::unpack::unpack_layer`), whiteouts included, unpacked into a
//! scratch root. After every input: nothing may have been written outside the root (a canary
//! directory next to it must hold exactly its canary file, unchanged, and the parent nothing
//! new).
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth::image::unpack::{unpack_layer, UnpackLimits};
use libfuzzer_sys::fuzz_target;

const CANARY: &[u8] = b"canary: must never change";

struct Scratch {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

fn scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let tmp = tempfile::Builder::new()
            .prefix("berth-fuzz-unpack.")
            .tempdir()
            .expect("scratch dir");
        let base = tmp.path().to_path_buf();
        let (dest, outside) = (base.join("root"), base.join("outside"));
        fs::create_dir(&outside).expect("outside dir");
        fs::write(outside.join("canary"), CANARY).expect("canary");
        Scratch {
            _tmp: tmp,
            base,
            dest,
            outside,
        }
    })
}

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    match fs::remove_dir_all(&s.dest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("clearing the root: {e}"),
        _ => {}
    }
    fs::create_dir(&s.dest).expect("root dir");
    let limits = UnpackLimits {
        max_entries: 512,
        max_bytes: 1 << 20,
    };
    let _ = unpack_layer(data, &s.dest, &limits);
    assert_eq!(
        names(&s.base),
        ["outside", "root"],
        "something was created next to the root"
    );
    assert_eq!(names(&s.outside), ["canary"], "something was created outside the root");
    let meta = fs::symlink_metadata(s.outside.join("canary")).expect("canary stat");
    assert!(meta.file_type().is_file(), "the canary was replaced");
    assert_eq!(fs::read(s.outside.join("canary")).expect("canary read"), CANARY);
});
