//! CPU usage in nano cores, computed from successive (timestamp, cumulative usage) samples per key.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// Remembers the last (timestamp_ns, usage_ns) per key.
#[derive(Debug, Default)]
pub struct CpuRates {
    samples: Mutex<HashMap<String, (i64, u64)>>,
}

impl CpuRates {
    /// Records this sample; returns usage nano cores since the previous sample of `key`, or None for the first
    /// sample, when time did not advance, or when usage went backwards (the new sample still replaces the old).
    /// A sample older than the stored one (two concurrent callers) returns None and keeps the stored sample.
    pub fn observe(&self, key: &str, timestamp_ns: i64, usage_ns: u64) -> Option<u64> {
        let mut samples = self.lock();
        let previous = samples.get(key).copied();
        if matches!(previous, Some((t, _)) if timestamp_ns < t) {
            return None;
        }
        samples.insert(key.to_string(), (timestamp_ns, usage_ns));
        nano_cores(previous?, (timestamp_ns, usage_ns))
    }

    /// Like observe but does not store: the rate against the stored sample.
    pub fn peek(&self, key: &str, timestamp_ns: i64, usage_ns: u64) -> Option<u64> {
        let previous = self.lock().get(key).copied()?;
        nano_cores(previous, (timestamp_ns, usage_ns))
    }

    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Drops every key not in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|key, _| live.contains(key));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (i64, u64)>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// (Δusage * 1e9) / Δt, saturating at u64::MAX; None unless time advanced and usage did not go backwards.
fn nano_cores(previous: (i64, u64), current: (i64, u64)) -> Option<u64> {
    let elapsed = i128::from(current.0) - i128::from(previous.0);
    if elapsed <= 0 {
        return None;
    }
    let used = current.1.checked_sub(previous.1)?;
    let rate = u128::from(used) * 1_000_000_000 / elapsed.unsigned_abs();
    Some(u64::try_from(rate).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn first_sample_is_none_then_exact() {
        let rates = CpuRates::default();
        assert_eq!(rates.observe("c1", 10 * SEC, 1_000), None);
        // 0.5 s of CPU over 2 s = a quarter core.
        assert_eq!(rates.observe("c1", 12 * SEC, 1_000 + 500_000_000), Some(250_000_000));
        // 2 s of CPU over 1 s = two cores.
        assert_eq!(rates.observe("c1", 13 * SEC, 2_500_001_000), Some(2_000_000_000));
    }

    #[test]
    fn backwards_usage_is_none_and_replaces() {
        let rates = CpuRates::default();
        rates.observe("c1", SEC, 5_000);
        assert_eq!(rates.observe("c1", 2 * SEC, 1_000), None);
        assert_eq!(rates.observe("c1", 3 * SEC, 1_000 + SEC as u64), Some(SEC as u64));
    }

    #[test]
    fn time_not_advancing_is_none() {
        let rates = CpuRates::default();
        rates.observe("c1", SEC, 5_000);
        assert_eq!(rates.observe("c1", SEC, 6_000), None);
    }

    #[test]
    fn older_sample_is_ignored() {
        let rates = CpuRates::default();
        rates.observe("c1", 10 * SEC, 1_000);
        assert_eq!(rates.observe("c1", 5 * SEC, 0), None);
        assert_eq!(rates.observe("c1", 11 * SEC, 1_000 + SEC as u64), Some(SEC as u64));
    }

    #[test]
    fn peek_does_not_store() {
        let rates = CpuRates::default();
        assert_eq!(rates.peek("c1", SEC, 0), None);
        rates.observe("c1", SEC, 0);
        assert_eq!(rates.peek("c1", 2 * SEC, SEC as u64), Some(SEC as u64));
        assert_eq!(rates.peek("c1", 3 * SEC, SEC as u64), Some(SEC as u64 / 2));
        assert_eq!(rates.observe("c1", 2 * SEC, SEC as u64), Some(SEC as u64));
    }

    #[test]
    fn forget_and_retain() {
        let rates = CpuRates::default();
        for key in ["a", "b", "c"] {
            rates.observe(key, SEC, 0);
        }
        rates.forget("a");
        let live: HashSet<String> = ["b".to_string()].into_iter().collect();
        rates.retain(&live);
        assert_eq!(rates.observe("a", 2 * SEC, 1), None);
        assert_eq!(rates.observe("b", 2 * SEC, 1), Some(1));
        assert_eq!(rates.observe("c", 2 * SEC, 1), None);
    }

    #[test]
    fn huge_rate_saturates() {
        assert_eq!(nano_cores((0, 0), (1, u64::MAX)), Some(u64::MAX));
        assert_eq!(nano_cores((i64::MIN, 0), (i64::MAX, 0)), Some(0));
    }
}
