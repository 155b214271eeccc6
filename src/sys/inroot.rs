//! Paths inside a root filesystem (an image's rootfs, a driver root) resolved as a process
//! chrooted there would see them: every symlink met is read and followed, absolute targets
//! start again at the root and `..` stops at it, so no path an image wrote can lead out.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed before a path is refused (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// `path` (absolute, as seen inside `root`) resolved inside `root`: the absolute path inside
/// it of what exists there, with no symlink component at the time of the call; `None` when a
/// component does not exist. Too many symlinks is an `InvalidInput` error.
pub fn resolve(root: &Path, path: &Path) -> io::Result<Option<PathBuf>> {
    // Components still to walk, in reverse order (a stack), and the resolved prefix so far.
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", candidate.display()))),
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: too many levels of symlinks", path.display()),
                ));
            }
            let target = std::fs::read_link(&candidate)?;
            if target.is_absolute() {
                resolved.clear();
            }
            push_components(&mut todo, &target);
        } else {
            resolved.push(part);
        }
    }
    let mut inside = PathBuf::from("/");
    inside.extend(resolved);
    Ok(Some(inside))
}

/// `root` joined with `path`, an absolute path inside it (`..` and `.` dropped).
pub fn host_path(root: &Path, path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    root.join(rel)
}

/// Pushes `path`'s normal and `..` components onto the reverse-order stack `todo`.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(n) => todo.push(n.to_os_string()),
            Component::ParentDir => todo.push("..".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_stay_inside_the_root() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib")).expect("mkdir");
        std::fs::write(r.join("usr/lib/libx.so.1"), "x").expect("write");
        symlink("/usr/lib", r.join("lib")).expect("symlink");
        symlink("libx.so.1", r.join("usr/lib/libx.so")).expect("symlink");
        symlink("../../../../../../etc", r.join("usr/escape")).expect("symlink");
        let got = |p: &str| resolve(r, Path::new(p)).expect("resolve");
        assert_eq!(got("/lib/libx.so"), Some(PathBuf::from("/usr/lib/libx.so.1")));
        assert_eq!(
            got("/usr/../../lib/./libx.so.1"),
            Some(PathBuf::from("/usr/lib/libx.so.1"))
        );
        // `..` stops at the root: /etc inside it, which does not exist there.
        assert_eq!(got("/usr/escape/passwd"), None);
        assert_eq!(
            host_path(r, Path::new("/usr/lib/libx.so.1")),
            r.join("usr/lib/libx.so.1")
        );
        symlink("loop", r.join("loop")).expect("symlink");
        let err = resolve(r, Path::new("/loop")).expect_err("a loop");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("too many levels of symlinks"), "{err}");
    }
}
