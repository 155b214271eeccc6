//! Registry host configuration in the layout containerd users already have: a directory
//! holding `<host>/hosts.toml` (and `_default/hosts.toml`), each with an optional `server`
//! and ordered `[host."URL"]` mirror entries. An operator can point Berth at an existing
//! `/etc/containerd/certs.d`. config.toml's `registry_mirrors` (Docker's daemon.json habit)
//! adds docker.io mirrors and `insecure_registries` switches hosts to plain HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::reference::DOCKER_HUB;

/// One place to fetch from, in the order tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL requests are made under, ending in `/v2` unless `override_path` was set.
    pub base: String,
    /// Whether tags may be resolved here (capability `resolve`).
    pub resolve: bool,
    /// Whether content may be fetched here (capability `pull`).
    pub pull: bool,
    pub skip_verify: bool,
    /// Extra CA certificates (PEM files) trusted for this endpoint.
    pub ca: Vec<PathBuf>,
    pub headers: Vec<(String, String)>,
    /// True for mirrors: requests carry `?ns=<registry>` and no credentials of the registry.
    pub mirror: bool,
}

impl Endpoint {
    /// `scheme://host[:port]` of the endpoint.
    pub fn origin(&self) -> &str {
        let after_scheme = self.base.find("://").map_or(0, |i| i + 3);
        let end = self.base[after_scheme..]
            .find('/')
            .map_or(self.base.len(), |i| after_scheme + i);
        &self.base[..end]
    }

