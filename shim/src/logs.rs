//! Container output in the CRI log format kubelet reads:
//! `<RFC3339Nano UTC> <stdout|stderr> <F|P> <content>\n`.
//!
//! Splitting follows containerd (`pkg/cri/io/logger.go`, `redirectLogs`) with its default
//! `max_container_log_line_size` of 16 KiB:
//! - a line ending in `\n` is written as `F` without the newline; a `\r` right before the
//!   `\n` is dropped too (tty output arrives as `\r\n`);
//! - while more than 16 KiB of a line is pending, its first 16 KiB are written as `P`;
//!   so a line of exactly 16 KiB is one `F` record;
//! - at EOF, a pending piece without a newline is written as `P` (containerd: "it should
//!   be treated as a partial line"); kubelet shows it as is.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::timefmt;

/// containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Full,
    Partial,
}

impl Tag {
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Full => "F",
            Tag::Partial => "P",
        }
    }
}

/// Cuts a byte stream into CRI log records (see the module docs).
#[derive(Debug)]
pub struct Splitter {
    pending: Vec<u8>,
    max: usize,
}

impl Splitter {
    pub fn new(max: usize) -> Self {
        Splitter {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    pub fn push(&mut self, data: &[u8], emit: &mut impl FnMut(Tag, &[u8])) {
        let mut rest = data;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut line = &rest[..i];
                    if let Some(stripped) = line.strip_suffix(b"\r") {
                        line = stripped;
                    } else if line.is_empty() && self.pending.last() == Some(&b'\r') {
                        self.pending.pop();
                    }
                    self.append(line, emit);
                    emit(Tag::Full, &self.pending);
                    self.pending.clear();
                    if self.pending.capacity() > 4096 {
                        self.pending.shrink_to(4096);
                    }
                    rest = &rest[i + 1..];
                }
                None => {
                    self.append(rest, emit);
                    break;
                }
            }
        }
    }

    /// At EOF: whatever is pending goes out as a partial record.
    pub fn finish(&mut self, emit: &mut impl FnMut(Tag, &[u8])) {
        if !self.pending.is_empty() {
            emit(Tag::Partial, &self.pending);
            self.pending.clear();
        }
        self.pending.shrink_to(0);
    }

    fn append(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(Tag, &[u8])) {
        while self.pending.len() + bytes.len() > self.max {
            let take = self.max - self.pending.len();
            if self.pending.is_empty() {
                emit(Tag::Partial, &bytes[..take]);
            } else {
                self.pending.extend_from_slice(&bytes[..take]);
                emit(Tag::Partial, &self.pending);
                self.pending.clear();
            }
            bytes = &bytes[take..];
        }
        self.pending.extend_from_slice(bytes);
    }
}

/// The container's log file, shared by the stdout and stderr pumps. Each record is one
/// `write` to an `O_APPEND` file, so records never interleave.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    line: Vec<u8>,
    failing: bool,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: open_log(path)?,
            line: Vec::new(),
            failing: false,
        })
    }

    /// Opens the path again (after kubelet renamed the old file). On failure the old file
    /// stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_log(&self.path)?;
        self.failing = false;
        Ok(())
    }

    pub fn write(&mut self, stream: &str, tag: Tag, content: &[u8]) {
        let line = &mut self.line;
        line.clear();
        timefmt::push_rfc3339_nano(timefmt::now_ns(), line);
        line.push(b' ');
        line.extend_from_slice(stream.as_bytes());
        line.push(b' ');
        line.extend_from_slice(tag.as_str().as_bytes());
        line.push(b' ');
        line.extend_from_slice(content);
        line.push(b'\n');
        match self.file.write_all(line) {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    crate::log(format_args!(
                        "writing {}: {e} (dropping output until it works)",
                        self.path.display()
                    ));
                }
                self.failing = true;
            }
        }
        if line.capacity() > 4096 {
            line.clear();
            line.shrink_to(4096);
        }
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(Tag, Vec<u8>)> {
        let mut out = Vec::new();
        let mut s = Splitter::new(max);
        for c in chunks {
            s.push(c, &mut |t, b| out.push((t, b.to_vec())));
        }
        s.finish(&mut |t, b| out.push((t, b.to_vec())));
        out
    }

    fn rec(t: Tag, s: &str) -> (Tag, Vec<u8>) {
        (t, s.as_bytes().to_vec())
    }

    #[test]
    fn full_lines_and_chunks() {
        use Tag::*;
        assert_eq!(split(16, &[b"a\nbb\n"]), vec![rec(Full, "a"), rec(Full, "bb")]);
        assert_eq!(
            split(16, &[b"he", b"llo\n", b"\n"]),
            vec![rec(Full, "hello"), rec(Full, "")]
        );
        assert_eq!(
            split(16, &[b"x\r\n", b"y\r", b"\n", b"z\r"]),
            vec![rec(Full, "x"), rec(Full, "y"), rec(Partial, "z\r")]
        );
        assert_eq!(split(16, &[b"tail"]), vec![rec(Partial, "tail")]);
        assert_eq!(split(16, &[]), vec![]);
    }

    #[test]
    fn long_lines_split_like_containerd() {
        use Tag::*;
        assert_eq!(split(4, &[b"abcd\n"]), vec![rec(Full, "abcd")]);
        assert_eq!(split(4, &[b"abcde\n"]), vec![rec(Partial, "abcd"), rec(Full, "e")]);
        assert_eq!(
            split(4, &[b"ab", b"cdefgh", b"ij\n"]),
            vec![rec(Partial, "abcd"), rec(Partial, "efgh"), rec(Full, "ij")]
        );
        assert_eq!(
            split(4, &[b"abcdefgh\n"]),
            vec![rec(Partial, "abcd"), rec(Full, "efgh")]
        );
        assert_eq!(
            split(4, &[b"abcdefghi"]),
            vec![rec(Partial, "abcd"), rec(Partial, "efgh"), rec(Partial, "i")]
        );
    }

    #[test]
    fn forty_kib_line_reassembles() {
        let line: Vec<u8> = (0..40 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let mut input = line.clone();
        input.push(b'\n');
        let recs = split(MAX_LINE, &input.chunks(8192).collect::<Vec<_>>());
        let tags: Vec<Tag> = recs.iter().map(|r| r.0).collect();
        assert_eq!(tags, vec![Tag::Partial, Tag::Partial, Tag::Full]);
        assert_eq!(recs.iter().flat_map(|r| r.1.clone()).collect::<Vec<_>>(), line);
        assert!(recs.iter().all(|r| r.1.len() <= MAX_LINE));
    }

    #[test]
    fn record_format() {
        let dir = std::env::temp_dir().join(format!("berth-shim-logs-{}", std::process::id()));
        let path = dir.join("sub/c.log");
        let mut log = LogFile::open(&path).expect("open");
        log.write("stdout", Tag::Full, b"hello");
        log.write("stderr", Tag::Partial, b"x y");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(&lines[0][30..], " stdout F hello");
        assert_eq!(&lines[1][30..], " stderr P x y");
        assert!(lines[0].as_bytes()[29] == b'Z' && lines[0].as_bytes()[10] == b'T');
        std::fs::rename(&path, dir.join("old.log")).expect("rename");
        log.write("stdout", Tag::Full, b"to old");
        log.reopen().expect("reopen");
        log.write("stdout", Tag::Full, b"to new");
        assert!(std::fs::read_to_string(&path)
            .expect("new")
            .ends_with(" stdout F to new\n"));
        assert!(std::fs::read_to_string(dir.join("old.log"))
            .expect("old")
            .ends_with(" stdout F to old\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
