//! Compose files: read, `${VAR}`-interpolated (from the environment and the project's
//! `.env`), checked (an unknown key is an error naming it, never ignored) and turned into
//! a [`Project`] with its services in start order.

use std::collections::{BTreeMap, HashMap};

use super::vars::{dotenv, interpolate};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_yaml_ng::Value;

/// A Compose project as berthctl runs it.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// Dependencies first.
    pub services: Vec<Service>,
    /// Declared volumes: key in the file → the volume.
    pub volumes: BTreeMap<String, VolumeDef>,
}

#[derive(Debug, Clone, Default)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `K=V`, or `K` (taken from berthctl's environment).
    pub environment: Vec<String>,
    pub env_files: Vec<PathBuf>,
    /// `-p` syntax.
    pub ports: Vec<String>,
    /// `-v` (`-v` syntax) and `--mount` (`m:` prefix) specs.
    pub volumes: Vec<String>,
    pub depends_on: Vec<(String, Condition)>,
    pub restart: Option<String>,
    pub healthcheck: Option<Health>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<String>,
    pub tty: bool,
    pub stdin_open: bool,
    pub container_name: Option<String>,
    pub hostname: Option<String>,
    /// `build:`; the image is then built (named `image:`, else `<project>-<service>`).
    pub build: Option<super::build::BuildSpec>,
}

/// When a dependency counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The command to run in the container (CMD-SHELL becomes `sh -c`).
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct VolumeDef {
    /// The volume's name in berthd (`<project>_<key>` unless `name:` or external).
    pub name: String,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub external: bool,
}

const SERVICE_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "depends_on",
    "restart",
    "healthcheck",
    "networks",
    "working_dir",
    "user",
    "labels",
    "tty",
    "stdin_open",
    "container_name",
    "hostname",
    "expose",
];

/// Reads `path`; `project` overrides the name (else `name:`, else the directory's name).
pub fn load(path: &Path, project: Option<&str>) -> anyhow::Result<Project> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()?;
    let mut vars: HashMap<String, String> = std::fs::read_to_string(dir.join(".env"))
        .map(|t| dotenv(&t))
        .unwrap_or_default();
    vars.extend(std::env::vars());
    let text = interpolate(&text, &vars).with_context(|| format!("{}", path.display()))?;
    let doc: Value = serde_yaml_ng::from_str(&text).with_context(|| format!("{}: not YAML", path.display()))?;
    parse(&doc, &dir, project).with_context(|| format!("{}", path.display()))
}