    /// `host[:port]` of the endpoint.
    pub fn host(&self) -> &str {
        let origin = self.origin();
        origin.find("://").map_or(origin, |i| &origin[i + 3..])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    server: Option<String>,
    capabilities: Option<Vec<String>>,
    skip_verify: Option<bool>,
    ca: Option<OneOrMany>,
    header: Option<BTreeMap<String, OneOrMany>>,
    override_path: Option<bool>,
    #[serde(default)]
    host: toml::Table,
    // Accepted for compatibility with files written for containerd; not used.
    #[allow(dead_code)]
    client: Option<toml::Value>,
    #[allow(dead_code)]
    dial_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    capabilities: Option<Vec<String>>,
    skip_verify: Option<bool>,
    ca: Option<OneOrMany>,
    header: Option<BTreeMap<String, OneOrMany>>,
    override_path: Option<bool>,
    #[allow(dead_code)]
    client: Option<toml::Value>,
    #[allow(dead_code)]
    dial_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Everything needed to find the endpoints of a registry host.
#[derive(Debug, Clone, Default)]
pub struct HostsConfig {
    pub dir: Option<PathBuf>,
    pub docker_mirrors: Vec<String>,
    pub insecure: Vec<String>,
}

impl HostsConfig {
    /// The endpoints for `registry` in the order to try them: mirrors first, the upstream
    /// server last. Re-reads the files on each call so edits apply without a restart.
    pub fn endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, HostsError> {
        let default_server = self.default_server(registry);
        let file = self.dir.as_deref().and_then(|dir| find_hosts_file(dir, registry));
        let mut out = Vec::new();
        if registry == DOCKER_HUB {
            for m in &self.docker_mirrors {
                out.push(mirror_endpoint(m));
            }
        }
        let Some(path) = file else {
            out.push(Endpoint {
                base: format!("{default_server}/v2"),
                resolve: true,
                pull: true,
                skip_verify: false,
                ca: Vec::new(),
                headers: Vec::new(),
                mirror: false,
            });
            return Ok(out);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| HostsError::Read {
            path: path.clone(),
            source,
        })?;
        let parsed: HostsFile = toml::from_str(&text).map_err(|e| HostsError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let server = parsed
            .server
            .clone()
            .map(|s| s.trim_end_matches('/').to_string())
            .unwrap_or(default_server);
        let server_host = host_of(&server).to_string();
        for (url, value) in parsed.host.clone() {
            let entry: HostEntry = value.try_into().map_err(|e: toml::de::Error| HostsError::Parse {
                path: path.clone(),
                message: format!("host {url:?}: {e}"),
            })?;
            let url = url.trim_end_matches('/').to_string();
            let is_mirror = host_of(&url) != server_host && host_of(&url) != registry;
            out.push(endpoint(
                &url,
                entry.capabilities,
                entry.skip_verify,
                entry.ca,
                entry.header,
                entry.override_path,
                &base_dir,
                is_mirror,
            ));
        }
        // toml::Table keeps keys sorted; containerd tries hosts in file order. Re-read the
        // order from the text so mirrors are tried as written.
        sort_by_file_order(&mut out, &text);
        out.push(endpoint(
            &server,
            parsed.capabilities,
            parsed.skip_verify,
            parsed.ca,
            parsed.header,
            parsed.override_path,
            &base_dir,
            false,
        ));
        Ok(out)
    }

    /// Registries with a configuration of their own: the `<host>` directories holding a
    /// `hosts.toml` (`_default` included), plus docker.io when `registry_mirrors` are set.
    pub fn configured_registries(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .dir
            .as_deref()
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("hosts.toml").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        if !self.docker_mirrors.is_empty() && !out.iter().any(|r| r == DOCKER_HUB) {
            out.push(DOCKER_HUB.to_string());
        }
        out.sort();
        out
    }

    fn default_server(&self, registry: &str) -> String {
        let scheme = if self.insecure.iter().any(|h| h == registry) {
            "http"
        } else {
            "https"
        };
        if registry == DOCKER_HUB {
            format!("{scheme}://registry-1.docker.io")
        } else {
            format!("{scheme}://{registry}")
        }
    }
}

fn mirror_endpoint(url: &str) -> Endpoint {
    let url = url.trim_end_matches('/');
    Endpoint {
        base: format!("{url}/v2"),
        resolve: true,
        pull: true,
        skip_verify: false,
        ca: Vec::new(),
        headers: Vec::new(),
        mirror: true,
    }
}

#[allow(clippy::too_many_arguments)]
fn endpoint(
    url: &str,
    capabilities: Option<Vec<String>>,
    skip_verify: Option<bool>,
    ca: Option<OneOrMany>,
    header: Option<BTreeMap<String, OneOrMany>>,
    override_path: Option<bool>,
    base_dir: &Path,
    mirror: bool,
) -> Endpoint {
    let caps = capabilities.unwrap_or_else(|| vec!["pull".into(), "resolve".into(), "push".into()]);
    let base = if override_path.unwrap_or(false) {
        url.to_string()
    } else {
        format!("{url}/v2")
    };
    Endpoint {
        base,
        resolve: caps.iter().any(|c| c == "resolve"),
        pull: caps.iter().any(|c| c == "pull"),
        skip_verify: skip_verify.unwrap_or(false),
        ca: ca
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(|p| base_dir.join(p))
            .collect(),
        headers: header
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(k, v)| v.into_vec().into_iter().map(move |v| (k.clone(), v)))
            .collect(),
        mirror,
    }
}

fn sort_by_file_order(endpoints: &mut [Endpoint], text: &str) {
    endpoints.sort_by_key(|e| {
        let url = e.base.strip_suffix("/v2").unwrap_or(&e.base);
        text.find(&format!("\"{url}\""))
            .or_else(|| text.find(&format!("\"{url}/\"")))
            .unwrap_or(usize::MAX)
    });
}

fn host_of(url: &str) -> &str {
    let rest = url.find("://").map_or(url, |i| &url[i + 3..]);
    rest.split('/').next().unwrap_or(rest)
}

/// `DIR/<registry>/hosts.toml`, else `DIR/_default/hosts.toml`. containerd names a
/// host with a port `host_port_` in some versions; both spellings are accepted.
fn find_hosts_file(dir: &Path, registry: &str) -> Option<PathBuf> {
    let candidates = [
        registry.to_string(),
        format!("{}_", registry.replace(':', "_")),
        "_default".to_string(),
    ];
    candidates
        .iter()
        .filter(|c| !c.contains('/') && !c.starts_with('.'))
        .map(|c| dir.join(c).join("hosts.toml"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, host: &str, text: &str) {
        std::fs::create_dir_all(dir.join(host)).expect("mkdir");
        std::fs::write(dir.join(host).join("hosts.toml"), text).expect("write");
    }

    #[test]
    fn defaults_without_files() {
        let cfg = HostsConfig::default();
        let eps = cfg.endpoints("docker.io").expect("endpoints");
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].base, "https://registry-1.docker.io/v2");
        let cfg = HostsConfig {
            insecure: vec!["10.0.0.1:5000".into()],
            ..Default::default()
        };
        assert_eq!(
            cfg.endpoints("10.0.0.1:5000").expect("eps")[0].base,
            "http://10.0.0.1:5000/v2"
        );
    }

    #[test]
    fn docker_mirrors_come_first() {
        let cfg = HostsConfig {
            docker_mirrors: vec!["https://mirror.local/".into()],
            ..Default::default()
        };
        let eps = cfg.endpoints("docker.io").expect("endpoints");
        assert_eq!(
            eps.iter().map(|e| e.base.as_str()).collect::<Vec<_>>(),
            ["https://mirror.local/v2", "https://registry-1.docker.io/v2"]
        );
        assert!(eps[0].mirror && !eps[1].mirror);
        assert_eq!(cfg.endpoints("quay.io").expect("eps").len(), 1);
    }

    #[test]
    fn hosts_toml_mirrors_in_file_order_with_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "docker.io",
            r#"server = "https://registry-1.docker.io"
[host."https://z-mirror.local"]
  capabilities = ["pull"]
  ca = "z.pem"
  [host."https://z-mirror.local".header]
    x-custom = "1"
[host."http://a-mirror.local:5000/proxy"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  override_path = true
"#,
        );
        write(dir.path(), "_default", "server = \"http://127.0.0.1:5000\"\n");
        let cfg = HostsConfig {
            dir: Some(dir.path().into()),
            ..Default::default()
        };
        let eps = cfg.endpoints("docker.io").expect("endpoints");
        assert_eq!(eps.len(), 3);
        assert_eq!(eps[0].base, "https://z-mirror.local/v2");
        assert!(eps[0].pull && !eps[0].resolve && eps[0].mirror);
        assert_eq!(eps[0].ca, vec![dir.path().join("docker.io/z.pem")]);
        assert_eq!(eps[0].headers, vec![("x-custom".to_string(), "1".to_string())]);
        assert_eq!(eps[1].base, "http://a-mirror.local:5000/proxy");
        assert!(eps[1].skip_verify);
        assert_eq!(eps[1].host(), "a-mirror.local:5000");
        assert_eq!(eps[2].base, "https://registry-1.docker.io/v2");
        // Any other host falls back to _default.
        let eps = cfg.endpoints("gcr.io").expect("endpoints");
        assert_eq!(eps.last().expect("server").base, "http://127.0.0.1:5000/v2");
    }

    #[test]
    fn bad_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "quay.io", "server = 3\n");
        let cfg = HostsConfig {
            dir: Some(dir.path().into()),
            ..Default::default()
        };
        let err = cfg.endpoints("quay.io").expect_err("bad file");
        assert!(err.to_string().contains("quay.io/hosts.toml"), "{err}");
    }
}
