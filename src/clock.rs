//! Wall-clock time as the CRI and the records keep it: nanoseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the epoch (0 if the clock is before it).
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_after_2020_and_does_not_go_back() {
        let a = super::now_nanos();
        let b = super::now_nanos();
        assert!(a > 1_577_836_800_000_000_000, "{a}");
        assert!(b >= a);
    }
}
