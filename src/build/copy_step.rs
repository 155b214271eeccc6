//! COPY and ADD: sources found in the build context (or another stage's or image's files)
//! with globs, written as one tar whose digest keys the cache, and extracted at the
//! destination inside the stage's filesystem (paths resolved inside it, as `cp` does).
//! ADD also unpacks local tar archives (plain, gzip or zstd); URLs are refused.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use super::dockerfile::glob_match;
use super::error::BuildError;
use crate::container::files::{self, FsView, Located};

/// One source to copy: where it is, the name it gets under the destination.
#[derive(Debug)]
pub(super) struct Unit {
    host: PathBuf,
    name: String,
    meta: fs::Metadata,
    /// ADD of a local tar archive: its contents go to the destination.
    archive: bool,
}

impl Unit {
    pub fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The paths inside `view` matching `pattern` (globs in any component), sorted.
fn expand(view: &FsView, pattern: &str) -> Result<Vec<String>, String> {
    let mut current = vec![String::new()];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let mut next = Vec::new();
        for dir in current {
            if !has_glob(part) {
                next.push(format!("{dir}/{part}"));
                continue;
            }
            let shown = if dir.is_empty() { "/".to_string() } else { dir.clone() };
            let Some(found) = view.locate(&shown, true).map_err(|e| e.to_string())? else {
                continue;
            };
            if !found.meta.is_dir() {
                continue;
            }
            let mut names: Vec<String> = fs::read_dir(&found.host)
                .map_err(|e| format!("{shown}: {e}"))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                if glob_match(part, &name)? {
                    next.push(format!("{dir}/{name}"));
                }
            }
        }
        current = next;
    }
    Ok(current
        .into_iter()
        .map(|p| if p.is_empty() { "/".to_string() } else { p })
        .collect())
}

fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(path) else { return false };
    let n = f.read(&mut head).unwrap_or(0);
    head[..n.min(2)] == [0x1f, 0x8b][..n.min(2)] && n >= 2
        || n >= 4 && head[..4] == [0x28, 0xb5, 0x2f, 0xfd]
        || n >= 262 && &head[257..262] == b"ustar"
}

/// Finds the sources in `view`. A source that matches nothing is an error, as is one
/// naming a URL (ADD of remote files is not supported).
pub(super) fn collect(view: &FsView, sources: &[String], add: bool) -> Result<Vec<Unit>, String> {
    let mut units = Vec::new();
    for source in sources {
        if source.contains("://") || source.starts_with("git@") {
            return Err(format!(
                "{source}: remote sources are not supported; fetch it in a RUN step or copy it into the context"
            ));
        }
        let paths = expand(view, source)?;
        let mut found_any = false;
        for path in paths {
            let Some(found) = view.locate(&path, true).map_err(|e| e.to_string())? else {
                continue;
            };
            found_any = true;
            let name = Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let archive = add && found.meta.is_file() && is_archive(&found.host);
            units.push(Unit {
                host: found.host,
                name,
                meta: found.meta,
                archive,
            });
        }
        if !found_any {
            return Err(format!("{source}: no such file or directory in the build context"));
        }
    }
    Ok(units)
}

/// How the sources' files are owned and moded in the layer.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Attrs {
    /// `--chown` (else root for context files, else as they are).
    pub owner: Option<(u32, u32)>,
    pub keep_owner: bool,
    /// `--chmod`.
    pub mode: Option<u32>,
}

struct TarOut<W: Write> {
    tar: tar::Builder<W>,
    attrs: Attrs,
}

impl<W: Write> TarOut<W> {
    fn header(&self, meta: &fs::Metadata, kind: EntryType) -> Header {
        let mut h = crate::image::commit::diff::header(meta, kind);
        if let Some(mode) = self.attrs.mode {
            h.set_mode(mode);
        }
        let (uid, gid) = match (self.attrs.owner, self.attrs.keep_owner) {
            (Some(o), _) => o,
            (None, true) => (meta.uid(), meta.gid()),
            (None, false) => (0, 0),
        };
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h
    }

