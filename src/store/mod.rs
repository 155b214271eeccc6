//! The metadata store: an embedded redb database (`root/meta.redb`) holding JSON records
//! in named tables. redb commits are atomic and crash-safe (copy-on-write B-trees with a
//! durable commit), so a record is either wholly there after a crash or not at all.
//! Services keep their records in an [`Index`], which writes through this store first.

mod index;

pub use index::{Index, Observer, Record, Reservation};

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The tables Berth keeps.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Images,
    Sandboxes,
    Containers,
    Volumes,
}

impl Table {
    const ALL: [Table; 4] = [Table::Images, Table::Sandboxes, Table::Containers, Table::Volumes];

    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Images => TableDefinition::new("images"),
            Table::Sandboxes => TableDefinition::new("sandboxes"),
            Table::Containers => TableDefinition::new("containers"),
            Table::Volumes => TableDefinition::new("volumes"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store {path}: {message}")]
    Db { path: PathBuf, message: String },
    #[error("metadata record {key}: {message}")]
    Decode { key: String, message: String },
}

pub struct MetaStore {
    db: redb::Database,
    path: PathBuf,
}

impl MetaStore {
    pub fn open(path: &Path) -> Result<MetaStore, StoreError> {
        let db = redb::Database::create(path).map_err(|e| StoreError::Db {
            path: path.into(),
            message: e.to_string(),
        })?;
        let store = MetaStore { db, path: path.into() };
        // Create every table up front so reads never meet a missing one.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        for table in Table::ALL {
            txn.open_table(table.def()).map_err(|e| store.err(e))?;
        }
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Writes (or replaces) one record durably.
    pub fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Decode {
            key: key.into(),
            message: e.to_string(),
        })?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(table.def()).map_err(|e| self.err(e))?;
            t.insert(key, bytes.as_slice()).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Deletes one record; a missing key is not an error.
    pub fn delete(&self, table: Table, key: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(table.def()).map_err(|e| self.err(e))?;
            t.remove(key).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Every record of a table. A record that no longer decodes is reported, not skipped.
    pub fn load_all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table.def()).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key = k.value().to_string();
            let value = serde_json::from_slice(v.value()).map_err(|e| StoreError::Decode {
                key: key.clone(),
                message: e.to_string(),
            })?;
            out.push((key, value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        n: u32,
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta.redb");
        {
            let store = MetaStore::open(&path).expect("open");
            store.put(Table::Images, "a", &Rec { n: 1 }).expect("put");
            store.put(Table::Images, "b", &Rec { n: 2 }).expect("put");
            store.delete(Table::Images, "b").expect("delete");
            store.delete(Table::Images, "missing").expect("idempotent delete");
        }
        let store = MetaStore::open(&path).expect("reopen");
        let all: Vec<(String, Rec)> = store.load_all(Table::Images).expect("load");
        assert_eq!(all, vec![("a".to_string(), Rec { n: 1 })]);
    }
}