fn parse(doc: &Value, dir: &Path, project: Option<&str>) -> anyhow::Result<Project> {
    let top = doc.as_mapping().context("the file is not a mapping")?;
    for key in top.keys().filter_map(Value::as_str) {
        if !matches!(key, "name" | "services" | "volumes" | "networks" | "version") && !key.starts_with("x-") {
            bail!("top-level key {key:?} is not supported");
        }
    }
    let name = project
        .map(str::to_string)
        .or_else(|| doc.get("name").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let name: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    if name.is_empty() {
        bail!("no project name: give -p NAME or `name:`");
    }
    if let Some(networks) = doc.get("networks").and_then(Value::as_mapping) {
        if let Some(other) = networks.keys().filter_map(Value::as_str).find(|n| *n != "default") {
            bail!(
                "network {other:?}: only the default network is supported (every service reaches every other by name)"
            );
        }
    }
    let mut volumes = BTreeMap::new();
    if let Some(v) = doc.get("volumes").and_then(Value::as_mapping) {
        for (key, def) in v {
            let key = key.as_str().context("a volume key is not a string")?.to_string();
            volumes.insert(key.clone(), volume_def(&name, &key, def)?);
        }
    }
    let services = doc
        .get("services")
        .and_then(Value::as_mapping)
        .context("no services")?
        .iter()
        .map(|(k, v)| {
            let sname = k.as_str().context("a service name is not a string")?;
            service(sname, v, dir, &volumes).with_context(|| format!("service {sname:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut services = services;
    for s in &mut services {
        if s.image.is_empty() {
            if s.build.is_none() {
                bail!("service {:?}: image: or build: is required", s.name);
            }
            s.image = format!("{name}-{}", s.name);
        }
    }
    Ok(Project {
        services: start_order(services)?,
        name,
        volumes,
    })
}

fn volume_def(project: &str, key: &str, def: &Value) -> anyhow::Result<VolumeDef> {
    let mut v = VolumeDef {
        name: format!("{project}_{key}"),
        driver: "local".into(),
        ..Default::default()
    };
    let Some(m) = def.as_mapping() else { return Ok(v) };
    for (k, val) in m {
        match k.as_str().unwrap_or_default() {
            "driver" => v.driver = scalar(val)?,
            "driver_opts" => v.driver_opts = string_map(val)?,
            "labels" => v.labels = string_map(val)?,
            "external" => v.external = val.as_bool().unwrap_or(false),
            "name" => v.name = scalar(val)?,
            other => bail!("volume {key:?}: key {other:?} is not supported"),
        }
    }
    if v.external && def.get("name").is_none() {
        v.name = key.to_string();
    }
    Ok(v)
}

fn service(name: &str, v: &Value, dir: &Path, volumes: &BTreeMap<String, VolumeDef>) -> anyhow::Result<Service> {
    let m = v.as_mapping().context("not a mapping")?;
    if let Some(k) = m.keys().filter_map(Value::as_str).find(|k| !SERVICE_KEYS.contains(k)) {
        bail!("key {k:?} is not supported");
    }
    let s = |k: &str| v.get(k).map(scalar).transpose();
    let mut svc = Service {
        name: name.to_string(),
        image: s("image")?.unwrap_or_default(),
        build: v
            .get("build")
            .map(|b| super::build::parse(b, dir, scalar))
            .transpose()?,
        command: v.get("command").map(words).transpose()?,
        entrypoint: v.get("entrypoint").map(words).transpose()?,
        restart: s("restart")?,
        working_dir: s("working_dir")?,
        user: s("user")?,
        container_name: s("container_name")?,
        hostname: s("hostname")?,
        tty: v.get("tty").and_then(Value::as_bool).unwrap_or(false),
        stdin_open: v.get("stdin_open").and_then(Value::as_bool).unwrap_or(false),
        ..Default::default()
    };
    if let Some(env) = v.get("environment") {
        svc.environment = match env {
            Value::Mapping(m) => m
                .iter()
                .map(|(k, val)| {
                    let k = scalar(k)?;
                    Ok(if val.is_null() {
                        k
                    } else {
                        format!("{k}={}", scalar(val)?)
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            _ => list(env)?,
        };
    }
    svc.env_files = v
        .get("env_file")
        .map(list)
        .transpose()?
        .unwrap_or_default()
        .iter()
        .map(|f| dir.join(f))
        .collect();
    for p in v.get("ports").map(seq).transpose()?.unwrap_or_default() {
        svc.ports.push(port(p)?);
    }
    for vol in v.get("volumes").map(seq).transpose()?.unwrap_or_default() {
        svc.volumes.push(mount(vol, dir, volumes)?);
    }
    svc.depends_on = match v.get("depends_on") {
        None => Vec::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, c)| {
                let cond = match c.get("condition").and_then(Value::as_str).unwrap_or("service_started") {
                    "service_started" => Condition::Started,
                    "service_healthy" => Condition::Healthy,
                    "service_completed_successfully" => Condition::CompletedSuccessfully,
                    other => bail!("depends_on condition {other:?} is not known"),
                };
                Ok((scalar(k)?, cond))
            })
            .collect::<anyhow::Result<_>>()?,
        Some(l) => list(l)?.into_iter().map(|d| (d, Condition::Started)).collect(),
    };
    svc.labels = match v.get("labels") {
        None => Vec::new(),
        Some(Value::Mapping(_)) => string_map(&v["labels"])?
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        Some(l) => list(l)?,
    };
    if let Some(n) = v.get("networks") {
        let names: Vec<String> = match n {
            Value::Mapping(m) => m.keys().map(scalar).collect::<anyhow::Result<_>>()?,
            _ => list(n)?,
        };
        if let Some(other) = names.iter().find(|n| *n != "default") {
            bail!("network {other:?}: only the default network is supported");
        }
    }
    svc.healthcheck = v.get("healthcheck").map(health).transpose()?.flatten();
    Ok(svc)
}

/// A `ports:` entry as `-p` takes it.
fn port(p: &Value) -> anyhow::Result<String> {
    let Some(m) = p.as_mapping() else { return scalar(p) };
    let get = |k: &str| m.get(k).map(scalar).transpose();
    let target = get("target")?.context("a port needs target:")?;
    let mut out = String::new();
    if let Some(ip) = get("host_ip")? {
        out.push_str(&format!("{ip}:"));
    }
    if let Some(published) = get("published")? {
        out.push_str(&format!("{published}:"));
    } else if !out.is_empty() {
        out.push(':');
    }
    out.push_str(&target);
    if let Some(proto) = get("protocol")? {
        out.push_str(&format!("/{proto}"));
    }
    Ok(out)
}

/// A `volumes:` entry of a service as a `-v` spec (or `m:` + a `--mount` spec).
fn mount(v: &Value, dir: &Path, volumes: &BTreeMap<String, VolumeDef>) -> anyhow::Result<String> {
    let named = |key: &str| -> anyhow::Result<String> {
        volumes
            .get(key)
            .map(|d| d.name.clone())
            .with_context(|| format!("volume {key:?} is used but not declared under the top-level volumes:"))
    };
    let host = |source: &str| -> String {
        if source.starts_with('.') {
            dir.join(source).display().to_string()
        } else {
            source.to_string()
        }
    };
    if let Some(m) = v.as_mapping() {
        let get = |k: &str| m.get(k).map(scalar).transpose();
        let target = get("target")?.context("a volume needs target:")?;
        let readonly = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
        let ro = if readonly { ",readonly" } else { "" };
        return Ok(match get("type")?.as_deref().unwrap_or("volume") {
            "volume" => match get("source")? {
                Some(s) => format!("m:type=volume,source={},target={target}{ro}", named(&s)?),
                None => format!("m:type=volume,target={target}{ro}"),
            },
            "bind" => {
                let source = get("source")?.context("a bind needs source:")?;
                format!("m:type=bind,source={},target={target}{ro}", host(&source))
            }
            "tmpfs" => format!("m:type=tmpfs,target={target}"),
            other => bail!("volume type {other:?} is not supported"),
        });
    }
    let spec = scalar(v)?;
    let parts: Vec<&str> = spec.splitn(2, ':').collect();
    match parts.as_slice() {
        [_] => Ok(spec),
        [source, rest] if source.starts_with(['/', '.', '~']) => Ok(format!("{}:{rest}", host(source))),
        [source, rest] => Ok(format!("{}:{rest}", named(source)?)),
        _ => bail!("volume {spec:?} is not understood"),
    }
}

fn health(v: &Value) -> anyhow::Result<Option<Health>> {
    if v.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let test = match v.get("test") {
        None => return Ok(None),
        Some(Value::String(s)) => vec!["sh".into(), "-c".into(), s.clone()],
        Some(t) => {
            let l = list(t)?;
            match l.split_first() {
                Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
                Some((kind, rest)) if kind == "CMD-SHELL" => vec!["sh".into(), "-c".into(), rest.join(" ")],
                Some((kind, _)) if kind == "NONE" => return Ok(None),
                _ => bail!("healthcheck test must start with CMD, CMD-SHELL or NONE"),
            }
        }
    };
    let dur = |k: &str, default: u64| -> anyhow::Result<Duration> {
        v.get(k)
            .map(|d| duration(&scalar(d)?))
            .transpose()
            .map(|d| d.unwrap_or(Duration::from_secs(default)))
    };
    Ok(Some(Health {
        test,
        interval: dur("interval", 30)?,
        timeout: dur("timeout", 30)?,
        retries: v.get("retries").and_then(Value::as_u64).unwrap_or(3) as u32,
        start_period: dur("start_period", 0)?,
    }))
}

/// `1m30s`, `500ms`, `10s` (a bare number: seconds).
pub fn duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(Duration::from_secs_f64(secs.max(0.0)));
    }
    berth::build::go_duration(text)
        .map(Duration::from_nanos)
        .map_err(|e| anyhow::anyhow!("duration {e}"))
}

/// Services ordered so that each comes after what it depends on.
fn start_order(services: Vec<Service>) -> anyhow::Result<Vec<Service>> {
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    for s in &services {
        if let Some((d, _)) = s.depends_on.iter().find(|(d, _)| !names.contains(d)) {
            bail!("service {:?} depends on {d:?}, which is not defined", s.name);
        }
    }
    let mut left = services;
    let mut out: Vec<Service> = Vec::new();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|s| s.depends_on.iter().all(|(d, _)| out.iter().any(|o| &o.name == d)));
        let Some(i) = ready else {
            bail!(
                "services depend on each other in a circle: {:?}",
                left.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
        };
        out.push(left.remove(i));
    }
    Ok(out)
}

fn scalar(v: &Value) -> anyhow::Result<String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        _ => bail!("expected a single value, found {v:?}"),
    })
}

fn seq(v: &Value) -> anyhow::Result<Vec<&Value>> {
    Ok(v.as_sequence().context("expected a list")?.iter().collect())
}

fn list(v: &Value) -> anyhow::Result<Vec<String>> {
    match v {
        Value::Sequence(s) => s.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn string_map(v: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    match v {
        Value::Mapping(m) => m.iter().map(|(k, v)| Ok((scalar(k)?, scalar(v)?))).collect(),
        Value::Sequence(_) => list(v)?
            .into_iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                Ok((k.to_string(), v.to_string()))
            })
            .collect(),
        _ => bail!("expected a mapping"),
    }
}

/// A command as a string (split as a shell would, without running one) or a list.
fn words(v: &Value) -> anyhow::Result<Vec<String>> {
    let Value::String(s) = v else { return list(v) };
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None::<char>, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => cur.extend(chars.next()),
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        bail!("command {s:?}: a quote is not closed");
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
