//! Pressure stall information of a cgroup v2 directory (`cpu.pressure`, `memory.pressure`,
//! `io.pressure`). cgroup v1 has no pressure files: callers leave the figures unset there,
//! and a missing or unreadable file is None, never zeros.

use std::fs;
use std::path::Path;

/// One line of a pressure file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiData {
    /// Total stall time in nanoseconds (the file counts microseconds).
    pub total_ns: u64,
    /// Percentages over 10, 60 and 300 second windows.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
}

/// The `some` and `full` lines of one pressure file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pressure {
    pub some: PsiData,
    /// Absent from older kernels' cpu.pressure.
    pub full: Option<PsiData>,
}

/// Pressure of one cgroup, per resource.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    pub cpu: Option<Pressure>,
    pub memory: Option<Pressure>,
    pub io: Option<Pressure>,
}

impl Psi {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none() && self.io.is_none()
    }
}

/// Reads the pressure files of a cgroup v2 directory; None when it has none of them.
pub fn read(dir: &Path) -> Option<Psi> {
    let file = |name: &str| {
        let path = dir.join(name);
        let text = fs::read_to_string(&path).ok()?;
        parse(&text)
            .map_err(|e| tracing::debug!(path = %path.display(), error = %e, "pressure file"))
            .ok()
    };
    let psi = Psi {
        cpu: file("cpu.pressure"),
        memory: file("memory.pressure"),
        io: file("io.pressure"),
    };
    (!psi.is_empty()).then_some(psi)
}

/// Parses a pressure file: a `some` line and, usually, a `full` line.
pub fn parse(text: &str) -> Result<Pressure, String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let data = parse_data(fields).map_err(|e| format!("{kind} line: {e}"))?;
        match kind {
            "some" => some = Some(data),
            "full" => full = Some(data),
            other => return Err(format!("unknown line kind {other:?}")),
        }
    }
    let some = some.ok_or("no \"some\" line")?;
    Ok(Pressure { some, full })
}

fn parse_data<'a>(fields: impl Iterator<Item = &'a str>) -> Result<PsiData, String> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, found {field:?}"))?;
        let avg = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{key}: not a number: {value:?}"))
        };
        match key {
            "avg10" => avg10 = Some(avg()?),
            "avg60" => avg60 = Some(avg()?),
            "avg300" => avg300 = Some(avg()?),
            "total" => {
                let us = value
                    .parse::<u64>()
                    .map_err(|_| format!("total: not a number: {value:?}"))?;
                total = Some(us.saturating_mul(1000));
            }
            _ => {}
        }
    }
    match (avg10, avg60, avg300, total) {
        (Some(avg10), Some(avg60), Some(avg300), Some(total_ns)) => Ok(PsiData {
            total_ns,
            avg10,
            avg60,
            avg300,
        }),
        _ => Err("missing avg10, avg60, avg300 or total".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stats::testdir::TestDir;

    const CPU: &str = "some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\n\
                       full avg10=0.75 avg60=0.10 avg300=0.00 total=678\n";

    #[test]
    fn parses_some_and_full_in_nanoseconds() {
        let p = parse(CPU).unwrap();
        assert_eq!(
            p.some,
            PsiData {
                total_ns: 12_345_000,
                avg10: 1.5,
                avg60: 0.25,
                avg300: 0.0
            }
        );
        assert_eq!(p.full.unwrap().total_ns, 678_000);
        let only_some = parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=9\n").unwrap();
        assert_eq!(only_some.full, None);
    }

    #[test]
    fn refuses_malformed_files() {
        assert!(parse("").is_err());
        assert!(
            parse("full avg10=0 avg60=0 avg300=0 total=1\n").is_err(),
            "no some line"
        );
        assert!(parse("some avg10=x avg60=0 avg300=0 total=1\n").is_err());
        assert!(parse("some avg10=0 avg60=0 avg300=0\n").is_err(), "no total");
        assert!(parse("other avg10=0 avg60=0 avg300=0 total=1\n").is_err());
    }

    #[test]
    fn reads_what_the_directory_has() {
        let t = TestDir::new();
        let dir = t.sub("pod");
        assert_eq!(read(&dir), None, "no pressure files (cgroup v1): unset, not zeros");
        fs::write(dir.join("cpu.pressure"), CPU).unwrap();
        fs::write(dir.join("io.pressure"), "garbage\n").unwrap();
        let psi = read(&dir).unwrap();
        assert!(psi.cpu.is_some());
        assert_eq!(psi.memory, None);
        assert_eq!(psi.io, None, "a malformed file is left unset");
    }
}
