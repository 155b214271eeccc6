//! Wall-clock time as unix nanoseconds and RFC 3339 with nanoseconds, in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Days since 1970-01-01 of a (year, month, day) (proleptic Gregorian; the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses RFC 3339 (`Z` or `±hh:mm`, optional fraction) to nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut f: String = frac[..digits].chars().take(9).collect();
        while f.len() < 9 {
            f.push('0');
        }
        nanos = f.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600 + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset;
    // Years past 2262 do not fit in i64 nanoseconds.
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Appends `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (always nine fraction digits, so lines sort
/// as text; kubelet parses it with Go's RFC3339Nano).
pub fn push_rfc3339_nano(ns: i64, out: &mut Vec<u8>) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    push_num(out, y.clamp(0, 9999) as u64, 4);
    out.push(b'-');
    push_num(out, u64::from(mo), 2);
    out.push(b'-');
    push_num(out, u64::from(d), 2);
    out.push(b'T');
    push_num(out, h as u64, 2);
    out.push(b':');
    push_num(out, mi as u64, 2);
    out.push(b':');
    push_num(out, s as u64, 2);
    out.push(b'.');
    push_num(out, frac as u64, 9);
    out.push(b'Z');
}

fn push_num(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (start..start + width).rev() {
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ns: i64) -> String {
        let mut v = Vec::new();
        push_rfc3339_nano(ns, &mut v);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn known_instants() {
        const S: i64 = 1_000_000_000;
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(fmt(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(fmt(951_782_400 * S), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(fmt(1_700_000_000 * S + 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(fmt(1_709_164_800 * S), "2024-02-29T00:00:00.000000000Z");
        assert_eq!(fmt(1_795_539_600 * S + 123_456_789), "2026-11-24T17:00:00.123456789Z");
        assert_eq!(fmt(4_102_444_800 * S), "2100-01-01T00:00:00.000000000Z");
        assert_eq!(fmt(4_102_444_799 * S), "2099-12-31T23:59:59.000000000Z");
        assert_eq!(civil_from_days(253_402_300_799 / 86_400), (9999, 12, 31));
        assert_eq!(civil_from_days(-62_135_596_800 / 86_400), (1, 1, 1));
    }

    fn month_len(y: i64, m: u32) -> u32 {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1]
    }

    #[test]
    fn every_day_follows_the_previous() {
        // 1600-01-01 .. about 2400: each day is the calendar successor of the one before.
        let mut prev = civil_from_days(-135_140);
        assert_eq!(prev, (1600, 1, 1));
        for days in -135_139..157_000 {
            let (y, m, d) = prev;
            let expect = if d < month_len(y, m) {
                (y, m, d + 1)
            } else if m == 12 {
                (y + 1, 1, 1)
            } else {
                (y, m + 1, 1)
            };
            prev = civil_from_days(days);
            assert_eq!(prev, expect, "day {days}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn now_is_sane() {
        let s = fmt(now_ns());
        assert_eq!(s.len(), 30);
        assert!(s.as_str() > "2024");
    }
}
