//! Detach keys for `attach` and `run -it`: Docker's Ctrl-P Ctrl-Q by default (or
//! `--detach-keys`), read from the input stream. Bytes that could start the sequence are
//! held back until it is clear they do not, so no part of the sequence reaches the
//! container and nothing else is lost.

use anyhow::bail;

/// Docker's default.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// What ends a session when the user detached (not a failure: the container runs on).
#[derive(Debug, thiserror::Error)]
#[error("detached (the container keeps running)")]
pub struct Detached;

/// `ctrl-p,ctrl-q`, `ctrl-a,x`: the bytes of a detach sequence; empty turns detaching off.
pub fn parse(spec: &str) -> anyhow::Result<Vec<u8>> {
    let mut keys = Vec::new();
    for key in spec.split(',').filter(|k| !k.is_empty()) {
        let byte = match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => match c.as_bytes()[0].to_ascii_lowercase() {
                b @ b'a'..=b'z' => b - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => bail!("--detach-keys {spec:?}: unknown key {key:?}"),
            },
            None if key.len() == 1 => key.as_bytes()[0],
            _ => bail!("--detach-keys {spec:?}: unknown key {key:?} (a letter, or ctrl-LETTER)"),
        };
        keys.push(byte);
    }
    Ok(keys)
}

/// Watches input for the sequence.
#[derive(Debug, Clone)]
pub struct Scanner {
    keys: Vec<u8>,
    matched: usize,
}

impl Scanner {
    pub fn new(keys: Vec<u8>) -> Scanner {
        Scanner { keys, matched: 0 }
    }

    /// The bytes of `chunk` to pass on, and whether the sequence is complete (what follows
    /// it is dropped).
    pub fn feed(&mut self, chunk: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (chunk.to_vec(), false);
        }
        let mut out = Vec::with_capacity(chunk.len());
        for &b in chunk {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                // The held-back prefix was not the sequence after all.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dockers_key_names() {
        assert_eq!(parse(DEFAULT).unwrap(), [16, 17]);
        assert_eq!(parse("ctrl-a,x").unwrap(), [1, b'x']);
        assert_eq!(parse("").unwrap(), Vec::<u8>::new());
        assert!(parse("ctrl-!").is_err());
        assert!(parse("alt-x").is_err());
    }

    #[test]
    fn the_sequence_is_found_across_chunks_and_never_passed_on() {
        let mut s = Scanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
        let mut s = Scanner::new(vec![16, 17]);
        // A lone ctrl-p is passed on once the next byte shows it was not the sequence.
        assert_eq!(s.feed(b"\x10x"), (b"\x10x".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        let mut off = Scanner::new(Vec::new());
        assert_eq!(off.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