    fn entry(&mut self, host: &Path, name: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(host)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            let mut h = self.header(&meta, EntryType::Directory);
            self.tar.append_data(&mut h, name, io::empty())?;
            return self.dir(host, name);
        }
        if kind.is_symlink() {
            let mut h = self.header(&meta, EntryType::Symlink);
            h.set_mode(0o777);
            return self.tar.append_link(&mut h, name, fs::read_link(host)?);
        }
        if kind.is_file() {
            let mut h = self.header(&meta, EntryType::Regular);
            h.set_size(meta.len());
            return self
                .tar
                .append_data(&mut h, name, fs::File::open(host)?.take(meta.len()));
        }
        Ok(()) // devices, fifos and sockets are not copied
    }

    fn dir(&mut self, host: &Path, name: &Path) -> io::Result<()> {
        let mut children: Vec<_> = fs::read_dir(host)?.flatten().map(|e| e.file_name()).collect();
        children.sort();
        for child in children {
            self.entry(&host.join(&child), &name.join(&child))?;
        }
        Ok(())
    }
}

/// Writes the tar of `units` (archives excluded) as they land under the destination:
/// a directory's contents, a file under its name, or the one file as `rename`.
pub(super) fn write_tar<W: Write>(units: &[Unit], rename: Option<&str>, attrs: Attrs, out: W) -> io::Result<W> {
    let mut t = TarOut {
        tar: tar::Builder::new(out),
        attrs,
    };
    for u in units.iter().filter(|u| !u.archive) {
        if u.is_dir() {
            t.dir(&u.host, Path::new(""))?;
        } else {
            t.entry(&u.host, Path::new(rename.unwrap_or(&u.name)))?;
        }
    }
    t.tar.into_inner()
}

/// A digest of everything the units would copy, archives' bytes included, for the cache key.
pub(super) fn digest(units: &[Unit], attrs: Attrs) -> io::Result<String> {
    struct HashOut(Sha256);
    impl Write for HashOut {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut out = write_tar(units, None, attrs, HashOut(Sha256::new()))?;
    for u in units.iter().filter(|u| u.archive) {
        out.0.update(u.name.as_bytes());
        io::copy(&mut fs::File::open(&u.host)?, &mut out)?;
    }
    Ok(format!("sha256:{}", hex::encode(out.0.finalize())))
}

fn decompressed(path: &Path) -> io::Result<Box<dyn Read>> {
    let mut head = [0u8; 4];
    let n = fs::File::open(path)?.read(&mut head)?;
    let file = io::BufReader::new(fs::File::open(path)?);
    Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else {
        Box::new(file)
    })
}

