//! Pod and container configs from the JSON or YAML files `runp` and `create` take, in the
//! shape of the CRI messages (field names in snake_case or lowerCamelCase).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use berth_proto as pb;
use serde_json::{Map, Value};

/// Keys whose values are user maps: their keys are kept as written.
const USER_MAPS: &[&str] = &["labels", "annotations", "sysctls", "unified"];

fn snake(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn normalize(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let k = snake(&k);
                    let v = if USER_MAPS.contains(&k.as_str()) {
                        v
                    } else {
                        normalize(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}

/// Reads a JSON or YAML file into a normalized value.
pub fn load(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?
    } else {
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}: not valid YAML", path.display()))?
    };
    if !value.is_object() {
        bail!("{}: expected an object at the top", path.display());
    }
    Ok(normalize(value))
}

struct Obj<'a>(&'a Map<String, Value>, &'a str);

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'a> Obj<'a> {
    fn of(v: &'a Value, what: &'a str) -> Obj<'a> {
        Obj(v.as_object().unwrap_or(&EMPTY), what)
    }
    fn obj(&self, k: &'a str) -> Option<Obj<'a>> {
        self.0.get(k).filter(|v| v.is_object()).map(|v| Obj::of(v, k))
    }
    fn str(&self, k: &str) -> anyhow::Result<String> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => bail!("{}.{k}: expected a string, got {other}", self.1),
        }
    }
    fn bool(&self, k: &str) -> anyhow::Result<bool> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => bail!("{}.{k}: expected true or false, got {other}", self.1),
        }
    }
    fn int(&self, k: &str) -> anyhow::Result<i64> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or_default()),
            Some(Value::String(s)) if s.parse::<i64>().is_ok() => Ok(s.parse().unwrap_or_default()),
            Some(other) => bail!("{}.{k}: expected an integer, got {other}", self.1),
        }
    }
    fn strings(&self, k: &str) -> anyhow::Result<Vec<String>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => bail!("{}.{k}: expected strings, got {other}", self.1),
                })
                .collect(),
            Some(other) => bail!("{}.{k}: expected a list, got {other}", self.1),
        }
    }
    fn map(&self, k: &str) -> anyhow::Result<HashMap<String, String>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(HashMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(key, v)| match v {
                    Value::String(s) => Ok((key.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((key.clone(), v.to_string())),
                    other => bail!("{}.{k}.{key}: expected a string, got {other}", self.1),
                })
                .collect(),
            Some(other) => bail!("{}.{k}: expected a map, got {other}", self.1),
        }
    }
    fn list(&self, k: &str) -> Vec<Obj<'a>> {
        match self.0.get(k) {
            Some(Value::Array(a)) => a.iter().map(|v| Obj::of(v, self.1)).collect(),
            _ => Vec::new(),
        }
    }
    /// An enum given by name (`POD`, `NODE`, …) or number.
    fn enum_of(&self, k: &str, names: &[&str]) -> anyhow::Result<i32> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => Ok(n.as_i64().unwrap_or_default() as i32),
            Some(Value::String(s)) => names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(s))
                .map(|i| i as i32)
                .with_context(|| format!("{}.{k}: {s:?} is not one of {}", self.1, names.join(", "))),
            Some(other) => bail!("{}.{k}: unexpected {other}", self.1),
        }
    }
    fn int64_value(&self, k: &str) -> anyhow::Result<Option<pb::Int64Value>> {
        Ok(match self.0.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::Object(_)) => Some(pb::Int64Value {
                value: self.obj(k).map(|o| o.int("value")).transpose()?.unwrap_or_default(),
            }),
            Some(_) => Some(pb::Int64Value { value: self.int(k)? }),
        })
    }
}

const NS_MODES: &[&str] = &["POD", "CONTAINER", "NODE", "TARGET"];

fn namespace_options(o: Option<Obj>) -> anyhow::Result<Option<pb::NamespaceOption>> {
    let Some(o) = o else { return Ok(None) };
    Ok(Some(pb::NamespaceOption {
        network: o.enum_of("network", NS_MODES)?,
        pid: o.enum_of("pid", NS_MODES)?,
        ipc: o.enum_of("ipc", NS_MODES)?,
        target_id: o.str("target_id")?,
        ..Default::default()
    }))
}

