//! Entry paths: split into components, with the escapes layers try refused.

use super::{escape, UnpackError};

/// Splits an entry path into components, dropping empty and `.` ones.
/// `link` selects the error texts for a hard link target.
pub(crate) fn components<'p>(raw: &'p [u8], shown: &str, link: bool) -> Result<Vec<&'p [u8]>, UnpackError> {
    let (absolute, dotdot, nul) = if link {
        (
            "hard link target is absolute",
            "hard link target has a '..' component",
            "hard link target contains NUL",
        )
    } else {
        (
            "path is absolute",
            "path has a '..' component",
            "path contains a NUL byte",
        )
    };
    if raw.first() == Some(&b'/') {
        return Err(escape(shown, absolute));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(escape(shown, dotdot)),
            c if c.contains(&0) => return Err(escape(shown, nul)),
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(super) fn join(comps: &[&[u8]]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}
