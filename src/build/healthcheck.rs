//! HEALTHCHECK as the image config records it (`Test`, durations in nanoseconds, `Retries`).

use serde_json::{json, Map, Value};

use super::dockerfile::{Args, Instruction};

/// A Go-style duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub fn duration(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration (like 30s or 1m30s)");
    let mut total: f64 = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as u64)
}

/// The `Healthcheck` object of a HEALTHCHECK instruction.
pub(super) fn parse(ins: &Instruction) -> Result<Value, String> {
    let text = match &ins.args {
        Args::Raw(t) => t.trim().to_string(),
        Args::Json(v) => return Err(format!("expected NONE or CMD …, found {v:?}")),
    };
    if text.eq_ignore_ascii_case("none") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
    if !word.eq_ignore_ascii_case("cmd") || rest.trim().is_empty() {
        return Err("expected NONE or CMD followed by a command".into());
    }
    let rest = rest.trim();
    let test: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(exec) if rest.starts_with('[') => ["CMD".to_string()].into_iter().chain(exec).collect(),
        _ => vec!["CMD-SHELL".into(), rest.to_string()],
    };
    let mut check = Map::new();
    check.insert("Test".into(), json!(test));
    for (flag, value) in &ins.flags {
        let key = match flag.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| format!("--retries={value:?} is not a count"))?;
                check.insert("Retries".into(), json!(n));
                continue;
            }
            other => return Err(format!("HEALTHCHECK has no flag --{other}")),
        };
        check.insert(key.into(), json!(duration(value)?));
    }
    Ok(Value::Object(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("30s"), Ok(30_000_000_000));
        assert_eq!(duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(duration("500ms"), Ok(500_000_000));
        assert!(duration("5").is_err());
        assert!(duration("").is_err());
        assert!(duration("3d").is_err());
    }
}
