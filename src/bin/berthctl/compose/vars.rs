//! Compose's variables: `.env` files and `${VAR}` interpolation.

use std::collections::HashMap;

use anyhow::{bail, Context as _};

/// `KEY=VALUE` lines of a `.env` file (comments and blank lines skipped).
pub fn dotenv(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches(['"', '\'']).to_string()))
        .collect()
}

/// `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `$$` for `$`.
pub fn interpolate(text: &str, vars: &HashMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').context("a ${ is not closed")?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let (name, op, arg) = match expr.find([':', '-', '?']) {
                Some(j) if expr[j..].starts_with(":-") || expr[j..].starts_with(":?") => {
                    (&expr[..j], &expr[j..j + 2], &expr[j + 2..])
                }
                Some(j) => (&expr[..j], &expr[j..j + 1], &expr[j + 1..]),
                None => (expr, "", ""),
            };
            let value = vars.get(name);
            match op {
                ":-" => out.push_str(value.filter(|v| !v.is_empty()).map_or(arg, String::as_str)),
                "-" => out.push_str(value.map_or(arg, String::as_str)),
                ":?" | "?" => match value.filter(|v| op == "?" || !v.is_empty()) {
                    Some(v) => out.push_str(v),
                    None => bail!("variable {name} is required: {arg}"),
                },
                _ => out.push_str(value.map_or("", String::as_str)),
            }
        } else {
            let len = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(vars.get(&rest[..len]).map_or("", String::as_str));
                rest = &rest[len..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}
