//! Pod traffic shaping from the annotations kubelet passes through:
//! `kubernetes.io/ingress-bandwidth` and `kubernetes.io/egress-bandwidth`, Kubernetes
//! quantities in bits per second (`10M`, `1Gi`, `500k`).

use std::collections::BTreeMap;

use crate::network::Bandwidth;

pub const INGRESS: &str = "kubernetes.io/ingress-bandwidth";
pub const EGRESS: &str = "kubernetes.io/egress-bandwidth";

/// The shaping the annotations ask for; `None` when neither is set.
pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Option<Bandwidth>, String> {
    let get = |key: &str| {
        annotations
            .get(key)
            .map(|v| parse_quantity(v).ok_or_else(|| format!("{key}: {v:?} is not a quantity")))
    };
    let ingress = get(INGRESS).transpose()?;
    let egress = get(EGRESS).transpose()?;
    if ingress.is_none() && egress.is_none() {
        return Ok(None);
    }
    Ok(Some(Bandwidth {
        ingress_rate: ingress.unwrap_or(0),
        ingress_burst: 0,
        egress_rate: egress.unwrap_or(0),
        egress_burst: 0,
    }))
}

/// A Kubernetes quantity as an integer (`1.5M` = 1500000, `2Ki` = 2048).
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let value: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    let v = value * mult;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("10M"), Some(10_000_000));
        assert_eq!(parse_quantity("1.5k"), Some(1500));
        assert_eq!(parse_quantity("2Ki"), Some(2048));
        assert_eq!(parse_quantity("100"), Some(100));
        assert_eq!(parse_quantity("10X"), None);
        assert_eq!(parse_quantity("M"), None);
    }

    #[test]
    fn annotations() {
        let mut a = BTreeMap::new();
        assert_eq!(from_annotations(&a), Ok(None));
        a.insert(INGRESS.to_string(), "1M".to_string());
        let bw = from_annotations(&a).expect("ok").expect("some");
        assert_eq!((bw.ingress_rate, bw.egress_rate), (1_000_000, 0));
        a.insert(EGRESS.to_string(), "lots".to_string());
        assert!(from_annotations(&a).is_err());
    }
}
