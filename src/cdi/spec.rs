//! CDI spec files: serde types for the Container Device Interface spec format (versions
//! 0.3.0 to 1.0.0, JSON or YAML) and their validation.
//!
//! Berth keeps its own types rather than the CDI project's crate: the format is small, and the
//! crate would bring a JSON-schema validator, an HTTP client and a CLI parser into the daemon.
//! Unknown fields are ignored (a newer spec still loads); every field Berth uses is checked,
//! and an error names the field (`devices[1].containerEdits.mounts[0].hostPath: ...`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Spec versions Berth understands, oldest first.
pub const VERSIONS: &[&str] = &["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0"];

/// One CDI spec file: a kind (`vendor.com/class`) and its devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub cdi_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Edits applied once whenever any device of this spec is injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_edits: Option<ContainerEdits>,
}

/// A named device of a spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub container_edits: ContainerEdits,
}

/// Changes to a container's OCI spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<IntelRdt>,
    #[serde(default, rename = "additionalGIDs", skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net_devices: Vec<NetDevice>,
}

/// A device node to create in the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    /// Path in the container.
    pub path: String,
    /// Host node to copy type and numbers from (default: `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// `c`, `b`, `u` or `p`; read from the host node when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    /// Device cgroup access, some of `rwm` (default `rwm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// A mount to add to the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// An OCI hook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// Intel RDT class of service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntelRdt {
    #[serde(default, rename = "closID", skip_serializing_if = "Option::is_none")]
    pub clos_id: Option<String>,
    #[serde(default, rename = "l3CacheSchema", skip_serializing_if = "Option::is_none")]
    pub l3_cache_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_bw_schema: Option<String>,
    #[serde(default, rename = "enableCMT", skip_serializing_if = "Option::is_none")]
    pub enable_cmt: Option<bool>,
    #[serde(default, rename = "enableMBM", skip_serializing_if = "Option::is_none")]
    pub enable_mbm: Option<bool>,
}

/// A host network interface moved into the container's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetDevice {
    pub host_interface_name: String,
    #[serde(default)]
    pub name: String,
}

/// OCI hook points a CDI hook may name.
pub const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Parses a spec file's bytes: JSON when the name ends in `.json`, YAML otherwise (YAML is a
/// superset of JSON, so either reads either). The spec is validated.
pub fn parse(name: &Path, bytes: &[u8]) -> Result<Spec, String> {
    let spec: Spec = if name.extension().is_some_and(|e| e == "json") {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_slice(bytes).map_err(|e| e.to_string())?
    };
    validate(&spec)?;
    Ok(spec)
}

/// Checks a parsed spec; the error names the offending field.
pub fn validate(spec: &Spec) -> Result<(), String> {
    if !VERSIONS.contains(&spec.cdi_version.as_str()) {
        return Err(format!(
            "cdiVersion: {:?} is not one of {}",
            spec.cdi_version,
            VERSIONS.join(", ")
        ));
    }
    parse_kind(&spec.kind).map_err(|e| format!("kind: {e}"))?;
    if spec.devices.is_empty() {
        return Err("devices: a spec must declare at least one device".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, d) in spec.devices.iter().enumerate() {
        valid_device_name(&d.name).map_err(|e| format!("devices[{i}].name: {e}"))?;
        if !seen.insert(d.name.as_str()) {
            return Err(format!("devices[{i}].name: {:?} is declared twice", d.name));
        }
        validate_edits(&d.container_edits).map_err(|e| format!("devices[{i}].containerEdits.{e}"))?;
        if d.container_edits.is_empty() {
            return Err(format!("devices[{i}].containerEdits: a device must edit something"));
        }
    }
    if let Some(e) = &spec.container_edits {
        validate_edits(e).map_err(|e| format!("containerEdits.{e}"))?;
    }
    Ok(())
}

impl ContainerEdits {
    /// Whether these edits change nothing.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.device_nodes.is_empty()
            && self.hooks.is_empty()
            && self.mounts.is_empty()
            && self.intel_rdt.is_none()
            && self.additional_gids.is_empty()
            && self.net_devices.is_empty()
    }
}

fn absolute(field: &str, p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(format!("{field}: {p:?} is not an absolute path"))
    }
}

