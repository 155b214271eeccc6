//! Registry credentials as `pull` and `push` take them: `--creds`, `--auth`, else the
//! credentials file's entry for the registry.

use std::path::PathBuf;

use berth::image::auth::{from_docker_config, Credentials};
use berth_proto::berth::v1 as pb;

use super::login::config_path;

#[derive(Debug, Default, clap::Args)]
pub struct CredsArgs {
    /// Registry credentials as USERNAME[:PASSWORD] (default: the credentials file's entry).
    #[arg(long)]
    pub creds: Option<String>,
    /// Registry credentials as base64 of USERNAME:PASSWORD.
    #[arg(long)]
    pub auth: Option<String>,
    /// Docker-style credentials file [default: $DOCKER_CONFIG/config.json, else
    /// /root/.docker/config.json, the file berthd reads].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl CredsArgs {
    /// The credentials to send: the flags, else the credentials file's entry for the registry.
    pub fn for_registry(&self, registry: &str) -> Option<pb::Auth> {
        let server_address = registry.to_string();
        if let Some(c) = &self.creds {
            let (username, password) = c.split_once(':').unwrap_or((c, ""));
            return Some(pb::Auth {
                username: username.into(),
                password: password.into(),
                server_address,
                ..Default::default()
            });
        }
        if let Some(a) = &self.auth {
            return Some(pb::Auth {
                auth: a.clone(),
                server_address,
                ..Default::default()
            });
        }
        let path = config_path(self.config.as_deref());
        // An unreadable file is not fatal: the pull goes on without credentials (as berthd's does).
        let found = from_docker_config(&path, registry).unwrap_or_else(|e| {
            eprintln!("berthctl: ignoring the credentials file: {e}");
            None
        });
        found.map(|c| {
            let mut auth = pb::Auth {
                server_address,
                ..Default::default()
            };
            match c {
                Credentials::Anonymous => {}
                Credentials::Basic { username, password } => {
                    auth.username = username;
                    auth.password = password;
                }
                Credentials::Bearer(t) => auth.registry_token = t,
                Credentials::Identity(t) => auth.identity_token = t,
            }
            auth
        })
    }
}
