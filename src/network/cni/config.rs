//! CNI network configuration: loading the config directory, `{{pod_cidr}}` substitution and
//! building each plugin's stdin (`name`, `cniVersion`, filtered `runtimeConfig`).

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::network::PodNetworkRequest;

/// Placeholder replaced by the node's pod CIDR (see [`NetworkConfigList::with_pod_cidr`]).
pub const POD_CIDR_PLACEHOLDER: &str = "{{pod_cidr}}";

/// Config versions accepted (their results share the 0.3.x/1.0.0 shape).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// File extensions read from the config directory.
pub const CONFIG_EXTENSIONS: &[&str] = &["conflist", "conf", "json"];

/// One network configuration list; a single-plugin `.conf` is wrapped as a one-entry list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// Network name (`name`).
    pub name: String,
    /// `cniVersion` of the list, injected into every plugin config.
    pub cni_version: String,
    /// `disableCheck`: CHECK is skipped when true.
    pub disable_check: bool,
    /// Plugins in execution order.
    pub plugins: Vec<PluginConfig>,
    /// File the list was read from.
    pub source: PathBuf,
}

/// One plugin entry of a list, kept as the raw JSON object from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Plugin `type`: the binary name.
    pub plugin_type: String,
    /// The plugin's JSON object as written in the file.
    pub raw: Map<String, Value>,
}

impl PluginConfig {
    /// Capabilities the plugin declares `true` in its `capabilities` map.
    pub fn capabilities(&self) -> Vec<&str> {
        match self.raw.get("capabilities") {
            Some(Value::Object(caps)) => caps
                .iter()
                .filter(|(_, v)| v.as_bool() == Some(true))
                .map(|(k, _)| k.as_str())
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl NetworkConfigList {
    /// Parses one config file; `path` decides `.conflist` handling and names errors.
    ///
    /// A `.conf`/`.json` file holding a `plugins` array is read as a list too.
    pub fn parse(path: &Path, text: &str) -> Result<NetworkConfigList, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(obj) = value else {
            return Err("not a JSON object".into());
        };
        let is_list = path.extension().is_some_and(|e| e == "conflist") || obj.contains_key("plugins");
        let name = match obj.get("name") {
            Some(Value::String(s)) if valid_network_name(s) => s.clone(),
            Some(Value::String(s)) => return Err(format!("invalid network name {s:?}")),
            _ => return Err("missing \"name\"".into()),
        };
        let cni_version = match obj.get("cniVersion") {
            Some(Value::String(v)) if SUPPORTED_VERSIONS.contains(&v.as_str()) => v.clone(),
            Some(Value::String(v)) => {
                return Err(format!(
                    "unsupported cniVersion {v:?} (supported: {})",
                    SUPPORTED_VERSIONS.join(", ")
                ))
            }
            _ => return Err("missing \"cniVersion\"".into()),
        };
        let disable_check = obj.get("disableCheck").and_then(Value::as_bool).unwrap_or(false);
        let raw_plugins = if is_list {
            match obj.get("plugins") {
                Some(Value::Array(list)) if !list.is_empty() => list.clone(),
                Some(Value::Array(_)) => return Err("\"plugins\" is empty".into()),
                _ => return Err("missing \"plugins\" array".into()),
            }
        } else {
            vec![Value::Object(obj.clone())]
        };
        let mut plugins = Vec::with_capacity(raw_plugins.len());
        for (i, plugin) in raw_plugins.into_iter().enumerate() {
            let Value::Object(raw) = plugin else {
                return Err(format!("plugin {i} is not a JSON object"));
            };
            let plugin_type = match raw.get("type") {
                Some(Value::String(t)) if valid_plugin_type(t) => t.clone(),
                Some(Value::String(t)) => return Err(format!("plugin {i} has an invalid type {t:?}")),
                _ => return Err(format!("plugin {i} has no \"type\"")),
            };
            plugins.push(PluginConfig { plugin_type, raw });
        }
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            plugins,
            source: path.to_path_buf(),
        })
    }

    /// Whether any string in the plugin configs contains [`POD_CIDR_PLACEHOLDER`].
    pub fn needs_pod_cidr(&self) -> bool {
        self.plugins.iter().any(|p| p.raw.values().any(contains_placeholder))
    }

    /// A copy with every [`POD_CIDR_PLACEHOLDER`] in plugin config strings replaced by `cidr`.
    pub fn with_pod_cidr(&self, cidr: &str) -> NetworkConfigList {
        let mut list = self.clone();
        for plugin in &mut list.plugins {
            for value in plugin.raw.values_mut() {
                substitute(value, cidr);
            }
        }
        list
    }

