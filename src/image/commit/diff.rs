//! A container's writable layer (an overlayfs upper directory) as an OCI layer tar:
//! overlay whiteouts (0:0 character devices) become `.wh.<name>` entries, opaque
//! directories (`trusted.overlay.opaque=y`) get a `.wh..wh..opq` entry, hard links within
//! the layer stay links, and file capabilities travel as PAX xattrs. Entries are written
//! in name order, so the same tree gives the same bytes.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::sys::fs::lgetxattr;

const OPAQUE: &[u8] = b"trusted.overlay.opaque";
/// Set by overlayfs features (renamed directories, metadata-only copy-up) whose layer
/// cannot be read as plain files; Berth mounts without them, so their presence is refused.
const UNSUPPORTED: [&[u8]; 2] = [b"trusted.overlay.redirect", b"trusted.overlay.metacopy"];
const CAPABILITY: &[u8] = b"security.capability";

/// Writes the layer tar of the directory `upper` to `out` and returns `out`.
pub fn write_layer<W: Write>(upper: &Path, out: W) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Complete);
    let mut writer = LayerWriter {
        tar,
        links: HashMap::new(),
    };
    writer.dir_entries(upper, Path::new(""))?;
    writer.tar.into_inner()
}

struct LayerWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (device, inode) of files with more than one link, to the first path written.
    links: HashMap<(u64, u64), PathBuf>,
}

fn sorted_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn with_context(inside: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("/{}: {e}", inside.display()))
}

/// A tar header of `kind` carrying `meta`'s mode, owner and modification time, size 0.
pub fn header(meta: &fs::Metadata, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> LayerWriter<W> {
    fn dir_entries(&mut self, dir: &Path, rel: &Path) -> io::Result<()> {
        for name in sorted_names(dir).map_err(with_context(rel))? {
            let inside = rel.join(&name);
            self.entry(&dir.join(&name), &inside, &name)
                .map_err(with_context(&inside))?;
        }
        Ok(())
    }

    fn entry(&mut self, host: &Path, inside: &Path, name: &OsString) -> io::Result<()> {
        let meta = fs::symlink_metadata(host)?;
        let kind = meta.file_type();
        for key in UNSUPPORTED {
            if lgetxattr(host, key)?.is_some() {
                return Err(io::Error::other(format!(
                    "overlayfs attribute {} cannot be committed",
                    String::from_utf8_lossy(key)
                )));
            }
        }
        if kind.is_char_device() && meta.rdev() == 0 {
            let mut whiteout = OsString::from(".wh.");
            whiteout.push(name);
            let mut h = header(&meta, EntryType::Regular);
            h.set_mode(0o600);
            return self
                .tar
                .append_data(&mut h, inside.with_file_name(whiteout), io::empty());
        }
        if !kind.is_symlink() {
            if let Some(cap) = lgetxattr(host, CAPABILITY)? {
                let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(CAPABILITY));
                self.tar.append_pax_extensions([(key.as_str(), cap.as_slice())])?;
            }
        }
        if kind.is_dir() {
            let mut h = header(&meta, EntryType::Directory);
            self.tar.append_data(&mut h, inside, io::empty())?;
            if lgetxattr(host, OPAQUE)?.as_deref() == Some(b"y") {
                let mut h = header(&meta, EntryType::Regular);
                h.set_mode(0o600);
                self.tar.append_data(&mut h, inside.join(".wh..wh..opq"), io::empty())?;
            }
            return self.dir_entries(host, inside);
        }
        if kind.is_symlink() {
            let mut h = header(&meta, EntryType::Symlink);
            return self.tar.append_link(&mut h, inside, fs::read_link(host)?);
        }
        if meta.nlink() > 1 && !kind.is_dir() {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                let mut h = header(&meta, EntryType::Link);
                let first = first.clone();
                return self.tar.append_link(&mut h, inside, first);
            }
            self.links.insert((meta.dev(), meta.ino()), inside.to_path_buf());
        }
        if kind.is_file() {
            let mut h = header(&meta, EntryType::Regular);
            h.set_size(meta.len());
            let file = fs::File::open(host)?;
            return self.tar.append_data(&mut h, inside, io::Read::take(file, meta.len()));
        }
        let (entry, device) = if kind.is_char_device() {
            (EntryType::Char, true)
        } else if kind.is_block_device() {
            (EntryType::Block, true)
        } else if kind.is_fifo() {
            (EntryType::Fifo, false)
        } else {
            // Sockets have no place in a layer.
            return Ok(());
        };
        let mut h = header(&meta, entry);
        if device {
            h.set_device_major(rustix::fs::major(meta.rdev()))?;
            h.set_device_minor(rustix::fs::minor(meta.rdev()))?;
        }
        self.tar.append_data(&mut h, inside, io::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, EntryType, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").display().to_string();
            let kind = e.header().entry_type();
            let size = e.header().size().expect("size");
            let mut data = Vec::new();
            io::Read::read_to_end(&mut e, &mut data).expect("read");
            out.push((path, kind, size, data));
        }
        out
    }

    #[test]
    fn whiteouts_opaque_dirs_links_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("etc/app")).expect("mkdir");
        fs::write(root.join("etc/app/conf"), b"x=1\n").expect("write");
        fs::hard_link(root.join("etc/app/conf"), root.join("etc/conf.link")).expect("link");
        std::os::unix::fs::symlink("app/conf", root.join("etc/sym")).expect("symlink");
        fs::create_dir(root.join("opaque")).expect("mkdir");
        crate::sys::fs::fsetxattr(
            std::os::fd::AsFd::as_fd(&fs::File::open(root.join("opaque")).expect("open")),
            OPAQUE,
            b"y",
        )
        .expect("opaque xattr (needs root)");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .expect("whiteout node (needs root)");

        let tar = write_layer(root, Vec::new()).expect("layer");
        let got = entries(&tar);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/app",
                "etc/app/conf",
                "etc/conf.link",
                "etc/.wh.gone",
                "etc/sym",
                "opaque",
                "opaque/.wh..wh..opq"
            ]
        );
        let by_name = |n: &str| got.iter().find(|e| e.0 == n).expect("entry");
        assert_eq!(by_name("etc/app/conf").3, b"x=1\n");
        assert_eq!(by_name("etc/conf.link").1, EntryType::Link);
        assert_eq!(by_name("etc/sym").1, EntryType::Symlink);
        assert_eq!(by_name("etc/.wh.gone").2, 0);
        // The same tree, the same bytes.
        assert_eq!(write_layer(root, Vec::new()).expect("again"), tar);
    }

    #[test]
    fn overlay_redirects_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("moved")).expect("mkdir");
        crate::sys::fs::fsetxattr(
            std::os::fd::AsFd::as_fd(&fs::File::open(dir.path().join("moved")).expect("open")),
            UNSUPPORTED[0],
            b"/old",
        )
        .expect("redirect xattr (needs root)");
        let err = write_layer(dir.path(), Vec::new()).expect_err("refused");
        assert!(err.to_string().contains("/moved"), "{err}");
        assert!(err.to_string().contains("redirect"), "{err}");
    }
}
