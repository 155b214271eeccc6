//! [`CniNetwork`]: [`PodNetwork`] over CNI plugin binaries (spec 1.0.0/0.4.0, 0.3.x results).
//!
//! ADD runs the plugins of the chosen list in order, each getting the previous result; a failure
//! undoes everything with a DEL of the whole list. The final result and the exact per-plugin
//! configs are cached in `cache_dir/<network>-<sandbox>.json`, and DEL/CHECK replay them, so a
//! teardown removes exactly what was set up even if the config directory changed since.

pub mod config;
pub mod exec;
pub mod result;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::config::{DirLoad, DirStamp, NetworkConfigList};
use self::exec::{Command, Env};
use crate::network::{BoxFuture, NetworkError, PodNetwork, PodNetworkRequest, PodNetworkStatus};

/// Interface name of the pod network inside the sandbox.
pub const IFNAME: &str = "eth0";

const CACHE_KIND: &str = "berthCniCacheV1";

/// Where [`CniNetwork`] finds its configs and plugins.
#[derive(Debug, Clone)]
pub struct CniOptions {
    /// Config directory (`/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Plugin directories, searched in order (`/opt/cni/bin`); also `CNI_PATH`.
    pub bin_dirs: Vec<PathBuf>,
    /// Limit for each plugin execution; the plugin is killed when it passes.
    pub timeout: Duration,
    /// Directory of cached ADD results (e.g. `/var/lib/berth/cni-cache`).
    pub cache_dir: PathBuf,
}

/// CNI-based pod networking.
#[derive(Debug)]
pub struct CniNetwork {
    opts: CniOptions,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    stamp: Option<DirStamp>,
    load: DirLoad,
    pod_cidr: Option<String>,
}

/// What a successful ADD leaves in the cache; DEL and CHECK replay it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheEntry {
    kind: String,
    container_id: String,
    network_name: String,
    cni_version: String,
    #[serde(default)]
    disable_check: bool,
    if_name: String,
    netns: String,
    cni_args: String,
    /// Each plugin's exact stdin config (with `runtimeConfig`, without `prevResult`).
    plugins: Vec<Map<String, Value>>,
    result: Value,
}

impl CniNetwork {
    /// Creates the network; nothing is read until the first call.
    pub fn new(opts: CniOptions) -> CniNetwork {
        CniNetwork {
            opts,
            state: Mutex::new(State::default()),
        }
    }

