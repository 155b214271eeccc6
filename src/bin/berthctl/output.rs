//! Output helpers shared by the commands: the `-o` formats, aligned tables, id truncation,
//! sizes, RFC 3339 times and "5 minutes ago".

use serde_json::Value;

/// `-o`: how a command prints what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints `value` as pretty JSON or YAML (tables are each command's own).
pub fn emit(value: &Value, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
        _ => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

/// How a list command trims and prints what it got (`--latest`, `--last`, `-q`, `-o`).
#[derive(Debug, Clone, Copy)]
pub struct ListView {
    pub latest: bool,
    pub last: Option<usize>,
    pub quiet: bool,
    pub output: Format,
}

/// The common tail of the list commands: keeps the newest (`items` come newest first),
/// prints ids for `-q` or the whole list as JSON/YAML under `key`; returns the items left
/// for the command's own table, or `None` when they have been printed.
pub fn list_view<T>(
    mut items: Vec<T>,
    view: ListView,
    key: &str,
    id: impl Fn(&T) -> &str,
    to_json: impl Fn(&T) -> Value,
) -> anyhow::Result<Option<Vec<T>>> {
    if view.latest {
        items.truncate(1);
    }
    if let Some(n) = view.last {
        items.truncate(n);
    }
    if view.quiet {
        for item in &items {
            println!("{}", id(item));
        }
        return Ok(None);
    }
    if view.output != Format::Table {
        let list: Vec<Value> = items.iter().map(to_json).collect();
        emit(&serde_json::json!({ key: list }), view.output)?;
        return Ok(None);
    }
    Ok(Some(items))
}

/// Renders rows under a header, each column as wide as its widest cell, three spaces apart.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(parts.join("   ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(header, rows));
}

/// The first 13 characters of an id (without `sha256:`) unless `full`.
pub fn short_id(id: &str, full: bool) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    if full {
        id.to_string()
    } else {
        id.chars().take(13).collect()
    }
}

/// Decimal size: 1.5MB, 12kB, 7B.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{}", units[u])
    }
}

/// A duration for people: "Less than a second", "5 minutes", "About an hour", "3 days".
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        0 => "Less than a second".into(),
        1..=59 => plural(secs, "second"),
        60..=119 => "About a minute".into(),
        120..=3599 => plural(secs / 60, "minute"),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => plural(secs / 3600, "hour"),
        172_800..=1_209_599 => plural(secs / 86400, "day"),
        1_209_600..=4_838_399 => plural(secs / 604_800, "week"),
        4_838_400..=63_071_999 => plural(secs / 2_592_000, "month"),
        _ => plural(secs / 31_536_000, "year"),
    }
}

/// "5 minutes ago" for a time in nanoseconds, as seen at `now` (nanoseconds).
pub fn ago(now: i64, then: i64) -> String {
    if then <= 0 {
        return "-".into();
    }
    format!("{} ago", human_duration((now - then) / 1_000_000_000))
}

pub use berth_shim::timefmt::{now_ns, parse_rfc3339};

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-01-02T03:04:05.000000006Z`.
pub fn rfc3339(ns: i64) -> String {
    let mut out = Vec::with_capacity(30);
    berth_shim::timefmt::push_rfc3339_nano(ns, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A relative duration like `90s`, `5m`, `2h`, `1h30m`, in nanoseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut num = String::new();
    if text.is_empty() {
        return None;
    }
    for c in text.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !num.is_empty() {
        total = total.checked_add(num.parse::<i64>().ok()?)?;
    }
    total.checked_mul(1_000_000_000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ago_wording() {
        let now = 1_700_000_000 * 1_000_000_000;
        let s = 1_000_000_000;
        assert_eq!(ago(now, now), "Less than a second ago");
        assert_eq!(ago(now, now - s), "1 second ago");
        assert_eq!(ago(now, now - 42 * s), "42 seconds ago");
        assert_eq!(ago(now, now - 90 * s), "About a minute ago");
        assert_eq!(ago(now, now - 300 * s), "5 minutes ago");
        assert_eq!(ago(now, now - 3700 * s), "About an hour ago");
        assert_eq!(ago(now, now - 5 * 3600 * s), "5 hours ago");
        assert_eq!(ago(now, now - 3 * 86400 * s), "3 days ago");
        assert_eq!(ago(now, now - 21 * 86400 * s), "3 weeks ago");
        assert_eq!(ago(now, 0), "-");
    }

    #[test]
    fn times_round_trip() {
        let t = parse_rfc3339("2026-01-02T03:04:05.000000006Z").unwrap();
        assert_eq!(rfc3339(t), "2026-01-02T03:04:05.000000006Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:01+01:00"), Some(1_000_000_000));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00.5Z").map(rfc3339).unwrap(),
            "2024-02-29T00:00:00.500000000Z"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_duration("1h30m"), Some(5400 * 1_000_000_000));
        assert_eq!(parse_duration("10"), Some(10 * 1_000_000_000));
        assert_eq!(parse_duration("5x"), None);
        // Found by fuzz/ (cri_log): overflows are None, not a panic or a wrapped time.
        assert_eq!(parse_rfc3339("2263-01-01T00:00:00Z"), None);
        assert!(parse_rfc3339("2262-04-11T23:47:16Z").is_some());
        assert_eq!(parse_duration("9223372036854775807d"), None);
        assert_eq!(parse_duration("9223372036854775807s"), None);
        assert_eq!(parse_duration("9223372036s9223372036s"), None);
    }

    #[test]
    fn tables_align() {
        let t = render_table(
            &["ID", "NAME", "STATE"],
            &[
                vec!["abc".into(), "long-name-here".into(), "Running".into()],
                vec!["abcdef0123".into(), "x".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "ID           NAME             STATE\nabc          long-name-here   Running\nabcdef0123   x\n"
        );
        assert_eq!(short_id("sha256:0123456789abcdef", false), "0123456789abc");
        assert_eq!(short_id("0123456789abcdef", true), "0123456789abcdef");
        assert_eq!(human_size(1_500_000), "1.5MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(12_000), "12kB");
    }
}
