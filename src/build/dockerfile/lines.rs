//! From the Dockerfile's text to logical lines: parser directives read off the top, comments
//! and blank lines dropped, continuation lines joined.

use std::collections::BTreeSet;

use super::ast::ParseError;

/// One instruction's text, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogicalLine {
    /// 1-based line the instruction starts on.
    pub line: usize,
    /// The lines joined as Docker joins them: the escape character and the whitespace after it
    /// removed, the next line appended as it is.
    pub text: String,
    /// The lines joined for display: a single space at each break that had whitespace on either
    /// side, none where neither side had any (as the joined text reads), trimmed.
    pub original: String,
}

/// The escape character and the logical lines of `text`.
pub(super) fn split(text: &str) -> Result<(char, Vec<LogicalLine>), ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut escape = '\\';
    let mut directives_done = false;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let number = i + 1;
        let first = raw[i].trim_start();
        i += 1;
        if !directives_done {
            match directive(first) {
                Some((name, value)) => {
                    if !seen.insert(name.clone()) {
                        return Err(ParseError::new(
                            number,
                            format!("only one {name} parser directive can be used"),
                        ));
                    }
                    if name == "escape" {
                        escape = match value.as_str() {
                            "\\" => '\\',
                            "`" => '`',
                            _ => {
                                return Err(ParseError::new(
                                    number,
                                    format!("invalid escape token '{value}' does not match ` or \\"),
                                ))
                            }
                        };
                    }
                    continue;
                }
                None => directives_done = true,
            }
        }
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let (body, mut more) = strip_continuation(first, escape);
        let mut joined = body.to_string();
        let mut original = body.to_string();
        while more && i < raw.len() {
            let line = raw[i];
            i += 1;
            let trimmed = line.trim_start();
            // Comment and blank lines inside a continued instruction are skipped.
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (piece, again) = strip_continuation(line, escape);
            joined.push_str(piece);
            join_original(&mut original, piece);
            more = again;
        }
        out.push(LogicalLine {
            line: number,
            text: joined.trim().to_string(),
            original: original.trim().to_string(),
        });
    }
    Ok((escape, out))
}

/// A known parser directive on a (left-trimmed) line: `# name=value`, the name lower-cased.
/// `None` for anything else, unknown directives included (they are comments).
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[name_len..].trim_start().strip_prefix('=')?.trim();
    let name = name.to_ascii_lowercase();
    if value.is_empty() || !matches!(name.as_str(), "escape" | "syntax" | "check") {
        return None;
    }
    Some((name, value.to_string()))
}

/// The line without a trailing escape character (and the spaces or tabs after it), and whether
/// it had one (the instruction goes on on the next line).
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(body) => (body, true),
        None => (line, false),
    }
}

/// Appends a continuation piece to the display text.
fn join_original(original: &mut String, piece: &str) {
    let next = piece.trim_start();
    if next.is_empty() {
        return;
    }
    let spaced = original.ends_with(char::is_whitespace) || piece.starts_with(char::is_whitespace);
    original.truncate(original.trim_end().len());
    if spaced && !original.is_empty() {
        original.push(' ');
    }
    original.push_str(next);
}