    /// Whether the list's version supports CHECK (>= 0.4.0) and it is not disabled.
    pub fn supports_check(&self) -> bool {
        !self.disable_check && version_supports_check(&self.cni_version)
    }

    /// The exact config a plugin gets on stdin, without `prevResult`: the file's object with
    /// `name` and `cniVersion` of the list, and `runtimeConfig` holding only the capabilities
    /// the plugin declares and `caps` provides (merged into any `runtimeConfig` already there).
    pub fn plugin_config(&self, plugin: &PluginConfig, caps: &Map<String, Value>) -> Map<String, Value> {
        let mut conf = plugin.raw.clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        let mut runtime = match conf.remove("runtimeConfig") {
            Some(Value::Object(rt)) => rt,
            _ => Map::new(),
        };
        for cap in plugin.capabilities() {
            if let Some(value) = caps.get(cap) {
                runtime.insert(cap.to_string(), value.clone());
            }
        }
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        conf
    }
}

/// True for versions >= 0.4.0.
pub fn version_supports_check(version: &str) -> bool {
    parse_version(version).is_some_and(|v| v >= (0, 4, 0))
}

fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let v = (parts.next()??, parts.next()??, parts.next().unwrap_or(Some(0))?);
    parts.next().is_none().then_some(v)
}

/// CNI network names: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (also safe as a file name part).
fn valid_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Plugin types are binary names: no path separators.
fn valid_plugin_type(t: &str) -> bool {
    !t.is_empty() && t != "." && t != ".." && !t.contains(['/', '\0'])
}

fn contains_placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(POD_CIDR_PLACEHOLDER),
        Value::Array(a) => a.iter().any(contains_placeholder),
        Value::Object(o) => o.values().any(contains_placeholder),
        _ => false,
    }
}

fn substitute(value: &mut Value, cidr: &str) {
    match value {
        Value::String(s) if s.contains(POD_CIDR_PLACEHOLDER) => *s = s.replace(POD_CIDR_PLACEHOLDER, cidr),
        Value::Array(a) => a.iter_mut().for_each(|v| substitute(v, cidr)),
        Value::Object(o) => o.values_mut().for_each(|v| substitute(v, cidr)),
        _ => {}
    }
}

/// Picks the pod CIDR from `UpdateRuntimeConfig` (comma-separated for dual stack: the first
/// entry is used); `None` when it is empty or not `address/prefix`.
pub fn parse_pod_cidr(cidr: &str) -> Option<String> {
    let first = cidr.split(',').map(str::trim).find(|s| !s.is_empty())?;
    let (addr, prefix) = first.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then(|| first.to_string())
}

/// The capability arguments a request offers (`portMappings`, `bandwidth`, `dns`, `cgroupPath`).
pub fn capability_args(req: &PodNetworkRequest) -> Map<String, Value> {
    let mut caps = Map::new();
    let ports: Vec<Value> = req
        .port_mappings
        .iter()
        .filter(|p| p.host_port != 0)
        .map(|p| {
            let mut m = json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": p.protocol,
            });
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                m["hostIP"] = Value::String(ip.to_string());
            }
            m
        })
        .collect();
    if !ports.is_empty() {
        caps.insert("portMappings".into(), Value::Array(ports));
    }
    if let Some(bw) = &req.bandwidth {
        let burst = |rate: u64, burst: u64| if rate > 0 && burst == 0 { i32::MAX as u64 } else { burst };
        caps.insert(
            "bandwidth".into(),
            json!({
                "ingressRate": bw.ingress_rate,
                "ingressBurst": burst(bw.ingress_rate, bw.ingress_burst),
                "egressRate": bw.egress_rate,
                "egressBurst": burst(bw.egress_rate, bw.egress_burst),
            }),
        );
    }
    if let Some(dns) = &req.dns {
        caps.insert("dns".into(), json!(dns));
    }
    if let Some(cg) = req.cgroup_path.as_deref().filter(|c| !c.is_empty()) {
        caps.insert("cgroupPath".into(), Value::String(cg.to_string()));
    }
    caps
}

/// Name, mtime, size, inode and ctime of every candidate file: cheap to recompute, compared on
/// each call.
pub type DirStamp = Vec<(String, Option<SystemTime>, u64, u64, i64)>;

/// Outcome of reading the config directory.
#[derive(Debug, Clone, Default)]
pub struct DirLoad {
    /// The first valid list, by file name.
    pub chosen: Option<NetworkConfigList>,
    /// Files skipped before it, with the reason.
    pub errors: Vec<(PathBuf, String)>,
    /// Why the directory itself could not be read.
    pub dir_error: Option<String>,
}

