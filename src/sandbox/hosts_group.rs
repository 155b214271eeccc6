//! Names across pods: pods carrying the annotation `io.berth.hosts.group` find each other
//! by hostname and by the names in `io.berth.hosts.aliases`, through their /etc/hosts,
//! which berthd rewrites for every ready pod of the group whenever one of them starts,
//! stops or goes (so a pod run again after a reboot, with a new address, is found again).
//! This is how `berthctl run --network-alias` and compose services reach each other.

use std::fmt::Write as _;

use super::{files, NsMode, SandboxRecord};

/// The annotation naming a pod's group.
pub const GROUP: &str = "io.berth.hosts.group";
/// The annotation with a pod's extra names, comma-separated.
pub const ALIASES: &str = "io.berth.hosts.aliases";

/// Whether `name` may go into a hosts file (a DNS label or name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && !name.starts_with(['-', '.'])
}

/// Checks the two annotations of a pod spec.
pub fn validate(annotations: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    for key in [GROUP, ALIASES] {
        if let Some(value) = annotations.get(key) {
            if let Some(bad) = value.split(',').find(|n| !valid_name(n)) {
                return Err(format!("annotation {key}: {bad:?} is not a host name"));
            }
        }
    }
    Ok(())
}

/// Each member's hosts file: its own entries, then one line per member address with the
/// member's names.
pub fn render(group: &str, members: &[SandboxRecord]) -> Vec<String> {
    let mut shared = format!("# pods of group {group}\n");
    for m in members {
        let names = names(m).join(" ");
        for ip in &m.ips {
            let _ = writeln!(shared, "{ip}\t{names}");
        }
    }
    members
        .iter()
        .map(|m| files::hosts(&hostname(m), &m.ips) + &shared)
        .collect()
}

/// The group of `rec`, if it has one and its own network.
pub fn group_of(rec: &SandboxRecord) -> Option<&str> {
    if rec.spec.namespaces.network == NsMode::Node {
        return None;
    }
    rec.spec.annotations.get(GROUP).map(String::as_str)
}

pub(super) fn hostname(rec: &SandboxRecord) -> String {
    if rec.spec.hostname.is_empty() {
        rec.spec.name.clone()
    } else {
        rec.spec.hostname.clone()
    }
}

pub(super) fn names(rec: &SandboxRecord) -> Vec<String> {
    let mut out: Vec<String> = rec
        .spec
        .annotations
        .get(ALIASES)
        .map(|a| a.split(',').filter(|n| valid_name(n)).map(str::to_string).collect())
        .unwrap_or_default();
    let own = hostname(rec);
    if valid_name(&own) && !out.contains(&own) {
        out.push(own);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_they_reach_a_hosts_file() {
        assert!(valid_name("db") && valid_name("web-1.local") && valid_name("my_svc"));
        for bad in ["", "a b", "x\n1.2.3.4 evil", "-x", ".x", "a\tb"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let mut a = std::collections::BTreeMap::new();
        a.insert(ALIASES.to_string(), "db,database".to_string());
        assert!(validate(&a).is_ok());
        a.insert(ALIASES.to_string(), "db,bad name".to_string());
        assert!(validate(&a).expect_err("bad name").contains("bad name"));
    }
}
