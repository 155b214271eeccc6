//! Docker's `--gpus` flag, mapped onto CDI device names of `nvidia.com/gpu`.

use std::collections::BTreeSet;

use super::{strip_outer_quotes, valid_device_name, KIND};

/// Maps a docker-style `--gpus` value to CDI device names: "all" → ["nvidia.com/gpu=all"]; "2" (count N) →
/// ["nvidia.com/gpu=0","nvidia.com/gpu=1"]; "device=0,2" or "device=GPU-xxxx" or "\"device=0,1\"" (docker allows the
/// quoted form) → one name each; "count=2" too; errors (Err(String) with a clear message) on empty, zero, garbage.
///
/// As with docker, the value is a comma-separated list of `key=value` options (`count`, `device`, `capabilities`,
/// `driver`, `options`) or a bare count; a list holding only options other than `count`/`device` means one GPU.
/// Unlike docker, bare items after `device=` (or `capabilities=`) continue that list, so the unquoted `device=0,2`
/// works.
/// `capabilities` and `options` are accepted and ignored.
pub fn gpus_flag_to_cdi(value: &str) -> Result<Vec<String>, String> {
    let trimmed = strip_outer_quotes(value.trim());
    if trimmed.trim().is_empty() {
        return Err("empty --gpus value: expected \"all\", a count, or device=ID[,ID...]".to_string());
    }
    let fields = split_csv(trimmed).map_err(|e| format!("invalid --gpus value {value:?}: {e}"))?;

    let mut count: Option<GpuCount> = None;
    let mut devices: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    // Key whose comma-separated list the current bare item continues (docker needs quotes for that).
    let mut list_key: Option<String> = None;
    for field in &fields {
        let field = field.trim();
        match field.split_once('=') {
            None if list_key.as_deref() == Some("device") => devices.push(field.to_string()),
            None if list_key.is_some() => {}
            None => {
                if !seen.insert("count".to_string()) {
                    return Err(format!("--gpus: count given more than once in {value:?}"));
                }
                count = Some(GpuCount::parse(field)?);
            }
            Some((key, val)) => {
                let key = key.trim();
                let val = val.trim();
                if !seen.insert(key.to_string()) {
                    return Err(format!("--gpus: option {key:?} given more than once in {value:?}"));
                }
                list_key = matches!(key, "device" | "capabilities").then(|| key.to_string());
                match key {
                    "device" => devices.extend(val.split(',').map(|d| d.trim().to_string())),
                    "count" => count = Some(GpuCount::parse(val)?),
                    "driver" => {
                        if !val.is_empty() && val != "nvidia" {
                            return Err(format!("--gpus: unsupported driver {val:?} (only \"nvidia\")"));
                        }
                    }
                    "capabilities" | "options" => {}
                    _ => return Err(format!("--gpus: unknown option {key:?} in {value:?}")),
                }
            }
        }
    }

    if !devices.is_empty() || seen.contains("device") {
        if count.is_some() {
            return Err(format!("--gpus: count and device cannot both be given ({value:?})"));
        }
        let mut names = Vec::new();
        for device in devices {
            if !valid_device_name(&device) {
                return Err(format!("--gpus: invalid device id {device:?} in {value:?}"));
            }
            let name = format!("{KIND}={device}");
            if !names.contains(&name) {
                names.push(name);
            }
        }
        return Ok(names);
    }
    Ok(match count.unwrap_or(GpuCount::N(1)) {
        GpuCount::All => vec![format!("{KIND}=all")],
        GpuCount::N(n) => (0..n).map(|i| format!("{KIND}={i}")).collect(),
    })
}

/// The number of GPUs a `--gpus` value asks for.
enum GpuCount {
    All,
    N(u32),
}

impl GpuCount {
    fn parse(text: &str) -> Result<GpuCount, String> {
        let text = text.trim();
        if text == "all" || text == "-1" {
            return Ok(GpuCount::All);
        }
        match text.parse::<u32>() {
            Ok(0) => Err("--gpus: a count of 0 requests no GPU".to_string()),
            Ok(n) if n > 1024 => Err(format!("--gpus: count {n} is not plausible")),
            Ok(n) => Ok(GpuCount::N(n)),
            Err(_) => Err(format!(
                "--gpus: {text:?} is neither \"all\", a count, nor key=value (e.g. device=0,1)"
            )),
        }
    }
}

/// Splits a CSV line as docker's `--gpus` parser does: commas separate fields, double quotes group.
fn split_csv(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("unbalanced double quote".to_string());
    }
    fields.push(field);
    if fields.iter().any(|f| f.trim().is_empty()) {
        return Err("empty item".to_string());
    }
    Ok(fields)
}
