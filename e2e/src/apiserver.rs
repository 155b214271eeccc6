//! Kubernetes' API server for e2e tests that need one (RuntimeClasses, pods bound to a node
//! through the API): the offline kit's `e2e_node.test` in its services mode runs an embedded
//! etcd and kube-apiserver and nothing else; kubectl talks to it with a bearer token of this
//! run. It listens on 127.0.0.1:6443 (fixed by the suite) and keeps everything it writes
//! (etcd's data, its token file, certificates) in a directory of its own, removed on drop.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::kubelet::{kit_binary, last_lines};
use crate::sys;

/// The address the suite's API server serves on.
const ADDRESS: &str = "127.0.0.1:6443";

/// A running API server and a kubeconfig for it; stopped when dropped.
pub struct ApiServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    kubectl: PathBuf,
    /// A kubeconfig with the server's address and this run's token (kubelet and kubectl).
    pub kubeconfig: PathBuf,
}

impl ApiServer {
    /// Starts the API server and waits until it is ready (up to 90 s).
    pub fn start() -> Result<ApiServer> {
        if std::net::TcpStream::connect(ADDRESS).is_ok() {
            bail!("{ADDRESS} is taken (another API server or node-e2e run?)");
        }
        let bin = kit_binary("e2e_node.test")?;
        let kubectl = kit_binary("kubectl")?;
        let dir = tempfile::tempdir()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!("berth-e2e-{:x}{nanos:x}", std::process::id());
        let log = std::fs::File::create(dir.path().join("apiserver.log"))?;
        let child = Command::new(bin)
            .args(["--run-services-mode", &format!("--bearer-token={token}")])
            .current_dir(dir.path())
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting e2e_node.test --run-services-mode")?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: https://{ADDRESS}\n    \
                 insecure-skip-tls-verify: true\nusers:\n- name: e2e\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  \
                 context: {{cluster: e2e, user: e2e}}\ncurrent-context: e2e\n"
            ),
        )?;
        let mut api = ApiServer {
            child: Some(child),
            dir,
            kubectl,
            kubeconfig,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        while api.kubectl(&["get", "--raw", "/readyz"]).is_err() {
            if api.child.as_mut().is_some_and(|c| !matches!(c.try_wait(), Ok(None))) {
                bail!("the API server exited:\n{}", api.log_tail(30));
            }
            if Instant::now() > deadline {
                bail!("the API server was not ready in 90 s:\n{}", api.log_tail(30));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(api)
    }

    /// `kubectl ARGS` on this server: its standard output, or an error with its standard error.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_with(args, None)
    }

    /// `kubectl apply -f -` of a YAML document (several, `---`-separated).
    pub fn apply(&self, yaml: &str) -> Result<String> {
        // Not validated against the OpenAPI schema: a server just ready may not serve it yet.
        self.kubectl_with(&["apply", "--validate=false", "-f", "-"], Some(yaml))
    }

    fn kubectl_with(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut child = Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg("--request-timeout=20s")
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("kubectl")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The last `n` lines of the server's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default();
        last_lines(&log, n)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sys::terminate(&mut c, Duration::from_secs(15));
        }
    }
}
