use berth_proto as pb;

use crate::daemon::Daemon;
use crate::error::Result;

/// `UpdateRuntimeConfig`: the node's pod CIDR, substituted into a CNI config that asks for
/// it (`{{pod_cidr}}`). An empty CIDR changes nothing.
pub async fn update_runtime_config(
    d: &Daemon,
    req: pb::UpdateRuntimeConfigRequest,
) -> Result<pb::UpdateRuntimeConfigResponse> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    if !cidr.trim().is_empty() {
        if let Some(bad) = cidr.trim().split(',').find(|c| !is_cidr(c.trim())) {
            return Err(crate::error::Error::InvalidArgument(format!(
                "pod CIDR {:?} is not an address/prefix",
                bad.chars().take(80).collect::<String>()
            )));
        }
        d.sandboxes.network().update_pod_cidr(cidr.trim());
    }
    Ok(pb::UpdateRuntimeConfigResponse {})
}

/// `10.0.0.0/16`, `fd00::/64` (dual stack: one per comma-separated item).
fn is_cidr(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let max = match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 32,
        Ok(std::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cidrs() {
        for ok in ["10.88.0.0/16", "fd00::/64", "0.0.0.0/0"] {
            assert!(super::is_cidr(ok), "{ok}");
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "fd00::/129", ""] {
            assert!(!super::is_cidr(bad), "{bad}");
        }
    }
}
