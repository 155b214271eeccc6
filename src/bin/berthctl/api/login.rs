//! `berthctl login` / `logout`: credentials in a Docker-compatible `config.json`
//! (`{"auths": {"host": {"auth": base64("user:pass")}}}`), the file berthd reads for pulls.
//! Login first has berthd check the credentials against the registry (`CheckLogin`, so
//! berthd's hosts config, TLS settings and CA files apply). Other keys of the file are kept;
//! it is written with mode 0600 through a temporary file and a rename. Credentials are
//! never printed.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use berth::image::auth::server_host;
use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_client::ImagesClient;
use serde_json::{Map, Value};
use tonic::transport::Channel;

use super::{explain, request};

/// Where berthd reads credentials by default (`registry_auth_file`).
const DEFAULT_CONFIG: &str = "/root/.docker/config.json";
/// Docker Hub's key in `auths`, as Docker writes it.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Registry host[:port] (default: Docker Hub).
    pub registry: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (visible in the process list: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin", hide_default_value = true)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Credentials file [default: $DOCKER_CONFIG/config.json, else /root/.docker/config.json].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Registry host[:port] (default: Docker Hub).
    pub registry: Option<String>,
    /// Credentials file [default: $DOCKER_CONFIG/config.json, else /root/.docker/config.json].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// `--config`, else `$DOCKER_CONFIG/config.json`, else berthd's default file.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("config.json"),
        _ => PathBuf::from(DEFAULT_CONFIG),
    }
}

/// The `auths` key for a registry: its host, or Docker's key for Docker Hub.
fn auth_key(registry: Option<&str>) -> (String, String) {
    let host = server_host(registry.unwrap_or("docker.io"));
    let key = if host == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.clone()
    };
    (host, key)
}

fn prompt(label: &str, hidden: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{label} needed: give it as a flag (or --password-stdin)");
    }
    eprint!("{label}: ");
    let _ = std::io::stderr().flush();
    let saved = if hidden {
        let saved = rustix::termios::tcgetattr(&stdin).context("reading terminal settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)
            .context("turning echo off")?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        eprintln!();
    }
    read.context("reading the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_config(path: &Path) -> anyhow::Result<Map<String, Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Map::new()),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => bail!("{}: not a JSON object", path.display()),
            Err(e) => bail!("{}: {e}", path.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the file atomically: a 0600 temporary file beside it, then a rename.
fn write_config(path: &Path, config: &Map<String, Value>) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let mut text = serde_json::to_string_pretty(config)?;
    text.push('\n');
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Sets (or, with `None`, removes) the entry for `key`; returns whether one was removed.
pub fn set_auth(config: &mut Map<String, Value>, host: &str, key: &str, auth: Option<String>) -> bool {
    let auths = config.entry("auths").or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let Some(auths) = auths.as_object_mut() else {
        return false;
    };
    // Any key naming the same host (a URL form, Docker Hub's aliases) goes.
    let same: Vec<String> = auths.keys().filter(|k| server_host(k) == host).cloned().collect();
    let removed = !same.is_empty();
    for k in same {
        auths.remove(&k);
    }
    if let Some(auth) = auth {
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(auth));
        auths.insert(key.to_string(), Value::Object(entry));
    }
    removed
}

pub async fn login(client: &mut ImagesClient<Channel>, args: LoginArgs, timeout: Option<u64>) -> anyhow::Result<()> {
    let (host, key) = auth_key(args.registry.as_deref());
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username", false)?,
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        match args.password {
            Some(p) => p,
            None => prompt("Password", true)?,
        }
    };
    if username.is_empty() || password.is_empty() {
        bail!("a username and a password are needed");
    }
    let auth = pb::Auth {
        username: username.clone(),
        password: password.clone(),
        server_address: host.clone(),
        ..Default::default()
    };
    client
        .check_login(request(
            pb::CheckLoginRequest {
                registry: host.clone(),
                auth: Some(auth),
            },
            timeout,
        ))
        .await
        .map_err(explain)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let path = config_path(args.config.as_deref());
    let mut config = read_config(&path)?;
    set_auth(&mut config, &host, &key, Some(encoded));
    write_config(&path, &config)?;
    println!("Login Succeeded ({host}; credentials stored in {})", path.display());
    Ok(())
}

pub fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let (host, key) = auth_key(args.registry.as_deref());
    let path = config_path(args.config.as_deref());
    let mut config = read_config(&path)?;
    if !set_auth(&mut config, &host, &key, None) {
        println!("Not logged in to {host}");
        return Ok(());
    }
    write_config(&path, &config)?;
    println!("Removed login credentials for {host}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_other_keys_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"http://127.0.0.1:5000/v2/":{"auth":"b2xkOm9sZA=="},"other:1":{"auth":"eDp5"}},"credHelpers":{"x":"y"}}"#,
        )
        .unwrap();
        let mut cfg = read_config(&path).unwrap();
        let (host, key) = auth_key(Some("127.0.0.1:5000"));
        set_auth(&mut cfg, &host, &key, Some("bmV3Om5ldw==".into()));
        write_config(&path, &cfg).unwrap();
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["auths"]["127.0.0.1:5000"]["auth"], "bmV3Om5ldw==");
        assert!(
            back["auths"].get("http://127.0.0.1:5000/v2/").is_none(),
            "the old key form goes"
        );
        assert_eq!(back["auths"]["other:1"]["auth"], "eDp5");
        assert_eq!(back["credHelpers"]["x"], "y");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Berthd's own lookup finds what was written.
        let creds = berth::image::auth::from_docker_config(&path, "127.0.0.1:5000").unwrap();
        assert!(matches!(creds, Some(berth::image::auth::Credentials::Basic { .. })));

        let mut cfg = read_config(&path).unwrap();
        assert!(set_auth(&mut cfg, &host, &key, None));
        assert!(!set_auth(&mut cfg, &host, &key, None));
        assert_eq!(auth_key(None).1, DOCKER_HUB_KEY);
        // Only the file itself is left in the directory (no temporary files).
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