fn resources(o: &Obj) -> anyhow::Result<pb::LinuxContainerResources> {
    Ok(pb::LinuxContainerResources {
        cpu_period: o.int("cpu_period")?,
        cpu_quota: o.int("cpu_quota")?,
        cpu_shares: o.int("cpu_shares")?,
        memory_limit_in_bytes: o.int("memory_limit_in_bytes")?,
        oom_score_adj: o.int("oom_score_adj")?,
        cpuset_cpus: o.str("cpuset_cpus")?,
        cpuset_mems: o.str("cpuset_mems")?,
        unified: o.map("unified")?,
        memory_swap_limit_in_bytes: o.int("memory_swap_limit_in_bytes")?,
        ..Default::default()
    })
}

/// Resources from berthd's verbose container info (`spec.resources`, snake_case).
pub fn resources_from(v: &Value) -> anyhow::Result<pb::LinuxContainerResources> {
    resources(&Obj::of(v, "resources"))
}

/// A `PodSandboxConfig`.
pub fn pod_config(v: &Value) -> anyhow::Result<pb::PodSandboxConfig> {
    let o = Obj::of(v, "pod config");
    let meta = o.obj("metadata").context("pod config: metadata is required")?;
    let metadata = pb::PodSandboxMetadata {
        name: meta.str("name")?,
        uid: meta.str("uid")?,
        namespace: meta.str("namespace")?,
        attempt: meta.int("attempt")? as u32,
    };
    if metadata.name.is_empty() {
        bail!("pod config: metadata.name is required");
    }
    let linux = match o.obj("linux") {
        None => None,
        Some(l) => {
            let sc = match l.obj("security_context") {
                None => None,
                Some(s) => Some(pb::LinuxSandboxSecurityContext {
                    namespace_options: namespace_options(s.obj("namespace_options"))?,
                    run_as_user: s.int64_value("run_as_user")?,
                    run_as_group: s.int64_value("run_as_group")?,
                    readonly_rootfs: s.bool("readonly_rootfs")?,
                    privileged: s.bool("privileged")?,
                    ..Default::default()
                }),
            };
            Some(pb::LinuxPodSandboxConfig {
                cgroup_parent: l.str("cgroup_parent")?,
                security_context: sc,
                sysctls: l.map("sysctls")?,
                ..Default::default()
            })
        }
    };
    let dns_config = match o.obj("dns_config") {
        None => None,
        Some(d) => Some(pb::DnsConfig {
            servers: d.strings("servers")?,
            searches: d.strings("searches")?,
            options: d.strings("options")?,
        }),
    };
    let port_mappings = o
        .list("port_mappings")
        .iter()
        .map(|p| {
            Ok(pb::PortMapping {
                protocol: p.enum_of("protocol", &["TCP", "UDP", "SCTP"])?,
                container_port: p.int("container_port")? as i32,
                host_port: p.int("host_port")? as i32,
                host_ip: p.str("host_ip")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(pb::PodSandboxConfig {
        metadata: Some(metadata),
        hostname: o.str("hostname")?,
        log_directory: o.str("log_directory")?,
        dns_config,
        port_mappings,
        labels: o.map("labels")?,
        annotations: o.map("annotations")?,
        linux,
        ..Default::default()
    })
}

/// A `ContainerConfig`.
pub fn container_config(v: &Value) -> anyhow::Result<pb::ContainerConfig> {
    let o = Obj::of(v, "container config");
    let meta = o.obj("metadata").context("container config: metadata is required")?;
    let image = o.obj("image").context("container config: image is required")?;
    let envs = o
        .list("envs")
        .iter()
        .map(|e| {
            Ok(pb::KeyValue {
                key: e.str("key")?,
                value: e.str("value")?.into(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mounts = o
        .list("mounts")
        .iter()
        .map(|m| {
            Ok(pb::Mount {
                container_path: m.str("container_path")?,
                host_path: m.str("host_path")?,
                readonly: m.bool("readonly")?,
                propagation: m.enum_of(
                    "propagation",
                    &[
                        "PROPAGATION_PRIVATE",
                        "PROPAGATION_HOST_TO_CONTAINER",
                        "PROPAGATION_BIDIRECTIONAL",
                    ],
                )?,
                ..Default::default()
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let devices = o
        .list("devices")
        .iter()
        .map(|d| {
            Ok(pb::Device {
                container_path: d.str("container_path")?,
                host_path: d.str("host_path")?,
                permissions: d.str("permissions")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let cdi_devices = o
        .list("cdi_devices")
        .iter()
        .map(|d| Ok(pb::CdiDevice { name: d.str("name")? }))
        .collect::<anyhow::Result<_>>()?;
    let linux = match o.obj("linux") {
        None => Some(pb::LinuxContainerConfig::default()),
        Some(l) => {
            let resources = l.obj("resources").map(|r| resources(&r)).transpose()?;
            let security_context = match l.obj("security_context") {
                None => None,
                Some(s) => Some(pb::LinuxContainerSecurityContext {
                    capabilities: match s.obj("capabilities") {
                        None => None,
                        Some(c) => Some(pb::Capability {
                            add_capabilities: c.strings("add_capabilities")?,
                            drop_capabilities: c.strings("drop_capabilities")?,
                            ..Default::default()
                        }),
                    },
                    privileged: s.bool("privileged")?,
                    namespace_options: namespace_options(s.obj("namespace_options"))?,
                    run_as_user: s.int64_value("run_as_user")?,
                    run_as_group: s.int64_value("run_as_group")?,
                    run_as_username: s.str("run_as_username")?,
                    readonly_rootfs: s.bool("readonly_rootfs")?,
                    no_new_privs: s.bool("no_new_privs")?,
                    ..Default::default()
                }),
            };
            Some(pb::LinuxContainerConfig {
                resources,
                security_context,
            })
        }
    };
    let config = pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: meta.str("name")?,
            attempt: meta.int("attempt")? as u32,
        }),
        image: Some(pb::ImageSpec {
            image: image.str("image")?,
            ..Default::default()
        }),
        command: o.strings("command")?,
        args: o.strings("args")?,
        working_dir: o.str("working_dir")?,
        envs,
        mounts,
        devices,
        labels: o.map("labels")?,
        annotations: o.map("annotations")?,
        log_path: o.str("log_path")?,
        stdin: o.bool("stdin")?,
        stdin_once: o.bool("stdin_once")?,
        tty: o.bool("tty")?,
        linux,
        cdi_devices,
        ..Default::default()
    };
    if config.metadata.as_ref().is_some_and(|m| m.name.is_empty()) {
        bail!("container config: metadata.name is required");
    }
    if config.image.as_ref().is_some_and(|i| i.image.is_empty()) {
        bail!("container config: image.image is required");
    }
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pod_from_yaml_and_camel_json() {
        let y: Value = serde_yaml_ng::from_str(
            "metadata:\n  name: web\n  namespace: default\n  uid: u1\nlog_directory: /tmp/logs\nlabels:\n  app_Name: x\nlinux:\n  security_context:\n    namespace_options:\n      network: NODE\nport_mappings:\n- container_port: 80\n  host_port: 8080\n  protocol: UDP\n",
        )
        .unwrap();
        let p = pod_config(&normalize(y)).unwrap();
        assert_eq!(p.metadata.as_ref().unwrap().name, "web");
        assert_eq!(p.log_directory, "/tmp/logs");
        assert_eq!(p.labels.get("app_Name").map(String::as_str), Some("x"));
        let ns = p.linux.unwrap().security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, pb::NamespaceMode::Node as i32);
        assert_eq!(p.port_mappings[0].host_port, 8080);
        assert_eq!(p.port_mappings[0].protocol, pb::Protocol::Udp as i32);

        let j: Value = serde_json::from_str(
            r#"{"metadata":{"name":"c"},"image":{"image":"busybox"},"command":["sh"],"logPath":"c.log","envs":[{"key":"A","value":"1"}],"linux":{"resources":{"memoryLimitInBytes":"1048576"},"securityContext":{"runAsUser":{"value":1000}}}}"#,
        )
        .unwrap();
        let c = container_config(&normalize(j)).unwrap();
        assert_eq!(c.log_path, "c.log");
        assert_eq!(c.envs[0].value, b"1".to_vec());
        let l = c.linux.unwrap();
        assert_eq!(l.resources.unwrap().memory_limit_in_bytes, 1_048_576);
        assert_eq!(l.security_context.unwrap().run_as_user.unwrap().value, 1000);
        assert!(pod_config(&serde_json::json!({"hostname": "x"})).is_err());
        let bad = normalize(serde_json::json!({"metadata": {"name": "c"}, "image": {"image": 5}}));
        assert!(container_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("expected a string"));
    }
}
