//! The build context as a tar: the context directory's files in name order, symlinks as
//! symlinks, minus what `.dockerignore` excludes (a directory excluded as a whole is not
//! entered unless an exception may bring something under it back).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use berth::build::dockerfile::Ignore;
use berth::image::commit::diff::header;
use tar::EntryType;

struct Walker<W: Write> {
    tar: tar::Builder<W>,
    ignore: Ignore,
    /// Directories entered but not yet written (written once something under them is).
    pending: Vec<(String, fs::Metadata)>,
    files: u64,
}

impl<W: Write> Walker<W> {
    fn flush_dirs(&mut self) -> io::Result<()> {
        for (rel, meta) in std::mem::take(&mut self.pending) {
            let mut h = header(&meta, EntryType::Directory);
            self.tar.append_data(&mut h, &rel, io::empty())?;
        }
        Ok(())
    }

    fn walk(&mut self, dir: &Path, rel: &str) -> io::Result<()> {
        let mut names: Vec<_> = fs::read_dir(dir)?.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let host = dir.join(&name);
            let meta = fs::symlink_metadata(&host)?;
            let excluded = self.ignore.excludes(&path);
            if meta.is_dir() {
                if excluded && !self.ignore.may_reinclude_under(&path) {
                    continue;
                }
                let depth = self.pending.len();
                self.pending.push((path.clone(), meta));
                if !excluded {
                    self.flush_dirs()?;
                }
                self.walk(&host, &path)?;
                self.pending.truncate(depth);
                continue;
            }
            if excluded {
                continue;
            }
            self.flush_dirs()?;
            self.files += 1;
            if meta.file_type().is_symlink() {
                let mut h = header(&meta, EntryType::Symlink);
                self.tar.append_link(&mut h, &path, fs::read_link(&host)?)?;
            } else if meta.is_file() {
                let mut h = header(&meta, EntryType::Regular);
                h.set_size(meta.len());
                self.tar
                    .append_data(&mut h, &path, io::Read::take(fs::File::open(&host)?, meta.len()))?;
            }
        }
        Ok(())
    }
}

/// Writes the context under `dir` to `out`; returns `out` and the number of files.
pub fn write<W: Write>(dir: &Path, ignore: Ignore, out: W) -> io::Result<(W, u64)> {
    let mut w = Walker {
        tar: tar::Builder::new(out),
        ignore,
        pending: Vec::new(),
        files: 0,
    };
    w.walk(dir, "")?;
    let files = w.files;
    Ok((w.tar.into_inner()?, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_keeps_files_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("node_modules/x")).expect("mkdir");
        fs::create_dir_all(root.join("logs")).expect("mkdir");
        fs::write(root.join("node_modules/x/a.js"), b"x").expect("write");
        fs::write(root.join("logs/a.log"), b"x").expect("write");
        fs::write(root.join("logs/keep.log"), b"x").expect("write");
        fs::write(root.join("app.py"), b"x").expect("write");
        fs::write(root.join("secret.env"), b"x").expect("write");
        let ignore = Ignore::parse("node_modules\n*.env\nlogs/*.log\n!logs/keep.log\n").expect("ignore");
        let (tar, files) = write(root, ignore, Vec::new()).expect("tar");
        let names: Vec<String> = tar::Archive::new(tar.as_slice())
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").path().expect("path").display().to_string())
            .collect();
        assert_eq!(names, ["app.py", "logs", "logs/keep.log"]);
        assert_eq!(files, 2);
    }
}
