//! The `[nri]` section of berthd's configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// NRI (Node Resource Interface): plugins that see and adjust pods and containers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NriConfig {
    /// Serve NRI: create the socket and start the plugins of `plugin_path`.
    pub enabled: bool,
    /// The socket external plugins connect to (created mode 0600).
    pub socket_path: PathBuf,
    /// Plugins started by berthd: executables named `NN-name` (NN: the index).
    pub plugin_path: PathBuf,
    /// Configuration of the started plugins: `NN-name.conf`, else `name.conf`.
    pub plugin_config_path: PathBuf,
    /// Seconds a plugin may take to register, and for each of Configure and Synchronize.
    pub plugin_registration_timeout_secs: u64,
    /// Seconds a plugin may take to answer one event; a plugin that does not is dropped.
    pub plugin_request_timeout_secs: u64,
}

impl Default for NriConfig {
    fn default() -> Self {
        NriConfig {
            enabled: true,
            socket_path: "/var/run/nri/nri.sock".into(),
            plugin_path: "/opt/nri/plugins".into(),
            plugin_config_path: "/etc/nri/conf.d".into(),
            plugin_registration_timeout_secs: 5,
            plugin_request_timeout_secs: 2,
        }
    }
}

impl NriConfig {
    pub fn registration_timeout(&self) -> Duration {
        Duration::from_secs(self.plugin_registration_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.plugin_request_timeout_secs)
    }

    /// Checks the values (called by `Config::validate`).
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.plugin_registration_timeout_secs == 0 || self.plugin_request_timeout_secs == 0 {
            return Err("nri: plugin timeouts must be at least 1 second".into());
        }
        if !self.socket_path.is_absolute() {
            return Err(format!(
                "nri.socket_path {} is not absolute",
                self.socket_path.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_validate() {
        let cfg: NriConfig = toml::from_str("plugin_request_timeout_secs = 3").expect("parse");
        assert_eq!(cfg.request_timeout(), Duration::from_secs(3));
        assert_eq!(cfg.registration_timeout(), Duration::from_secs(5));
        assert_eq!(cfg.socket_path, PathBuf::from("/var/run/nri/nri.sock"));
        assert!(cfg.validate().is_ok());
        let zero = NriConfig {
            plugin_request_timeout_secs: 0,
            ..NriConfig::default()
        };
        assert!(zero.validate().is_err());
        let off = NriConfig { enabled: false, ..zero };
        assert!(off.validate().is_ok(), "nothing to check when off");
        assert!(
            toml::from_str::<NriConfig>("sockt_path = \"/x\"").is_err(),
            "unknown keys are refused"
        );
    }
}