    /// The options this network was created with.
    pub fn options(&self) -> &CniOptions {
        &self.opts
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The config list in use (pod CIDR substituted), re-reading the directory if it changed.
    pub fn current_config(&self) -> Result<NetworkConfigList, NetworkError> {
        let stamp = config::dir_stamp(&self.opts.conf_dir);
        let mut state = self.lock();
        if state.stamp.as_ref() != Some(&stamp) {
            state.load = config::load_dir(&self.opts.conf_dir);
            state.stamp = Some(stamp);
        }
        let Some(list) = &state.load.chosen else {
            return Err(NetworkError::NotReady(state.load.not_ready_reason(&self.opts.conf_dir)));
        };
        if !list.needs_pod_cidr() {
            return Ok(list.clone());
        }
        match &state.pod_cidr {
            Some(cidr) => Ok(list.with_pod_cidr(cidr)),
            None => Err(NetworkError::NotReady(format!(
                "waiting for pod CIDR: network {} ({}) uses {}",
                list.name,
                list.source.display(),
                config::POD_CIDR_PLACEHOLDER
            ))),
        }
    }

    fn env(&self, req: &PodNetworkRequest, netns: String) -> Env {
        Env {
            container_id: req.sandbox_id.clone(),
            netns,
            ifname: IFNAME.to_string(),
            args: cni_args(req),
            path: exec::join_paths(&self.opts.bin_dirs),
        }
    }

    async fn run(
        &self,
        command: Command,
        conf: &Map<String, Value>,
        env: &Env,
        prev: Option<&Value>,
    ) -> Result<Vec<u8>, NetworkError> {
        let plugin = conf.get("type").and_then(Value::as_str).unwrap_or_default();
        let binary = exec::find_plugin(&self.opts.bin_dirs, plugin)?;
        let mut stdin = conf.clone();
        if let Some(prev) = prev {
            stdin.insert("prevResult".into(), prev.clone());
        }
        let stdin = Value::Object(stdin).to_string();
        exec::invoke(&binary, plugin, command, env, stdin.as_bytes(), self.opts.timeout).await
    }

    /// DEL of every plugin in reverse order; all are attempted, the first error is returned.
    async fn del_all(&self, confs: &[Map<String, Value>], env: &Env, prev: Option<&Value>) -> Result<(), NetworkError> {
        let mut first = None;
        for conf in confs.iter().rev() {
            if let Err(e) = self.run(Command::Del, conf, env, prev).await {
                tracing::warn!(container = %env.container_id, error = %e, "CNI DEL failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Undoes a failed ADD, then hands back the error that caused it.
    async fn rollback(
        &self,
        confs: &[Map<String, Value>],
        env: &Env,
        prev: Option<&Value>,
        err: NetworkError,
    ) -> NetworkError {
        tracing::warn!(container = %env.container_id, error = %err, "CNI ADD failed; deleting the network again");
        if let Err(e) = self.del_all(confs, env, prev).await {
            tracing::warn!(container = %env.container_id, error = %e, "cleanup after failed CNI ADD incomplete");
        }
        err
    }

    async fn do_setup(&self, req: PodNetworkRequest) -> Result<PodNetworkStatus, NetworkError> {
        validate(&req, true)?;
        let list = self.current_config()?;
        for plugin in &list.plugins {
            exec::find_plugin(&self.opts.bin_dirs, &plugin.plugin_type)?;
        }
        let caps = config::capability_args(&req);
        let confs: Vec<Map<String, Value>> = list.plugins.iter().map(|p| list.plugin_config(p, &caps)).collect();
        let env = self.env(&req, req.netns_path.to_string_lossy().into_owned());
        let mut prev: Option<Value> = None;
        for (plugin, conf) in list.plugins.iter().zip(&confs) {
            let step = match self.run(Command::Add, conf, &env, prev.as_ref()).await {
                Ok(out) => parse_object(&plugin.plugin_type, &out),
                Err(e) => Err(e),
            };
            match step {
                Ok(result) => prev = Some(result),
                Err(e) => return Err(self.rollback(&confs, &env, prev.as_ref(), e).await),
            }
        }
        let last = list.plugins.last().map(|p| p.plugin_type.clone()).unwrap_or_default();
        let raw = prev.unwrap_or(Value::Null);
        let status = match result::pod_status(&raw, IFNAME) {
            Ok(status) => status,
            Err(message) => {
                let err = NetworkError::InvalidResult { plugin: last, message };
                return Err(self.rollback(&confs, &env, Some(&raw), err).await);
            }
        };
        let entry = CacheEntry {
            kind: CACHE_KIND.into(),
            container_id: req.sandbox_id.clone(),
            network_name: list.name.clone(),
            cni_version: list.cni_version.clone(),
            disable_check: list.disable_check,
            if_name: IFNAME.into(),
            netns: env.netns.clone(),
            cni_args: env.args.clone(),
            plugins: confs.clone(),
            result: raw.clone(),
        };
        if let Err(e) = self.write_cache(&entry).await {
            return Err(self.rollback(&confs, &env, Some(&raw), e).await);
        }
        tracing::info!(container = %req.sandbox_id, network = %list.name, ips = ?status.ips, "pod network set up");
        Ok(status)
    }

    async fn do_teardown(&self, req: PodNetworkRequest) -> Result<(), NetworkError> {
        validate(&req, false)?;
        let netns = exec::netns_for_del(&req.netns_path);
        let (entries, corrupt) = self.load_cache(&req.sandbox_id).await?;
        let mut first = None;
        if entries.is_empty() {
            match self.current_config() {
                Ok(list) => {
                    let caps = config::capability_args(&req);
                    let confs: Vec<_> = list.plugins.iter().map(|p| list.plugin_config(p, &caps)).collect();
                    if let Err(e) = self.del_all(&confs, &self.env(&req, netns.clone()), None).await {
                        first = Some(e);
                    }
                }
                Err(e) => {
                    tracing::warn!(container = %req.sandbox_id, reason = %e, "no cached CNI result and no usable config; nothing to tear down");
                }
            }
        }
        for (path, entry) in entries {
            let env = Env {
                args: entry.cni_args.clone(),
                ifname: entry.if_name.clone(),
                ..self.env(&req, netns.clone())
            };
            match self.del_all(&entry.plugins, &env, Some(&entry.result)).await {
                Ok(()) => {
                    if let Err(e) = remove_file(&path).await {
                        first.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        for path in corrupt {
            remove_file(&path).await?;
        }
        tracing::info!(container = %req.sandbox_id, "pod network torn down");
        Ok(())
    }

    async fn do_check(&self, req: PodNetworkRequest) -> Result<(), NetworkError> {
        validate(&req, true)?;
        let (entries, _) = self.load_cache(&req.sandbox_id).await?;
        if entries.is_empty() {
            let list = self.current_config()?;
            if !list.supports_check() {
                return Ok(());
            }
            return Err(NetworkError::MissingCache {
                network: list.name,
                sandbox_id: req.sandbox_id,
            });
        }
        for (_, entry) in entries {
            if entry.disable_check || !config::version_supports_check(&entry.cni_version) {
                continue;
            }
            let env = Env {
                args: entry.cni_args.clone(),
                ifname: entry.if_name.clone(),
                ..self.env(&req, req.netns_path.to_string_lossy().into_owned())
            };
            for conf in &entry.plugins {
                self.run(Command::Check, conf, &env, Some(&entry.result)).await?;
            }
        }
        Ok(())
    }

    fn cache_path(&self, network: &str, sandbox_id: &str) -> PathBuf {
        self.opts.cache_dir.join(format!("{network}-{sandbox_id}.json"))
    }

    /// Writes the entry atomically (temp file, fsync, rename).
    async fn write_cache(&self, entry: &CacheEntry) -> Result<(), NetworkError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.cache_path(&entry.network_name, &entry.container_id);
        let tmp = self.opts.cache_dir.join(format!(
            ".{}-{}.tmp{}",
            entry.network_name,
            entry.container_id,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |context: &str| {
            let context = format!("{context} {}", path.display());
            move |source| NetworkError::Io { context, source }
        };
        let data = serde_json::to_vec_pretty(entry).map_err(|e| io("encoding")(e.into()))?;
        let write = async {
            tokio::fs::create_dir_all(&self.opts.cache_dir).await?;
            let mut file = tokio::fs::File::create(&tmp).await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &data).await?;
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io("writing CNI cache")(e));
        }
        Ok(())
    }

    /// Cached entries of `sandbox_id` (any network name), plus unreadable files that match.
    async fn load_cache(&self, sandbox_id: &str) -> Result<(Vec<(PathBuf, CacheEntry)>, Vec<PathBuf>), NetworkError> {
        let suffix = format!("-{sandbox_id}.json");
        let mut entries = Vec::new();
        let mut corrupt = Vec::new();
        let mut dir = match tokio::fs::read_dir(&self.opts.cache_dir).await {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((entries, corrupt)),
            Err(source) => return Err(cache_io_error(&self.opts.cache_dir, source)),
        };
        while let Some(item) = dir
            .next_entry()
            .await
            .map_err(|e| cache_io_error(&self.opts.cache_dir, e))?
        {
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(&suffix) {
                continue;
            }
            let path = item.path();
            let data = tokio::fs::read(&path).await.map_err(|e| cache_io_error(&path, e))?;
            match serde_json::from_slice::<CacheEntry>(&data) {
                Ok(entry) if entry.kind == CACHE_KIND && entry.container_id == sandbox_id => {
                    entries.push((path, entry))
                }
                Ok(_) => {} // another sandbox whose id ends like this one
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable CNI cache file");
                    corrupt.push(path);
                }
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((entries, corrupt))
    }
}

fn cache_io_error(path: &Path, source: std::io::Error) -> NetworkError {
    NetworkError::Io {
        context: format!("reading CNI cache {}", path.display()),
        source,
    }
}

async fn remove_file(path: &Path) -> Result<(), NetworkError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetworkError::Io {
            context: format!("removing CNI cache {}", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn parse_object(plugin: &str, stdout: &[u8]) -> Result<Value, NetworkError> {
    let invalid = |message: String| NetworkError::InvalidResult {
        plugin: plugin.to_string(),
        message,
    };
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("empty output".into()));
    }
    match serde_json::from_slice::<Value>(stdout) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(invalid("not a JSON object".into())),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// `CNI_ARGS` as kubelet-era runtimes pass it.
fn cni_args(req: &PodNetworkRequest) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        req.pod_namespace, req.pod_name, req.sandbox_id, req.pod_uid
    )
}

fn validate(req: &PodNetworkRequest, need_netns: bool) -> Result<(), NetworkError> {
    let id = &req.sandbox_id;
    let id_ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id_ok {
        return Err(NetworkError::InvalidRequest(format!("invalid sandbox id {id:?}")));
    }
    if need_netns && req.netns_path.as_os_str().is_empty() {
        return Err(NetworkError::InvalidRequest(format!("sandbox {id} has no netns path")));
    }
    for (what, value) in [
        ("name", &req.pod_name),
        ("namespace", &req.pod_namespace),
        ("uid", &req.pod_uid),
    ] {
        if value.contains(';') {
            return Err(NetworkError::InvalidRequest(format!(
                "pod {what} {value:?} contains ';'"
            )));
        }
    }
    Ok(())
}

impl PodNetwork for CniNetwork {
    fn setup(&self, req: &PodNetworkRequest) -> BoxFuture<'_, Result<PodNetworkStatus, NetworkError>> {
        Box::pin(self.do_setup(req.clone()))
    }

    fn teardown(&self, req: &PodNetworkRequest) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(self.do_teardown(req.clone()))
    }

    fn check(&self, req: &PodNetworkRequest) -> BoxFuture<'_, Result<(), NetworkError>> {
        Box::pin(self.do_check(req.clone()))
    }

    fn status(&self) -> Result<(), NetworkError> {
        let list = self.current_config().map_err(|e| match e {
            NetworkError::NotReady(reason) => NetworkError::NotReady(reason),
            other => NetworkError::NotReady(other.to_string()),
        })?;
        for plugin in &list.plugins {
            if let Err(e) = exec::find_plugin(&self.opts.bin_dirs, &plugin.plugin_type) {
                return Err(NetworkError::NotReady(format!(
                    "network {} ({}): {e}",
                    list.name,
                    list.source.display()
                )));
            }
        }
        Ok(())
    }

    fn update_pod_cidr(&self, cidr: &str) {
        if cidr.trim().is_empty() {
            return;
        }
        let Some(parsed) = config::parse_pod_cidr(cidr) else {
            tracing::warn!(cidr, "ignoring invalid pod CIDR");
            return;
        };
        let mut state = self.lock();
        if state.pod_cidr.as_deref() != Some(parsed.as_str()) {
            tracing::info!(cidr = %parsed, "pod CIDR set");
            state.pod_cidr = Some(parsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Bandwidth, PortMapping, Protocol};
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    const ID: &str = "0123456789abcdef";

    /// A temp conf dir, bin dir and cache dir with fake plugins that log `<COMMAND> <name>`.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            for sub in ["conf", "bin", "cache", "io"] {
                std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
            }
            Fixture { dir }
        }

        fn path(&self, sub: &str) -> PathBuf {
            self.dir.path().join(sub)
        }

        /// A plugin printing `result` on ADD, failing with `fail` (an error JSON) on the named
        /// command, sleeping on ADD when `sleep`.
        fn plugin(&self, name: &str, fail_on: Option<&str>, sleep: bool) {
            let io = self.path("io");
            let ok = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.88.0.5/16","gateway":"10.88.0.1","interface":0}]}"#;
            let fail =
                format!(r#"echo '{{"cniVersion":"1.0.0","code":7,"msg":"{name} broke","details":"d"}}'; exit 1"#);
            let body = format!(
                "input=$(cat)\necho \"$CNI_COMMAND {name}\" >> {log}\nprintf '%s' \"$input\" > {io}/{name}-$CNI_COMMAND.json\n\
                 env | grep ^CNI_ | sort > {io}/{name}-$CNI_COMMAND.env\n\
                 {sleep}\nif [ \"$CNI_COMMAND\" = \"{fail_on}\" ]; then {fail}; fi\n\
                 if [ \"$CNI_COMMAND\" = ADD ]; then echo '{ok}'; fi\n",
                log = self.path("log").display(),
                io = io.display(),
                sleep = if sleep { "[ \"$CNI_COMMAND\" = ADD ] && exec sleep 30" } else { "" },
                fail_on = fail_on.unwrap_or("none"),
            );
            let path = self.path("bin").join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write plugin");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }

        fn conf(&self, file: &str, text: &str) {
            std::fs::write(self.path("conf").join(file), text).expect("write conf");
        }

        fn net(&self, timeout: Duration) -> CniNetwork {
            CniNetwork::new(CniOptions {
                conf_dir: self.path("conf"),
                bin_dirs: vec![self.path("missing-dir"), self.path("bin")],
                timeout,
                cache_dir: self.path("cache"),
            })
        }

        fn log(&self) -> Vec<String> {
            let text = std::fs::read_to_string(self.path("log")).unwrap_or_default();
            let lines = text.lines().map(str::to_string).collect();
            let _ = std::fs::remove_file(self.path("log"));
            lines
        }

        fn stdin(&self, plugin: &str, command: &str) -> Value {
            let text =
                std::fs::read_to_string(self.path("io").join(format!("{plugin}-{command}.json"))).expect("stdin");
            serde_json::from_str(&text).expect("stdin json")
        }

        fn cache_file(&self, net: &str) -> PathBuf {
            self.path("cache").join(format!("{net}-{ID}.json"))
        }
    }

    fn list(name: &str, version: &str, plugins: &[&str]) -> String {
        let plugins: Vec<Value> = plugins
            .iter()
            .map(|p| json!({"type": p, "capabilities": {"portMappings": *p == "second", "bandwidth": true}}))
            .collect();
        json!({"cniVersion": version, "name": name, "plugins": plugins}).to_string()
    }

    fn req() -> PodNetworkRequest {
        PodNetworkRequest {
            sandbox_id: ID.into(),
            netns_path: "/run/netns/fake".into(),
            pod_name: "web".into(),
            pod_namespace: "default".into(),
            pod_uid: "uid-1".into(),
            port_mappings: vec![PortMapping {
                host_port: 18080,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None,
            }],
            bandwidth: Some(Bandwidth {
                ingress_rate: 1_000_000,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn add_chains_plugins_and_del_replays_the_cache() {
        let fx = Fixture::new();
        for p in ["first", "second", "third"] {
            fx.plugin(p, None, false);
        }
        fx.conf("10-net.conflist", &list("net", "1.0.0", &["first", "second"]));
        let net = fx.net(Duration::from_secs(10));
        net.status().expect("ready");

        let status = net.setup(&req()).await.expect("setup");
        assert_eq!(status.ips, vec!["10.88.0.5".parse::<std::net::IpAddr>().expect("ip")]);
        assert_eq!(status.gateway, Some("10.88.0.1".parse().expect("ip")));
        assert_eq!(fx.log(), ["ADD first", "ADD second"]);
        let first = fx.stdin("first", "ADD");
        assert_eq!(
            (first["name"].clone(), first["cniVersion"].clone()),
            (json!("net"), json!("1.0.0"))
        );
        assert!(first.get("prevResult").is_none());
        assert_eq!(
            first["runtimeConfig"]
                .as_object()
                .expect("rt")
                .keys()
                .collect::<Vec<_>>(),
            ["bandwidth"]
        );
        let second = fx.stdin("second", "ADD");
        assert_eq!(second["prevResult"]["ips"][0]["address"], json!("10.88.0.5/16"));
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], json!(18080));
        let env = std::fs::read_to_string(fx.path("io/second-ADD.env")).expect("env");
        let path = format!(
            "CNI_PATH={}:{}",
            fx.path("missing-dir").display(),
            fx.path("bin").display()
        );
        for want in [
            "CNI_COMMAND=ADD",
            &format!("CNI_CONTAINERID={ID}"),
            "CNI_NETNS=/run/netns/fake",
            "CNI_IFNAME=eth0",
            &format!("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={ID};K8S_POD_UID=uid-1"),
            &path,
        ] {
            assert!(env.lines().any(|l| l == want), "{want} missing in\n{env}");
        }
        assert!(fx.cache_file("net").is_file());

        // CHECK replays the cached result in list order.
        net.check(&req()).await.expect("check");
        assert_eq!(fx.log(), ["CHECK first", "CHECK second"]);
        assert_eq!(fx.stdin("second", "CHECK")["prevResult"], status.raw_result);

        // The config changes; DEL still uses what ADD used, in reverse order.
        std::fs::remove_file(fx.path("conf/10-net.conflist")).expect("rm");
        fx.conf("20-new.conflist", &list("new", "1.0.0", &["third"]));
        let mut bare = req();
        bare.port_mappings.clear();
        net.teardown(&bare).await.expect("teardown");
        assert_eq!(fx.log(), ["DEL second", "DEL first"]);
        let del = fx.stdin("second", "DEL");
        assert_eq!(del["runtimeConfig"]["portMappings"][0]["containerPort"], json!(80));
        assert_eq!(del["prevResult"], status.raw_result);
        assert!(!fx.cache_file("net").exists());

        // Without a cache, DEL runs the current config; repeating it is fine.
        net.teardown(&bare).await.expect("second teardown");
        assert_eq!(fx.log(), ["DEL third"]);
        assert!(fx.stdin("third", "DEL").get("prevResult").is_none());
    }

    #[tokio::test]
    async fn failed_add_deletes_the_whole_list() {
        let fx = Fixture::new();
        fx.plugin("first", None, false);
        fx.plugin("second", Some("ADD"), false);
        fx.conf("net.conflist", &list("net", "1.0.0", &["first", "second"]));
        let err = fx
            .net(Duration::from_secs(10))
            .setup(&req())
            .await
            .expect_err("must fail");
        match &err {
            NetworkError::Plugin {
                plugin,
                command: "ADD",
                code: Some(7),
                message,
                details,
            } => {
                assert_eq!(
                    (plugin.as_str(), message.as_str(), details.as_str()),
                    ("second", "second broke", "d")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fx.log(), ["ADD first", "ADD second", "DEL second", "DEL first"]);
        assert_eq!(
            fx.stdin("first", "DEL")["prevResult"]["ips"][0]["address"],
            json!("10.88.0.5/16")
        );
        assert!(!fx.cache_file("net").exists());
    }

    #[tokio::test]
    async fn timed_out_add_is_killed_and_rolled_back() {
        let fx = Fixture::new();
        fx.plugin("first", None, false);
        fx.plugin("slow", None, true);
        fx.conf("net.conflist", &list("net", "0.4.0", &["first", "slow"]));
        let start = std::time::Instant::now();
        let err = fx
            .net(Duration::from_millis(500))
            .setup(&req())
            .await
            .expect_err("timeout");
        assert!(
            matches!(&err, NetworkError::Timeout { plugin, command: "ADD", .. } if plugin == "slow"),
            "{err:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(fx.log(), ["ADD first", "ADD slow", "DEL slow", "DEL first"]);
    }

    #[tokio::test]
    async fn failed_del_keeps_cache_and_still_runs_every_plugin() {
        let fx = Fixture::new();
        fx.plugin("first", None, false);
        fx.plugin("second", Some("DEL"), false);
        fx.conf("net.conflist", &list("net", "1.0.0", &["first", "second"]));
        let net = fx.net(Duration::from_secs(10));
        net.setup(&req()).await.expect("setup");
        fx.log();
        let err = net.teardown(&req()).await.expect_err("DEL fails");
        assert!(matches!(&err, NetworkError::Plugin { plugin, command: "DEL", .. } if plugin == "second"));
        assert_eq!(fx.log(), ["DEL second", "DEL first"]);
        assert!(fx.cache_file("net").exists(), "cache kept for a retry");
    }

    #[tokio::test]
    async fn check_is_skipped_before_0_4_0_and_needs_a_cache_after() {
        let fx = Fixture::new();
        fx.plugin("first", None, false);
        fx.conf("net.conf", r#"{"cniVersion": "0.3.1", "name": "old", "type": "first"}"#);
        let net = fx.net(Duration::from_secs(10));
        net.setup(&req()).await.expect("setup");
        net.check(&req()).await.expect("check skipped");
        assert_eq!(fx.log(), ["ADD first"]);
        net.teardown(&req()).await.expect("teardown");

        fx.conf("net.conf", r#"{"cniVersion": "1.0.0", "name": "new", "type": "first"}"#);
        let err = net.check(&req()).await.expect_err("no cache");
        assert!(matches!(err, NetworkError::MissingCache { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn status_follows_the_config_dir_and_pod_cidr() {
        let fx = Fixture::new();
        let net = fx.net(Duration::from_secs(10));
        let reason = |net: &CniNetwork| match net.status() {
            Err(NetworkError::NotReady(reason)) => reason,
            other => panic!("expected NotReady, got {other:?}"),
        };
        assert!(reason(&net).contains("no CNI network config"));
        // Nothing was set up, nothing to tear down.
        net.teardown(&req()).await.expect("teardown without config");

        fx.conf("10-bad.conflist", "{");
        assert!(reason(&net).contains("10-bad.conflist"));

        let templated = r#"{"cniVersion": "1.0.0", "name": "tpl", "plugins": [
            {"type": "first", "ipam": {"type": "host-local", "ranges": [[{"subnet": "{{pod_cidr}}"}]]}}]}"#;
        fx.conf("20-tpl.conflist", templated);
        assert!(reason(&net).contains("waiting for pod CIDR"));
        assert!(matches!(net.setup(&req()).await, Err(NetworkError::NotReady(_))));
        net.update_pod_cidr("not a cidr");
        assert!(reason(&net).contains("waiting for pod CIDR"));
        net.update_pod_cidr("10.244.7.0/24,fd00:7::/64");
        let missing = reason(&net);
        assert!(
            missing.contains("\"first\" not found") && missing.contains("tpl"),
            "{missing}"
        );
        let err = net.setup(&req()).await.expect_err("no binary");
        assert!(matches!(err, NetworkError::PluginNotFound { .. }), "{err:?}");
        fx.plugin("first", None, false);
        net.status().expect("ready");
        net.setup(&req()).await.expect("setup");
        assert_eq!(
            fx.stdin("first", "ADD")["ipam"]["ranges"][0][0]["subnet"],
            json!("10.244.7.0/24")
        );
    }

    #[tokio::test]
    async fn rejects_bad_requests_and_results() {
        let fx = Fixture::new();
        fx.plugin("first", None, false);
        fx.conf("net.conflist", &list("net", "1.0.0", &["first"]));
        let net = fx.net(Duration::from_secs(10));
        for id in ["", "../x", "a/b"] {
            let bad = PodNetworkRequest {
                sandbox_id: id.into(),
                ..req()
            };
            assert!(
                matches!(net.setup(&bad).await, Err(NetworkError::InvalidRequest(_))),
                "{id}"
            );
        }
        let no_ns = PodNetworkRequest {
            netns_path: PathBuf::new(),
            ..req()
        };
        assert!(matches!(net.setup(&no_ns).await, Err(NetworkError::InvalidRequest(_))));
        assert!(fx.log().is_empty());

        // A plugin printing garbage fails ADD and is cleaned up.
        let path = fx.path("bin/first");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND\" >> {}\necho garbage\n",
                fx.path("log").display()
            ),
        )
        .expect("write");
        let err = net.setup(&req()).await.expect_err("garbage result");
        assert!(matches!(err, NetworkError::InvalidResult { .. }), "{err:?}");
        assert_eq!(fx.log(), ["ADD", "DEL"]);
    }
}
