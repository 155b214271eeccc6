//! `.dockerignore`: which paths of the build context are left out of it.

use super::glob::{compile, glob_match, matches, Tok};

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: re-includes what earlier patterns excluded.
    exception: bool,
    /// The cleaned pattern text (no `!`, no leading `/`).
    text: String,
    toks: Vec<Tok>,
}

impl Pattern {
    /// Whether the pattern matches `path` or one of its parent directories.
    fn matches_or_parent(&self, path: &str) -> bool {
        matches(&self.toks, path) || path.match_indices('/').any(|(i, _)| matches(&self.toks, &path[..i]))
    }
}

impl Ignore {
    /// Parses the file: lines starting with `#` are comments, blank lines are skipped, the rest
    /// trimmed; `!` makes an exception; each pattern is cleaned like Go's `filepath.Clean`
    /// (`.` and `..` resolved, doubled and trailing `/` dropped) and a leading `/` stripped
    /// (patterns are relative to the context root). `*`, `?`, `[…]` and `\` are as in
    /// [`glob_match`](super::glob_match); `**` matches any number of directories (zero
    /// included). A malformed pattern is an error.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                return Err("illegal exclusion pattern: \"!\"".to_string());
            }
            let mut text = clean(pattern);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            let toks = compile(&text, true)?;
            patterns.push(Pattern { exception, text, toks });
        }
        Ok(Ignore { patterns })
    }

    /// Whether there are no patterns at all (nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the context path `rel` (relative, `/`-separated) is excluded. The last pattern
    /// that matches it, or one of its parent directories, decides: an exclusion excludes, an
    /// exception re-includes.
    pub fn excludes(&self, rel: &str) -> bool {
        let rel = normalize(rel);
        let mut excluded = false;
        for p in &self.patterns {
            // Only an exclusion can change an included path, only an exception an excluded one.
            if p.exception != excluded {
                continue;
            }
            if p.matches_or_parent(&rel) {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether an exception could re-include something under the directory `dir`, so that a
    /// walker must still descend into it even though `dir` itself is excluded. Conservative: a
    /// `**` in the part of an exception that lines up with `dir` counts as a possible match.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let dir = normalize(dir);
        let dir_segs: Vec<&str> = if dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        self.patterns.iter().filter(|p| p.exception).any(|p| {
            for (pat, seg) in p.text.split('/').zip(&dir_segs) {
                if pat.contains("**") {
                    return true;
                }
                if !glob_match(pat, seg).unwrap_or(true) {
                    return false;
                }
            }
            // The exception names `dir`, one of its parents or something below it.
            true
        })
    }
}

/// A context path as the patterns see it: no `./`, no leading or trailing `/`.
fn normalize(rel: &str) -> String {
    let cleaned = clean(rel);
    let trimmed = cleaned.trim_start_matches('/');
    if trimmed == "." {
        String::new()
    } else {
        trimmed.to_string()
    }
}

/// Go's `filepath.Clean` on `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}
