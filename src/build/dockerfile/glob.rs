//! Glob patterns on `/`-separated paths: Go's `filepath.Match` syntax, and the `**` extension
//! `.dockerignore` files add to it.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// A character matching itself.
    Lit(char),
    /// `?`: any one character but `/`.
    One,
    /// `*`: any run of characters without `/`.
    Star,
    /// `**` (and `**/`) before more pattern: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end: anything at all.
    Rest,
    /// `[…]`: one character in (or, negated, not in) the ranges.
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// Go's `filepath.Match` on `/`-separated paths: `*` (any run without `/`), `?` (one
/// character but `/`), `[a-z]`, `[!x]` or `[^x]`, and `\` escaping the next character. The
/// whole path must match. A malformed pattern (an unclosed or empty class, a trailing `\`) is an
/// error.
pub fn glob_match(pattern: &str, path: &str) -> Result<bool, String> {
    Ok(matches(&compile(pattern, false)?, path))
}

/// Compiles a pattern; with `globstar`, `**` is the `.dockerignore` any-directories wildcard
/// (and eats a `/` after it), otherwise it is just two `*`.
pub(super) fn compile(pattern: &str, globstar: bool) -> Result<Vec<Tok>, String> {
    let bad = |why: &str| format!("bad pattern {pattern:?}: {why}");
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if globstar && chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                toks.push(if chars.peek().is_none() {
                    Tok::Rest
                } else {
                    Tok::AnyDirs
                });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => toks.push(Tok::Lit(chars.next().ok_or_else(|| bad("trailing \\"))?)),
            '[' => {
                let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = class_char(&mut chars).map_err(&bad)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars).map_err(&bad)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
            }
            _ => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// One (possibly escaped) character of a class, where `-` and `]` must be escaped.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
    match chars.next() {
        None => Err("unterminated character class"),
        Some('-' | ']') => Err("character class with an empty or unescaped range"),
        Some('\\') => chars.next().ok_or("unterminated character class"),
        Some(c) => Ok(c),
    }
}

/// Whether the whole of `path` matches the compiled pattern.
pub(super) fn matches(toks: &[Tok], path: &str) -> bool {
    let s: Vec<char> = path.chars().collect();
    let mut failed = vec![false; (toks.len() + 1) * (s.len() + 1)];
    Matcher {
        toks,
        s: &s,
        failed: &mut failed,
    }
    .at(0, 0)
}

struct Matcher<'a> {
    toks: &'a [Tok],
    s: &'a [char],
    /// Positions (token, character) known not to match, so backtracking stays polynomial.
    failed: &'a mut [bool],
}

impl Matcher<'_> {
    fn at(&mut self, t: usize, i: usize) -> bool {
        let key = t * (self.s.len() + 1) + i;
        if self.failed[key] {
            return false;
        }
        let c = self.s.get(i).copied();
        let ok = match self.toks.get(t) {
            None => i == self.s.len(),
            Some(Tok::Lit(l)) => c == Some(*l) && self.at(t + 1, i + 1),
            Some(Tok::One) => c.is_some_and(|c| c != '/') && self.at(t + 1, i + 1),
            Some(Tok::Class { negated, ranges }) => {
                c.is_some_and(|c| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                    && self.at(t + 1, i + 1)
            }
            Some(Tok::Star) => {
                let end = self.s[i..]
                    .iter()
                    .position(|&c| c == '/')
                    .map_or(self.s.len(), |p| i + p);
                (i..=end).any(|k| self.at(t + 1, k))
            }
            Some(Tok::AnyDirs) => {
                self.at(t + 1, i) || (i..self.s.len()).any(|k| self.s[k] == '/' && self.at(t + 1, k + 1))
            }
            Some(Tok::Rest) => (i..=self.s.len()).any(|k| self.at(t + 1, k)),
        };
        if !ok {
            self.failed[key] = true;
        }
        ok
    }
}