/// Copies the units into `view` at `dest` (absolute; `into_dir`: dest is a directory,
/// else the single file is named `dest` unless a directory is there).
pub(super) fn place(
    view: &FsView,
    units: &[Unit],
    dest: &str,
    into_dir: bool,
    attrs: Attrs,
    spool: &Path,
) -> Result<(), BuildError> {
    let failed = |e: String| BuildError::Invalid(format!("copying to {dest}: {e}"));
    let existing_dir = view
        .locate(dest, true)
        .map_err(|e| failed(e.to_string()))?
        .is_some_and(|l| l.meta.is_dir());
    let single_file = units.len() == 1 && !units[0].is_dir() && !units[0].archive;
    let (dir, rename) = if !into_dir && !existing_dir && single_file {
        let path = Path::new(dest);
        let parent = path.parent().map_or("/".into(), |p| p.display().to_string());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        (parent, name)
    } else {
        (dest.to_string(), None)
    };
    let target: Located = view.make_dir(&dir).map_err(|e| failed(e.to_string()))?;
    let file = fs::File::create(spool).map_err(BuildError::io("spool"))?;
    write_tar(units, rename.as_deref(), attrs, io::BufWriter::new(file))
        .and_then(|mut w| w.flush())
        .map_err(|e| failed(e.to_string()))?;
    let tar = fs::File::open(spool).map_err(BuildError::io("spool"))?;
    files::extract(&target, io::BufReader::new(tar)).map_err(|e| failed(e.to_string()))?;
    for u in units.iter().filter(|u| u.archive) {
        let reader = decompressed(&u.host).map_err(|e| failed(format!("{}: {e}", u.name)))?;
        files::extract(&target, reader).map_err(|e| failed(format!("unpacking {}: {e}", u.name)))?;
    }
    let _ = fs::remove_file(spool);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").path().expect("path").display().to_string())
            .collect()
    }

    #[test]
    fn globs_directories_and_renames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("src/lib")).expect("mkdir");
        fs::write(root.join("src/a.txt"), b"a").expect("write");
        fs::write(root.join("src/b.md"), b"b").expect("write");
        fs::write(root.join("src/lib/c.txt"), b"c").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", root.join("src/link")).expect("symlink");
        let view = FsView::of_dir(root.to_path_buf());

        let units = collect(&view, &["src/*.txt".into()], false).expect("collect");
        assert_eq!(units.len(), 1);
        assert_eq!(
            names(&write_tar(&units, None, Attrs::default(), Vec::new()).expect("tar")),
            ["a.txt"]
        );
        assert_eq!(
            names(&write_tar(&units, Some("renamed"), Attrs::default(), Vec::new()).expect("tar")),
            ["renamed"]
        );
        let units = collect(&view, &["src".into()], false).expect("collect");
        assert_eq!(
            names(&write_tar(&units, None, Attrs::default(), Vec::new()).expect("tar")),
            ["a.txt", "b.md", "lib", "lib/c.txt", "link"]
        );
        assert!(collect(&view, &["nothing*".into()], false).is_err());
        assert!(collect(&view, &["missing".into()], false).is_err());
        assert!(collect(&view, &["https://example.test/x".into()], true).is_err());
        // A symlink leading out of the context resolves inside it: /etc/passwd of the context.
        assert!(collect(&view, &["src/link".into()], false).is_err());

        let a = digest(&units, Attrs::default()).expect("digest");
        let owned = Attrs {
            owner: Some((1, 1)),
            ..Default::default()
        };
        assert_ne!(a, digest(&units, owned).expect("digest"));
        fs::write(root.join("src/b.md"), b"changed").expect("write");
        assert_ne!(a, digest(&units, Attrs::default()).expect("digest"));
    }

    #[test]
    fn placed_inside_the_root_with_owner_and_mode() {
        let ctx = tempfile::tempdir().expect("tempdir");
        fs::write(ctx.path().join("f"), b"data").expect("write");
        let target = tempfile::tempdir().expect("tempdir");
        fs::create_dir(target.path().join("real")).expect("mkdir");
        std::os::unix::fs::symlink("/real", target.path().join("link")).expect("symlink");
        let units = collect(&FsView::of_dir(ctx.path().to_path_buf()), &["f".into()], false).expect("collect");
        let view = FsView::of_dir(target.path().to_path_buf());
        let attrs = Attrs {
            owner: Some((7, 8)),
            mode: Some(0o600),
            ..Default::default()
        };
        let spool = ctx.path().join("spool");
        place(&view, &units, "/link/sub/", true, attrs, &spool).expect("into a dir");
        let placed = target.path().join("real/sub/f");
        let meta = fs::metadata(&placed).expect("placed through the symlink, inside the root");
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (7, 8, 0o600));
        place(&view, &units, "/real/named", false, Attrs::default(), &spool).expect("renamed");
        assert_eq!(fs::read(target.path().join("real/named")).expect("read"), b"data");
        assert!(!spool.exists());
    }
}
