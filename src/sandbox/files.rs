//! The files a pod's containers get from their sandbox: hostname, resolv.conf and hosts.

use std::fmt::Write as _;
use std::path::Path;

use super::Dns;

/// resolv.conf from the pod's DNS config; without one, the host's file.
pub fn resolv_conf(dns: Option<&Dns>) -> std::io::Result<String> {
    match dns {
        Some(d) if !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()) => {
            let mut out = String::new();
            if !d.searches.is_empty() {
                let _ = writeln!(out, "search {}", d.searches.join(" "));
            }
            for s in &d.servers {
                let _ = writeln!(out, "nameserver {s}");
            }
            if !d.options.is_empty() {
                let _ = writeln!(out, "options {}", d.options.join(" "));
            }
            Ok(out)
        }
        _ => match std::fs::read_to_string("/etc/resolv.conf") {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        },
    }
}

/// /etc/hosts for a pod with its own network: localhost entries plus the pod's address.
pub fn hosts(hostname: &str, ips: &[String]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if !hostname.is_empty() {
        for ip in ips {
            let _ = writeln!(out, "{ip}\t{hostname}");
        }
    }
    out
}

/// Writes a file atomically (temp file + rename) with mode 0644.
pub fn write(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(content.as_bytes())?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_from_dns_config() {
        let dns = Dns {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(Some(&dns)).expect("resolv"),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        // An empty config means the host's file.
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        assert_eq!(resolv_conf(Some(&Dns::default())).expect("host"), host);
    }

    #[test]
    fn hosts_has_localhost_and_pod() {
        let h = hosts("web-0", &["10.88.0.5".into()]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.88.0.5\tweb-0\n"));
    }
}
