//! CNI results (spec 1.0.0/0.4.0 and 0.3.x share the shape used here) and the pod addresses
//! they carry.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use crate::network::PodNetworkStatus;

/// A CNI ADD result.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// Version of the result format.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces created or configured.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Assigned addresses.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS information.
    #[serde(default)]
    pub dns: Dns,
}

/// An interface of a result.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(default)]
    pub mac: String,
    /// Netns path for interfaces inside a sandbox; empty for host interfaces.
    #[serde(default)]
    pub sandbox: String,
}

/// An address of a result.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct IpConfig {
    /// `address/prefix`.
    pub address: String,
    /// Default gateway for this address.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Index into [`CniResult::interfaces`].
    #[serde(default)]
    pub interface: Option<usize>,
    /// `"4"` or `"6"` (0.3.x/0.4.0 only).
    #[serde(default)]
    pub version: Option<String>,
}

/// A route of a result.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Route {
    /// Destination CIDR.
    pub dst: String,
    /// Gateway, if any.
    #[serde(default)]
    pub gw: Option<String>,
}

/// DNS information of a result.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default)]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default)]
    pub options: Vec<String>,
}

impl CniResult {
    /// Parses a result object.
    pub fn parse(value: &Value) -> Result<CniResult, String> {
        if !value.is_object() {
            return Err("result is not a JSON object".into());
        }
        CniResult::deserialize(value).map_err(|e| e.to_string())
    }

    /// The addresses of the pod interface `ifname`, IPv4 first, then IPv6, each with its gateway.
    ///
    /// Preference: addresses whose `interface` index points at a sandbox interface named `ifname`;
    /// else those pointing at any sandbox interface; else (no usable indexes) all addresses.
    pub fn pod_ips(&self, ifname: &str) -> Result<Vec<(IpAddr, Option<IpAddr>)>, String> {
        let in_sandbox = |ip: &&IpConfig, want_name: bool| {
            ip.interface
                .and_then(|i| self.interfaces.get(i))
                .is_some_and(|iface| !iface.sandbox.is_empty() && (!want_name || iface.name == ifname))
        };
        let mut chosen: Vec<&IpConfig> = self.ips.iter().filter(|ip| in_sandbox(ip, true)).collect();
        if chosen.is_empty() {
            chosen = self.ips.iter().filter(|ip| in_sandbox(ip, false)).collect();
        }
        if chosen.is_empty() {
            chosen = self.ips.iter().collect();
        }
        let mut out = Vec::with_capacity(chosen.len());
        for ip in chosen {
            let addr = parse_address(&ip.address)?;
            let gateway = ip.gateway.as_deref().and_then(|g| g.parse::<IpAddr>().ok());
            out.push((addr, gateway));
        }
        // Stable: keeps the plugin's order within each family.
        out.sort_by_key(|(addr, _)| addr.is_ipv6());
        Ok(out)
    }
}

/// Parses `a.b.c.d/nn` (or a bare address).
fn parse_address(address: &str) -> Result<IpAddr, String> {
    let addr = address.split_once('/').map_or(address, |(a, _)| a);
    addr.parse()
        .map_err(|_| format!("invalid address {address:?} in result"))
}

/// Builds the pod status from the final result; an error when it holds no address.
pub fn pod_status(raw: &Value, ifname: &str) -> Result<PodNetworkStatus, String> {
    let result = CniResult::parse(raw)?;
    let ips = result.pod_ips(ifname)?;
    if ips.is_empty() {
        return Err(format!("no IP address for {ifname} in the result"));
    }
    Ok(PodNetworkStatus {
        interface: ifname.to_string(),
        gateway: ips[0].1,
        ips: ips.into_iter().map(|(a, _)| a).collect(),
        raw_result: raw.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1_sample() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:00:00:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:00:00:02"},
                {"name": "eth0", "mac": "aa:bb:cc:00:00:03", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"address": "fd00:10::5/64", "gateway": "fd00:10::1", "interface": 2},
                {"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 2},
                {"address": "10.22.0.1/16", "interface": 0}
            ],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
        })
    }

    #[test]
    fn parses_v1_and_selects_sandbox_eth0_v4_first() {
        let raw = v1_sample();
        let result = CniResult::parse(&raw).expect("parse");
        assert_eq!(result.interfaces.len(), 3);
        assert_eq!(result.routes[0].dst, "0.0.0.0/0");
        assert_eq!(result.dns.nameservers, vec!["10.96.0.10"]);
        let status = pod_status(&raw, "eth0").expect("status");
        let want: Vec<IpAddr> = vec!["10.22.0.5".parse().expect("ip"), "fd00:10::5".parse().expect("ip")];
        assert_eq!(status.ips, want);
        assert_eq!(status.gateway, Some("10.22.0.1".parse().expect("ip")));
        assert_eq!(status.interface, "eth0");
        assert_eq!(status.raw_result, raw);
    }

    #[test]
    fn parses_v031_with_version_fields() {
        let raw = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "eth0", "sandbox": "/proc/42/ns/net"}],
            "ips": [{"version": "4", "address": "192.168.1.7/24", "gateway": "192.168.1.1", "interface": 0}],
            "dns": {}
        });
        let result = CniResult::parse(&raw).expect("parse");
        assert_eq!(result.ips[0].version.as_deref(), Some("4"));
        let status = pod_status(&raw, "eth0").expect("status");
        assert_eq!(status.ips, vec!["192.168.1.7".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn falls_back_to_all_ips_without_indexes() {
        let raw = json!({"cniVersion": "0.3.1", "ips": [
            {"version": "6", "address": "fd00::2/64"},
            {"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"}
        ]});
        let status = pod_status(&raw, "eth0").expect("status");
        assert_eq!(status.ips.len(), 2);
        assert!(status.ips[0].is_ipv4() && status.ips[1].is_ipv6());
        assert_eq!(status.gateway, Some("10.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn other_sandbox_interface_name_is_still_used() {
        let raw = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/run/netns/x"}, {"name": "host0"}],
            "ips": [{"address": "10.1.0.9/24", "interface": 0}, {"address": "10.9.0.1/24", "interface": 1}]});
        let status = pod_status(&raw, "eth0").expect("status");
        assert_eq!(status.ips, vec!["10.1.0.9".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn rejects_bad_results() {
        assert!(pod_status(&json!({"cniVersion": "1.0.0", "ips": []}), "eth0").is_err());
        assert!(pod_status(&json!({"ips": [{"address": "nope/24"}]}), "eth0").is_err());
        assert!(pod_status(&json!(["not", "an", "object"]), "eth0").is_err());
        assert!(pod_status(&json!({"ips": "wrong type"}), "eth0").is_err());
    }
}