fn validate_edits(e: &ContainerEdits) -> Result<(), String> {
    for (i, v) in e.env.iter().enumerate() {
        if v.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            return Err(format!("env[{i}]: {v:?} is not KEY=VALUE"));
        }
    }
    for (i, n) in e.device_nodes.iter().enumerate() {
        let f = |what: &str| format!("deviceNodes[{i}].{what}");
        absolute(&f("path"), &n.path)?;
        if let Some(h) = &n.host_path {
            absolute(&f("hostPath"), h)?;
        }
        if let Some(t) = &n.typ {
            if !matches!(t.as_str(), "c" | "b" | "u" | "p") {
                return Err(format!("{}: {t:?} is not one of c, b, u, p", f("type")));
            }
            if t == "p" && (n.major.is_some() || n.minor.is_some()) {
                return Err(format!("{}: a fifo has no device numbers", f("major")));
            }
        }
        if let Some(p) = &n.permissions {
            if p.is_empty() || !p.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                return Err(format!("{}: {p:?} is not a subset of \"rwm\"", f("permissions")));
            }
        }
        if n.major.is_some_and(|m| m < 0) || n.minor.is_some_and(|m| m < 0) {
            return Err(format!("{}: device numbers cannot be negative", f("major")));
        }
    }
    for (i, h) in e.hooks.iter().enumerate() {
        if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
            return Err(format!(
                "hooks[{i}].hookName: {:?} is not one of {}",
                h.hook_name,
                HOOK_NAMES.join(", ")
            ));
        }
        absolute(&format!("hooks[{i}].path"), &h.path)?;
        if h.timeout.is_some_and(|t| t <= 0) {
            return Err(format!("hooks[{i}].timeout: must be positive"));
        }
    }
    for (i, m) in e.mounts.iter().enumerate() {
        if m.host_path.is_empty() {
            return Err(format!("mounts[{i}].hostPath: empty"));
        }
        absolute(&format!("mounts[{i}].containerPath"), &m.container_path)?;
    }
    for (i, n) in e.net_devices.iter().enumerate() {
        if n.host_interface_name.is_empty() || n.host_interface_name.contains('/') {
            return Err(format!(
                "netDevices[{i}].hostInterfaceName: {:?} is not an interface name",
                n.host_interface_name
            ));
        }
    }
    Ok(())
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Splits `vendor.com/class`; both parts start and end with a letter or digit, the vendor may
/// hold `.`, `-`, `_`, the class `-`, `_`.
pub fn parse_kind(kind: &str) -> Result<(&str, &str), String> {
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| format!("{kind:?} is not vendor/class"))?;
    let ok = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.starts_with(is_alnum)
            && s.ends_with(is_alnum)
            && s.chars().all(|c| is_alnum(c) || extra.contains(&c))
    };
    if !ok(vendor, &['.', '-', '_']) {
        return Err(format!("vendor {vendor:?} in {kind:?} is not a valid name"));
    }
    if !ok(class, &['-', '_']) {
        return Err(format!("class {class:?} in {kind:?} is not a valid name"));
    }
    Ok((vendor, class))
}

/// A device name starts and ends with a letter or digit and holds letters, digits, `_`, `-`,
/// `.` and `:`.
pub fn valid_device_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.starts_with(is_alnum)
        && name.ends_with(is_alnum)
        && name.chars().all(|c| is_alnum(c) || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid device name"))
    }
}

