//! Parsers for the flags of `run` and friends: labels, `-p` ports, `-v` volumes, sizes,
//! `--cpus`, `--env-file` and `-u`.

use std::collections::HashMap;

use anyhow::{bail, Context as _};
use berth_proto as pb;

/// `KEY=VALUE` pairs (a bare `KEY` has an empty value).
pub fn parse_labels(list: &[String]) -> anyhow::Result<HashMap<String, String>> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            if k.is_empty() {
                bail!("label {l:?}: the key is empty");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// `-p [IP:][HOST:]CONTAINER[/tcp|udp|sctp]`; no HOST (or an empty one) is host port 0,
/// for `run` to pick a free one.
pub fn parse_port(spec: &str) -> anyhow::Result<pb::PortMapping> {
    let (addr, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    let protocol = match proto.as_str() {
        "tcp" => pb::Protocol::Tcp,
        "udp" => pb::Protocol::Udp,
        "sctp" => pb::Protocol::Sctp,
        other => bail!("-p {spec:?}: unknown protocol {other:?} (tcp, udp or sctp)"),
    };
    let parts: Vec<&str> = match addr.strip_prefix('[') {
        // [v6]:HOST:CTR
        Some(rest) => {
            let (ip, ports) = rest
                .split_once("]:")
                .with_context(|| format!("-p {spec:?}: expected [IPv6]:HOST:CONTAINER"))?;
            let mut v = vec![ip];
            v.extend(ports.split(':'));
            v
        }
        None => addr.split(':').collect(),
    };
    let port = |s: &str, what: &str| -> anyhow::Result<i32> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p as i32),
            _ => bail!("-p {spec:?}: {what} port {s:?} is not a number from 1 to 65535"),
        }
    };
    let (host_ip, host, ctr) = match parts.as_slice() {
        [host, ctr] => (String::new(), *host, *ctr),
        [ip, host, ctr] => {
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| anyhow::anyhow!("-p {spec:?}: {ip:?} is not an IP address"))?;
            (ip.to_string(), *host, *ctr)
        }
        [ctr] => (String::new(), "", *ctr),
        _ => bail!("-p {spec:?}: expected [IP:]HOST:CONTAINER[/PROTOCOL]"),
    };
    Ok(pb::PortMapping {
        protocol: protocol as i32,
        container_port: port(ctr, "container")?,
        host_port: if host.is_empty() { 0 } else { port(host, "host")? },
        host_ip,
    })
}

/// How docker shows a mapping: `0.0.0.0:8080->80/tcp`.
pub fn show_port(p: &pb::PortMapping) -> String {
    let proto = match p.protocol {
        1 => "udp",
        2 => "sctp",
        _ => "tcp",
    };
    let ip = if p.host_ip.is_empty() { "0.0.0.0" } else { &p.host_ip };
    format!("{ip}:{}->{}/{proto}", p.host_port, p.container_port)
}

/// A size like `512m`, `1g`, `100k`, `4096` or `1.5g` (binary units, as docker takes them).
pub fn parse_size(text: &str) -> anyhow::Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| format!("size {text:?}: expected a positive number with an optional k, m, g or t"))?;
    Ok((v * mult as f64) as i64)
}

/// `--cpus 1.5` as (period, quota) in microseconds.
pub fn parse_cpus(text: &str) -> anyhow::Result<(i64, i64)> {
    let v: f64 = text
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| format!("--cpus {text:?}: expected a positive number like 0.5 or 2"))?;
    let period = 100_000i64;
    let quota = (v * period as f64).round() as i64;
    if quota < 1000 {
        bail!("--cpus {text:?}: too small (at least 0.01)");
    }
    Ok((period, quota))
}

/// An env file: `KEY=VALUE` lines; blank lines and `#` comments skipped; a bare `KEY`
/// takes the value from `lookup` (this shell's environment).
pub fn parse_env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some(("", _)) => bail!("line {}: the variable name is empty", n + 1),
            Some((k, v)) => {
                if k.contains(char::is_whitespace) {
                    bail!("line {}: {k:?} has white space in the name", n + 1);
                }
                out.push((k.to_string(), v.to_string()));
            }
            None => {
                let k = line.trim_end();
                if let Some(v) = lookup(k) {
                    out.push((k.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

/// `-u`: `uid[:gid]` numbers or a user name (looked up in the image by berthd).
#[derive(Debug, PartialEq, Eq)]
pub enum User {
    Id { uid: i64, gid: Option<i64> },
    Name(String),
}

pub fn parse_user(text: &str) -> anyhow::Result<User> {
    let (u, g) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    if u.is_empty() {
        bail!("-u {text:?}: the user is empty");
    }
    match u.parse::<i64>() {
        Ok(uid) if uid >= 0 => {
            let gid = match g {
                None => None,
                Some(g) => Some(
                    g.parse::<i64>()
                        .ok()
                        .filter(|g| *g >= 0)
                        .with_context(|| format!("-u {text:?}: with a numeric uid the group must be a number too"))?,
                ),
            };
            Ok(User::Id { uid, gid })
        }
        _ if g.is_some() => bail!("-u {text:?}: a group goes only with a numeric uid (uid:gid)"),
        _ => Ok(User::Name(u.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol, p.host_ip.as_str()),
            (8080, 80, 0, "")
        );
        let p = parse_port("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!((p.host_port, p.container_port, p.protocol), (53, 5353, 1));
        assert_eq!(p.host_ip, "127.0.0.1");
        assert_eq!(show_port(&p), "127.0.0.1:53->5353/udp");
        let p = parse_port("[::1]:8443:443").unwrap();
        assert_eq!(p.host_ip, "::1");
        assert_eq!(parse_port("80").unwrap().host_port, 0, "picked later");
        assert_eq!(parse_port("127.0.0.1::80").unwrap().host_port, 0);
        assert!(parse_port("x:80").is_err());
        assert!(parse_port("1:2/icmp").is_err());
        assert!(parse_port("1.2.3:1:2").is_err());
        assert!(parse_port("0:80").is_err());
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("100k").unwrap(), 100 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("64mb").unwrap(), 64 << 20);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1m").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), (100_000, 150_000));
        assert_eq!(parse_cpus("0.25").unwrap(), (100_000, 25_000));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("two").is_err());
    }

    #[test]
    fn env_files_users_labels() {
        let text = "# comment\n\nA=1\nB=x=y\n  C=\nFROM_SHELL\nMISSING\n";
        let env = parse_env_file(text, |k| (k == "FROM_SHELL").then(|| "s".to_string())).unwrap();
        let want: Vec<(String, String)> = [("A", "1"), ("B", "x=y"), ("C", ""), ("FROM_SHELL", "s")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(env, want);
        assert!(parse_env_file("=1\n", |_| None).is_err());
        assert!(parse_env_file("A B=1\n", |_| None).is_err());
        assert_eq!(parse_user("1000").unwrap(), User::Id { uid: 1000, gid: None });
        assert_eq!(
            parse_user("1000:100").unwrap(),
            User::Id {
                uid: 1000,
                gid: Some(100)
            }
        );
        assert_eq!(parse_user("nobody").unwrap(), User::Name("nobody".into()));
        assert!(parse_user("nobody:100").is_err());
        assert!(parse_user("1:x").is_err());
        let l = parse_labels(&["a=b".into(), "c".into()]).unwrap();
        assert_eq!(l.get("a").map(String::as_str), Some("b"));
        assert_eq!(l.get("c").map(String::as_str), Some(""));
        assert!(parse_labels(&["=x".into()]).is_err());
    }
}
