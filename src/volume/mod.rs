//! Volumes: directories berthd keeps under `root/volumes/<name>/_data` for Docker-style
//! tools, named or anonymous, plain or backed by a tmpfs or a host directory (the local
//! driver's options). Containers get them as ordinary bind mounts; which containers use a
//! volume is read from their mounts, so nothing here can disagree with them.

pub mod options;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::container::model::ContainerRecord;
use crate::store::{Index, MetaStore, Record, StoreError, Table};
use options::Backing;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    Invalid(String),
    #[error("volume {0} not found")]
    NotFound(String),
    /// `users` lists the container ids, comma-separated.
    #[error("volume {name} is still mounted by container(s) {users}")]
    InUse { name: String, users: String },
    #[error("volume {name}: {message}")]
    Io { name: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A volume as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub created_at: i64,
    pub anonymous: bool,
}

impl Record for VolumeRecord {
    const TABLE: Table = Table::Volumes;

    fn id(&self) -> &str {
        &self.name
    }

    fn reservation(&self) -> String {
        self.name.clone()
    }

    fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// What a volume create asks for.
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    /// Empty: a generated name (anonymous volumes).
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub anonymous: bool,
}

pub struct Volumes {
    root: PathBuf,
    records: Index<VolumeRecord>,
    /// One create or remove at a time: names are checked, then made.
    lock: tokio::sync::Mutex<()>,
}

impl Volumes {
    /// The volumes under `root`; tmpfs and bind volumes that are not mounted (after a
    /// reboot) are mounted again.
    pub fn open(root: PathBuf, meta: Arc<MetaStore>) -> Result<Volumes, VolumeError> {
        std::fs::create_dir_all(&root).map_err(|e| VolumeError::Io {
            name: String::new(),
            message: format!("{}: {e}", root.display()),
        })?;
        let volumes = Volumes {
            root,
            records: Index::load(meta, |_| false)?,
            lock: tokio::sync::Mutex::new(()),
        };
        for rec in volumes.records.list(|_| true) {
            if let Err(e) = volumes.mount(&rec) {
                tracing::warn!(volume = rec.name, error = %e, "mounting a volume again");
            }
        }
        Ok(volumes)
    }

    /// The directory containers mount for volume `name`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<VolumeRecord, VolumeError> {
        self.records
            .get(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    pub fn list(&self) -> Vec<VolumeRecord> {
        self.records.list(|_| true)
    }

    /// Makes a volume; one that exists with the same driver is returned unchanged.
    pub async fn create(&self, req: NewVolume) -> Result<VolumeRecord, VolumeError> {
        let driver = if req.driver.is_empty() {
            "local"
        } else {
            req.driver.as_str()
        };
        if driver != "local" {
            return Err(VolumeError::Invalid(format!(
                "volume driver {driver:?} is not available (only \"local\" is)"
            )));
        }
        let backing = options::parse(&req.options).map_err(VolumeError::Invalid)?;
        let name = if req.name.is_empty() {
            crate::sandbox::new_id()
        } else {
            check_name(&req.name)?;
            req.name
        };
        let _lock = self.lock.lock().await;
        if let Some(existing) = self.records.get(&name) {
            return Ok(existing);
        }
        let rec = VolumeRecord {
            name,
            driver: driver.to_string(),
            labels: req.labels,
            options: req.options,
            created_at: crate::clock::now_nanos(),
            anonymous: req.anonymous,
        };
        let data = self.mountpoint(&rec.name);
        let made = std::fs::create_dir_all(&data)
            .map_err(|e| io_err(&rec.name, e))
            .and_then(|()| mount_backing(&data, &backing).map_err(|e| io_err(&rec.name, e)))
            .and_then(|()| Ok(self.records.put(&rec)?));
        if let Err(e) = made {
            let _ = crate::sys::mount::unmount(&data);
            let _ = std::fs::remove_dir_all(self.root.join(&rec.name));
            return Err(e);
        }
        Ok(rec)
    }

    /// Removes volume `name` unless a container in `containers` mounts it.
    pub async fn remove(&self, name: &str, containers: &[ContainerRecord]) -> Result<(), VolumeError> {
        let _lock = self.lock.lock().await;
        let rec = self.get(name)?;
        let users = self.users(&rec.name, containers);
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: rec.name,
                users: users.join(", "),
            });
        }
        let data = self.mountpoint(&rec.name);
        crate::sys::mount::unmount(&data).map_err(|e| io_err(&rec.name, e))?;
        if crate::sys::mount::is_mountpoint(&data) {
            return Err(io_err(&rec.name, "still mounted"));
        }
        match std::fs::remove_dir_all(self.root.join(&rec.name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&rec.name, e)),
            _ => {}
        }
        self.records.remove(&rec.name)?;
        Ok(())
    }

    /// The ids of the containers whose mounts use volume `name`.
    pub fn users(&self, name: &str, containers: &[ContainerRecord]) -> Vec<String> {
        let data = self.mountpoint(name);
        containers
            .iter()
            .filter(|c| c.spec.mounts.iter().any(|m| Path::new(&m.host_path).starts_with(&data)))
            .map(|c| c.id.clone())
            .collect()
    }

    /// Bytes of file data in volume `name`.
    pub fn size(&self, name: &str) -> u64 {
        dir_size(&self.mountpoint(name))
    }

    fn mount(&self, rec: &VolumeRecord) -> std::io::Result<()> {
        let data = self.mountpoint(&rec.name);
        let backing = options::parse(&rec.options).map_err(std::io::Error::other)?;
        if backing == Backing::Directory || crate::sys::mount::is_mountpoint(&data) {
            return Ok(());
        }
        std::fs::create_dir_all(&data)?;
        mount_backing(&data, &backing)
    }
}

fn mount_backing(data: &Path, backing: &Backing) -> std::io::Result<()> {
    match backing {
        Backing::Directory => Ok(()),
        Backing::Tmpfs(opts) => crate::sys::mount::tmpfs_volume(data, opts),
        Backing::Bind { source, readonly } => crate::sys::mount::bind(source, data, *readonly),
    }
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() >= 2 && name.len() <= 255 {
        Ok(())
    } else {
        Err(VolumeError::Invalid(format!(
            "volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"
        )))
    }
}

fn io_err(name: &str, e: impl std::fmt::Display) -> VolumeError {
    VolumeError::Io {
        name: name.to_string(),
        message: e.to_string(),
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