/// Splits a fully qualified device name `vendor.com/class=name` into kind and name.
pub fn parse_qualified(qualified: &str) -> Result<(&str, &str), String> {
    let (kind, name) = qualified
        .split_once('=')
        .ok_or_else(|| format!("{qualified:?} is not a fully qualified CDI device name (vendor.com/class=name)"))?;
    parse_kind(kind).map_err(|e| format!("{qualified:?}: {e}"))?;
    valid_device_name(name).map_err(|e| format!("{qualified:?}: {e}"))?;
    Ok((kind, name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const JSON: &str = r#"{
      "cdiVersion": "0.6.0",
      "kind": "vendor.com/device",
      "annotations": {"a": "b"},
      "devices": [
        {"name": "myDevice",
         "containerEdits": {
           "deviceNodes": [
             {"hostPath": "/vendor/dev/card1", "path": "/dev/card1", "type": "c", "major": 25, "minor": 25,
              "fileMode": 384, "permissions": "rw", "uid": 1000, "gid": 1000},
             {"path": "/dev/card-render1", "type": "c", "major": 25, "minor": 25, "fileMode": 384,
              "permissions": "rwm", "uid": 1000, "gid": 1000}]}}],
      "containerEdits": {
        "env": ["FOO=VALID_SPEC", "BAR=BARVALUE1"],
        "deviceNodes": [{"path": "/dev/vendorctl", "type": "b", "major": 25, "minor": 25}],
        "mounts": [{"hostPath": "/bin/vendorBin", "containerPath": "/bin/vendorBin"},
                   {"hostPath": "/usr/lib/libVendor.so.0", "containerPath": "/usr/lib/libVendor.so.0"},
                   {"hostPath": "tmpfs", "containerPath": "/tmp/data", "type": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"]}],
        "hooks": [{"hookName": "createContainer", "path": "/bin/vendor-hook"},
                  {"hookName": "startContainer", "path": "/usr/bin/ldconfig"}],
        "intelRdt": {"closID": "gold"},
        "additionalGIDs": [5, 44]
      }
    }"#;

    const YAML: &str = r#"
cdiVersion: "0.3.0"
kind: "vendor.com/device"
devices:
  - name: "myDevice"
    containerEdits:
      deviceNodes:
        - path: "/dev/card1"
          type: "c"
          major: 25
          minor: 25
containerEdits:
  env:
    - "FOO=VALID_SPEC"
  mounts:
    - hostPath: "/bin/vendorBin"
      containerPath: "/bin/vendorBin"
"#;

    #[test]
    fn parses_json_and_yaml_examples() {
        let s = parse(Path::new("a.json"), JSON.as_bytes()).unwrap();
        assert_eq!(s.kind, "vendor.com/device");
        assert_eq!(s.devices[0].container_edits.device_nodes.len(), 2);
        let common = s.container_edits.as_ref().unwrap();
        assert_eq!(common.mounts[2].typ.as_deref(), Some("tmpfs"));
        assert_eq!(common.additional_gids, vec![5, 44]);
        assert_eq!(common.intel_rdt.as_ref().unwrap().clos_id.as_deref(), Some("gold"));
        let y = parse(Path::new("a.yaml"), YAML.as_bytes()).unwrap();
        assert_eq!(y.devices[0].container_edits.device_nodes[0].major, Some(25));
        // YAML files may hold JSON too.
        assert_eq!(parse(Path::new("a.yaml"), JSON.as_bytes()).unwrap(), s);
    }

    fn err(text: &str) -> String {
        parse(Path::new("x.json"), text.as_bytes()).unwrap_err()
    }

    #[test]
    fn errors_name_the_field() {
        let base = |edits: &str| {
            format!(r#"{{"cdiVersion":"0.5.0","kind":"v.com/c","devices":[{{"name":"d","containerEdits":{edits}}}]}}"#)
        };
        assert!(err(r#"{"cdiVersion":"9.9.9","kind":"v.com/c","devices":[]}"#).starts_with("cdiVersion"));
        assert!(err(r#"{"cdiVersion":"0.5.0","kind":"nokind","devices":[]}"#).starts_with("kind"));
        assert!(err(r#"{"cdiVersion":"0.5.0","kind":"v.com/c","devices":[]}"#).starts_with("devices"));
        let e = err(&base(r#"{"deviceNodes":[{"path":"dev/x"}]}"#));
        assert!(e.starts_with("devices[0].containerEdits.deviceNodes[0].path"), "{e}");
        let e = err(&base(r#"{"deviceNodes":[{"path":"/dev/x","type":"z"}]}"#));
        assert!(e.contains("deviceNodes[0].type"), "{e}");
        let e = err(&base(r#"{"deviceNodes":[{"path":"/dev/x","permissions":"rx"}]}"#));
        assert!(e.contains("permissions"), "{e}");
        let e = err(&base(r#"{"hooks":[{"hookName":"prestop","path":"/x"}]}"#));
        assert!(e.contains("hooks[0].hookName"), "{e}");
        let e = err(&base(r#"{"mounts":[{"hostPath":"/a","containerPath":"b"}]}"#));
        assert!(e.contains("mounts[0].containerPath"), "{e}");
        let e = err(&base(r#"{"env":["=x"]}"#));
        assert!(e.contains("env[0]"), "{e}");
        let e = err(&base(r#"{}"#));
        assert!(e.contains("must edit something"), "{e}");
        let e = err(
            r#"{"cdiVersion":"0.5.0","kind":"v.com/c","devices":[{"name":"-bad","containerEdits":{"env":["A=1"]}}]}"#,
        );
        assert!(e.starts_with("devices[0].name"), "{e}");
        assert!(err("{not json").contains("line 1"));
    }

    #[test]
    fn names() {
        assert_eq!(
            parse_qualified("nvidia.com/gpu=all").unwrap(),
            ("nvidia.com/gpu", "all")
        );
        assert_eq!(
            parse_qualified("vendor.com/class=GPU-0a1b:0").unwrap(),
            ("vendor.com/class", "GPU-0a1b:0")
        );
        for bad in [
            "nvidia.com/gpu",
            "gpu=0",
            "/gpu=0",
            "v.com/=0",
            "v.com/c=",
            "v.com/c=a b",
            "v.com/c.d=0",
        ] {
            assert!(parse_qualified(bad).is_err(), "{bad}");
        }
    }
}
