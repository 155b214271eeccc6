//! CRI log lines (`<RFC3339Nano> <stream> <F|P> <text>`) as `berthctl logs` reads them.
//! Std only: `fuzz/` includes this file as it is (`#[path]`), so keep it free of `crate::` paths.

/// One CRI log line.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: &'a str,
    pub stderr: bool,
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses a CRI log line (without its newline); `None` when it is not one.
pub fn parse_entry(line: &[u8]) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stderr = match parts.next()? {
        b"stdout" => false,
        b"stderr" => true,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Entry {
        time,
        stderr,
        partial,
        text: parts.next().unwrap_or_default(),
    })
}

/// A whole line of output: partial entries joined, stamped with its first entry's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time: String,
    pub stderr: bool,
    pub text: Vec<u8>,
}

/// Joins partial entries, per stream, into whole lines.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: [Option<Line>; 2],
}

impl Joiner {
    pub fn push(&mut self, e: &Entry) -> Option<Line> {
        let slot = &mut self.pending[e.stderr as usize];
        let line = slot.get_or_insert_with(|| Line {
            time: e.time.to_string(),
            stderr: e.stderr,
            text: Vec::new(),
        });
        line.text.extend_from_slice(e.text);
        if e.partial {
            None
        } else {
            slot.take()
        }
    }
}

/// Whole lines of a chunk of log text; returns how many bytes were consumed (up to the
/// last newline).
pub fn lines(buf: &[u8], joiner: &mut Joiner, out: &mut Vec<Line>) -> usize {
    let mut used = 0;
    while let Some(nl) = buf[used..].iter().position(|b| *b == b'\n') {
        if let Some(line) = parse_entry(&buf[used..used + nl]).and_then(|e| joiner.push(&e)) {
            out.push(line);
        }
        used += nl + 1;
    }
    used
}