impl DirLoad {
    /// Human-readable reason why no config was chosen.
    pub fn not_ready_reason(&self, dir: &Path) -> String {
        if let Some(e) = &self.dir_error {
            return format!("cannot read CNI config dir {}: {e}", dir.display());
        }
        if self.errors.is_empty() {
            return format!(
                "no CNI network config (*.conflist, *.conf, *.json) in {}",
                dir.display()
            );
        }
        let files: Vec<String> = self
            .errors
            .iter()
            .map(|(p, e)| format!("{}: {e}", p.display()))
            .collect();
        format!("no valid CNI network config in {}: {}", dir.display(), files.join("; "))
    }
}

fn candidate_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ext_ok = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CONFIG_EXTENSIONS.contains(&e));
        if ext_ok && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Stamps the candidate files of `dir` (empty when it is missing or unreadable).
pub fn dir_stamp(dir: &Path) -> DirStamp {
    candidate_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mtime = meta.as_ref().and_then(|m| m.modified().ok());
            let (len, ino, ctime) = meta.map_or((0, 0, 0), |m| {
                (m.len(), m.ino(), m.ctime_nsec() + m.ctime() * 1_000_000_000)
            });
            (name, mtime, len, ino, ctime)
        })
        .collect()
}

/// Reads `dir` and picks the first valid config file by sorted name, logging skipped ones.
pub fn load_dir(dir: &Path) -> DirLoad {
    let mut load = DirLoad::default();
    let files = match candidate_files(dir) {
        Ok(files) => files,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            load.dir_error = Some(e.to_string());
            return load;
        }
    };
    for path in files {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| NetworkConfigList::parse(&path, &text));
        match parsed {
            Ok(list) => {
                tracing::info!(file = %path.display(), network = %list.name, "using CNI network config");
                load.chosen = Some(list);
                break;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping invalid CNI network config");
                load.errors.push((path, e));
            }
        }
    }
    load
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Bandwidth, DnsCapability, PortMapping, Protocol};

    const LIST: &str = r#"{"cniVersion": "1.0.0", "name": "podnet", "plugins": [
        {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "{{pod_cidr}}"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}, "runtimeConfig": {"x": 1}},
        {"type": "bandwidth", "capabilities": {"bandwidth": true, "dns": true}}
    ]}"#;

    fn list() -> NetworkConfigList {
        NetworkConfigList::parse(Path::new("/x/10-podnet.conflist"), LIST).expect("valid list")
    }

    #[test]
    fn loads_first_valid_file_by_name_and_records_skipped_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write("05-broken.conf", "{ not json");
        write(
            "07-noversion.conflist",
            r#"{"name": "n", "plugins": [{"type": "bridge"}]}"#,
        );
        write("10-b.conflist", LIST);
        write(
            "20-a.conf",
            r#"{"cniVersion": "0.4.0", "name": "other", "type": "ptp"}"#,
        );
        write("00-ignored.txt", "garbage");
        let load = load_dir(dir.path());
        let chosen = load.chosen.expect("a config");
        assert_eq!(chosen.name, "podnet");
        assert_eq!(chosen.source, dir.path().join("10-b.conflist"));
        let skipped: Vec<_> = load.errors.iter().map(|(p, _)| p.file_name().expect("name")).collect();
        assert_eq!(skipped, ["05-broken.conf", "07-noversion.conflist"]);
        assert!(load.errors[1].1.contains("cniVersion"), "{}", load.errors[1].1);
        assert_eq!(dir_stamp(dir.path()).len(), 4);
    }

    #[test]
    fn reason_names_files_when_none_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let load = load_dir(dir.path());
        assert!(load.chosen.is_none());
        assert!(load.not_ready_reason(dir.path()).contains("no CNI network config"));
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"cniVersion": "9.9.9", "name": "n", "type": "x"}"#,
        )
        .expect("write");
        let reason = load_dir(dir.path()).not_ready_reason(dir.path());
        assert!(
            reason.contains("a.json") && reason.contains("unsupported cniVersion"),
            "{reason}"
        );
        let missing = load_dir(&dir.path().join("nope"));
        assert!(missing.chosen.is_none() && missing.errors.is_empty() && missing.dir_error.is_none());
    }

    #[test]
    fn single_conf_is_wrapped_and_json_lists_are_lists() {
        let conf = r#"{"cniVersion": "0.3.1", "name": "single", "type": "bridge", "isGateway": true}"#;
        let list = NetworkConfigList::parse(Path::new("a.conf"), conf).expect("conf");
        assert_eq!((list.name.as_str(), list.cni_version.as_str()), ("single", "0.3.1"));
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.plugins[0].plugin_type, "bridge");
        assert_eq!(list.plugins[0].raw["isGateway"], Value::Bool(true));
        assert!(!list.supports_check());
        let json_list = NetworkConfigList::parse(Path::new("b.json"), LIST).expect("list in .json");
        assert_eq!(json_list.plugins.len(), 3);
        assert!(json_list.supports_check());
    }

    #[test]
    fn rejects_invalid_configs() {
        let bad = [
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": []}"#,
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}"#,
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}"#,
            r#"{"cniVersion": "1.0.0", "name": "bad/name", "plugins": [{"type": "bridge"}]}"#,
            r#"{"cniVersion": "0.2.0", "name": "n", "plugins": [{"type": "bridge"}]}"#,
            r#"{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}"#,
            r#"[1, 2]"#,
        ];
        for text in bad {
            assert!(
                NetworkConfigList::parse(Path::new("x.conflist"), text).is_err(),
                "{text}"
            );
        }
        let conf_without_type = r#"{"cniVersion": "1.0.0", "name": "n"}"#;
        assert!(NetworkConfigList::parse(Path::new("x.conf"), conf_without_type).is_err());
    }

    #[test]
    fn runtime_config_holds_only_declared_capabilities() {
        let list = list();
        let req = PodNetworkRequest {
            port_mappings: vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                },
                PortMapping {
                    host_port: 0,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: None,
                },
                PortMapping {
                    host_port: 5353,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: Some("127.0.0.1".into()),
                },
            ],
            bandwidth: Some(Bandwidth {
                ingress_rate: 1000,
                egress_rate: 2000,
                egress_burst: 64,
                ..Default::default()
            }),
            dns: Some(DnsCapability {
                servers: vec!["10.96.0.10".into()],
                ..Default::default()
            }),
            cgroup_path: Some("/kubepods/pod1".into()),
            ..Default::default()
        };
        let caps = capability_args(&req);
        assert_eq!(
            caps["portMappings"],
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
            ])
        );
        assert_eq!(caps["bandwidth"]["ingressBurst"], json!(i32::MAX));
        assert_eq!(caps["bandwidth"]["egressBurst"], json!(64));
        assert_eq!(caps["cgroupPath"], json!("/kubepods/pod1"));

        let bridge = list.plugin_config(&list.plugins[0], &caps);
        assert!(!bridge.contains_key("runtimeConfig"));
        assert_eq!(bridge["name"], json!("podnet"));
        assert_eq!(bridge["cniVersion"], json!("1.0.0"));
        let portmap = list.plugin_config(&list.plugins[1], &caps);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"x": 1, "portMappings": caps["portMappings"]})
        );
        let bandwidth = list.plugin_config(&list.plugins[2], &caps);
        let rt = bandwidth["runtimeConfig"].as_object().expect("runtimeConfig");
        assert_eq!(rt.keys().collect::<Vec<_>>(), ["bandwidth", "dns"]);
        assert_eq!(
            rt["dns"],
            json!({"servers": ["10.96.0.10"], "searches": [], "options": []})
        );

        let empty = capability_args(&PodNetworkRequest::default());
        assert!(empty.is_empty());
        assert!(!list
            .plugin_config(&list.plugins[2], &empty)
            .contains_key("runtimeConfig"));
    }

    #[test]
    fn pod_cidr_is_substituted_everywhere() {
        let list = list();
        assert!(list.needs_pod_cidr());
        let done = list.with_pod_cidr("10.244.3.0/24");
        assert!(!done.needs_pod_cidr());
        assert_eq!(
            done.plugins[0].raw["ipam"]["ranges"][0][0]["subnet"],
            json!("10.244.3.0/24")
        );
        assert_eq!(done.plugins[1], list.plugins[1]);
        let plain = NetworkConfigList::parse(Path::new("a.conf"), r#"{"cniVersion":"1.0.0","name":"n","type":"x"}"#)
            .expect("conf");
        assert!(!plain.needs_pod_cidr());
    }

    #[test]
    fn pod_cidr_parsing() {
        assert_eq!(parse_pod_cidr("10.244.1.0/24").as_deref(), Some("10.244.1.0/24"));
        assert_eq!(
            parse_pod_cidr(" 10.244.1.0/24,fd00::/64").as_deref(),
            Some("10.244.1.0/24")
        );
        assert_eq!(parse_pod_cidr("fd00:1::/64").as_deref(), Some("fd00:1::/64"));
        for bad in ["", "10.244.1.0", "10.244.1.0/33", "x/24", "\"},{\"/8"] {
            assert_eq!(parse_pod_cidr(bad), None, "{bad}");
        }
    }

    #[test]
    fn check_versions() {
        assert!(version_supports_check("0.4.0"));
        assert!(version_supports_check("1.0.0"));
        assert!(!version_supports_check("0.3.1"));
        assert!(!version_supports_check("garbage"));
    }
}
