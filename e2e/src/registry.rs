//! [`TestRegistry`]: a real `docker-registry serve` (Debian's distribution v2.8) on a free
//! loopback port, with filesystem storage in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::{free_port, http_client, sys};

/// How long [`TestRegistry::start`] waits for `GET /v2/` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The registry binary; override with env `DOCKER_REGISTRY`.
const DEFAULT_BINARY: &str = "/usr/bin/docker-registry";

/// Options for [`TestRegistry::start`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOpts {
    /// `Some((user, password))`: require HTTP Basic auth (htpasswd, bcrypt) for every request.
    pub htpasswd: Option<(String, String)>,
}

/// A running `docker-registry`. Dropping it ends the process (SIGTERM, then SIGKILL) and
/// removes its storage.
#[derive(Debug)]
pub struct TestRegistry {
    child: Option<Child>,
    port: u16,
    auth: Option<(String, String)>,
    log_path: PathBuf,
    dir: TempDir,
}

impl TestRegistry {
    /// Writes a config into a new temporary directory, starts `docker-registry serve` on a
    /// free port and waits until `GET /v2/` answers 200 (or 401 with auth). On failure the
    /// error carries the registry's log.
    pub async fn start(opts: RegistryOpts) -> Result<TestRegistry> {
        // The port is free when picked but may be taken before the registry binds it.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(&opts).await {
                Err(e) if attempt < 5 && format!("{e:#}").contains("address already in use") => continue,
                r => return r,
            }
        }
    }

    async fn try_start(opts: &RegistryOpts) -> Result<TestRegistry> {
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir()?;
        let port = free_port();
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)?;

        let mut auth_yaml = String::new();
        if let Some((user, pass)) = &opts.htpasswd {
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, htpasswd_line(user, pass)?)?;
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: berth-test-realm\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: berth-e2e-secret\n\
             {auth_yaml}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config)?;

        let log_path = dir.path().join("registry.log");
        let log = fs::File::create(&log_path)?;
        let binary = std::env::var("DOCKER_REGISTRY").unwrap_or_else(|_| DEFAULT_BINARY.to_string());
        let mut cmd = Command::new(&binary);
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // REGISTRY_* variables would override the config file.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {binary} (apt-get install docker-registry)"))?;
        let mut reg = TestRegistry {
            child: Some(child),
            port,
            auth: opts.htpasswd.clone(),
            log_path,
            dir,
        };
        if let Err(e) = reg.wait_ready().await {
            reg.stop();
            bail!(
                "docker-registry did not come up: {e:#}\n--- registry log ---\n{}",
                reg.log()
            );
        }
        Ok(reg)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let client = http_client();
        let url = format!("{}/v2/", self.url());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("docker-registry exited early: {status}");
                }
            }
            if let Ok(resp) = client.get(&url).timeout(Duration::from_secs(2)).send().await {
                match resp.status().as_u16() {
                    200 | 401 => return Ok(()),
                    s => bail!("GET /v2/ answered {s}"),
                }
            }
            if Instant::now() > deadline {
                bail!("GET {url} did not answer within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The Basic credentials it was configured with, as `push_image` takes them.
    pub fn auth(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Its storage root (the filesystem driver's `rootdirectory`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the registry wrote to stdout / stderr so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Ends the registry (SIGTERM, up to 5 s, then SIGKILL). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            sys::terminate(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One htpasswd line with a bcrypt hash (docker-registry accepts only bcrypt), made by
/// `htpasswd -Bbn` from apache2-utils.
fn htpasswd_line(user: &str, pass: &str) -> Result<String> {
    let out = Command::new("htpasswd")
        .args(["-B", "-b", "-n", user, pass])
        .stdin(Stdio::null())
        .output()
        .context("run htpasswd (apt-get install apache2-utils)")?;
    if !out.status.success() {
        bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8(out.stdout)?;
    Ok(format!("{}\n", line.trim()))
}

pub(crate) fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
