//! One kind of record, in memory and in its table: loaded at start, written through on
//! every change, found by id or by a unique id prefix, listed in creation order, and its
//! names reserved while a record is being made (a reservation that is not kept is given
//! back when it is dropped, so no failure path can forget it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{MetaStore, StoreError, Table};

/// Shortest id prefix that names a record (as crictl allows).
const MIN_PREFIX: usize = 3;

/// A record kind kept by an [`Index`].
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync {
    /// Its table in the metadata store.
    const TABLE: Table;
    fn id(&self) -> &str;
    /// The name it holds while it exists (unique among records of its kind).
    fn reservation(&self) -> String;
    /// When it was made (Unix ns): listings are in this order, then by id.
    fn created_at(&self) -> i64;
}

/// Told of every change an [`Index`] writes: the index, the record before (`None`: new)
/// and after (`None`: removed).
pub type Observer<R> = Box<dyn Fn(&Index<R>, Option<&R>, Option<&R>) + Send + Sync>;

pub struct Index<R> {
    meta: Arc<MetaStore>,
    records: RwLock<HashMap<String, R>>,
    /// Reserved names to the id holding each.
    names: Mutex<HashMap<String, String>>,
    observer: Option<Observer<R>>,
}

impl<R: Record> Index<R> {
    /// Every stored record, each first passed to `fix` (which returns whether it changed the
    /// record; a changed record is written back).
    pub fn load(meta: Arc<MetaStore>, mut fix: impl FnMut(&mut R) -> bool) -> Result<Index<R>, StoreError> {
        let mut records = HashMap::new();
        let mut names = HashMap::new();
        for (id, mut rec) in meta.load_all::<R>(R::TABLE)? {
            if fix(&mut rec) {
                meta.put(R::TABLE, &id, &rec)?;
            }
            names.insert(rec.reservation(), id.clone());
            records.insert(id, rec);
        }
        Ok(Index {
            meta,
            records: RwLock::new(records),
            names: Mutex::new(names),
            observer: None,
        })
    }

    /// The index with `observer` told of every later change (after it is stored, outside
    /// the index's locks, so the observer may read the index).
    pub fn observed_by(mut self, observer: Observer<R>) -> Index<R> {
        self.observer = Some(observer);
        self
    }

    fn changed(&self, old: Option<&R>, new: Option<&R>) {
        if let Some(observe) = &self.observer {
            observe(self, old, new);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, R>> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }

    fn names(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `rec` durably, then in memory; returns the record it replaced.
    pub fn put(&self, rec: &R) -> Result<Option<R>, StoreError> {
        self.meta.put(R::TABLE, rec.id(), rec)?;
        let old = self
            .records
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.id().to_string(), rec.clone());
        self.changed(old.as_ref(), Some(rec));
        Ok(old)
    }

    /// Deletes record `id` durably and in memory, and gives back its name; returns it
    /// (`None`: there was none).
    pub fn remove(&self, id: &str) -> Result<Option<R>, StoreError> {
        self.meta.delete(R::TABLE, id)?;
        let old = self.records.write().unwrap_or_else(|p| p.into_inner()).remove(id);
        if let Some(rec) = &old {
            let mut names = self.names();
            let name = rec.reservation();
            if names.get(&name).is_some_and(|holder| holder == id) {
                names.remove(&name);
            }
        }
        if old.is_some() {
            self.changed(old.as_ref(), None);
        }
        Ok(old)
    }

    /// The record with this id, or the only one whose id starts with it (at least three
    /// characters).
    pub fn find(&self, id: &str) -> Option<R> {
        let records = self.read();
        if let Some(r) = records.get(id) {
            return Some(r.clone());
        }
        if id.len() < MIN_PREFIX {
            return None;
        }
        let mut found = records.values().filter(|r| r.id().starts_with(id));
        match (found.next(), found.next()) {
            (Some(r), None) => Some(r.clone()),
            _ => None,
        }
    }

    /// The record with exactly this id.
    pub fn get(&self, id: &str) -> Option<R> {
        self.read().get(id).cloned()
    }

    /// A record `pred` accepts, for keys the caller keeps unique (which one when several
    /// match is unspecified).
    pub fn find_by(&self, pred: impl Fn(&R) -> bool) -> Option<R> {
        self.read().values().find(|r| pred(r)).cloned()
    }

    /// The records `keep` accepts, oldest first.
    pub fn list(&self, keep: impl Fn(&R) -> bool) -> Vec<R> {
        let mut out: Vec<R> = self.read().values().filter(|r| keep(r)).cloned().collect();
        out.sort_by(|a, b| a.created_at().cmp(&b.created_at()).then(a.id().cmp(b.id())));
        out
    }

    /// The ids of all records.
    pub fn ids(&self) -> HashSet<String> {
        self.read().keys().cloned().collect()
    }

    /// Reserves `name` for the record `id` is about to become; `Err` carries the id that
    /// holds it. The name is given back when the reservation is dropped unless it was kept.
    pub fn reserve(&self, name: &str, id: &str) -> Result<Reservation<'_, R>, String> {
        let mut names = self.names();
        if let Some(holder) = names.get(name) {
            return Err(holder.clone());
        }
        names.insert(name.to_string(), id.to_string());
        Ok(Reservation {
            index: self,
            name: name.to_string(),
            id: id.to_string(),
            kept: false,
        })
    }
}

/// A name held for a record being made.
pub struct Reservation<'a, R: Record> {
    index: &'a Index<R>,
    name: String,
    id: String,
    kept: bool,
}

impl<R: Record> Reservation<'_, R> {
    /// The record exists now: it holds the name until it is removed.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl<R: Record> Drop for Reservation<'_, R> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut names = self.index.names();
        if names.get(&self.name).is_some_and(|holder| *holder == self.id) {
            names.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        id: String,
        name: String,
        at: i64,
    }

    impl Record for Rec {
        const TABLE: Table = Table::Containers;
        fn id(&self) -> &str {
            &self.id
        }
        fn reservation(&self) -> String {
            self.name.clone()
        }
        fn created_at(&self) -> i64 {
            self.at
        }
    }

    fn rec(id: &str, name: &str, at: i64) -> Rec {
        Rec {
            id: id.into(),
            name: name.into(),
            at,
        }
    }

    fn open(dir: &std::path::Path, fix: impl FnMut(&mut Rec) -> bool) -> Index<Rec> {
        let meta = Arc::new(MetaStore::open(&dir.join("meta.redb")).expect("store"));
        Index::load(meta, fix).expect("load")
    }

    #[test]
    fn the_observer_sees_every_change_after_it_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let idx = open(dir.path(), |_| false).observed_by(Box::new(move |idx, old, new| {
            // The change is already in the index when the observer runs.
            let stored = new.map(|r| idx.get(&r.id) == Some(r.clone()));
            let gone = old.filter(|_| new.is_none()).map(|r| idx.get(&r.id).is_none());
            log.lock()
                .expect("log")
                .push((old.map(|r| r.at), new.map(|r| r.at), stored.or(gone)));
        }));
        idx.put(&rec("abc111", "a", 1)).expect("put");
        idx.put(&rec("abc111", "a", 2)).expect("replace");
        idx.remove("abc111").expect("remove");
        idx.remove("abc111").expect("remove again");
        assert_eq!(
            *seen.lock().expect("log"),
            [
                (None, Some(1), Some(true)),
                (Some(1), Some(2), Some(true)),
                (Some(2), None, Some(true))
            ]
        );
    }

    #[test]
    fn records_are_written_through_and_found_by_unique_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let idx = open(dir.path(), |_| false);
            assert_eq!(idx.put(&rec("abc111", "a", 2)).expect("put"), None);
            idx.put(&rec("abc222", "b", 1)).expect("put");
            let old = idx.put(&rec("abc111", "a", 3)).expect("replace");
            assert_eq!(old.map(|r| r.at), Some(2));
            assert_eq!(idx.find("abc1").map(|r| r.id), Some("abc111".into()));
            assert_eq!(idx.find("abc"), None, "ambiguous prefix");
            assert_eq!(idx.find("ab"), None, "too short a prefix");
            let order: Vec<String> = idx.list(|_| true).into_iter().map(|r| r.id).collect();
            assert_eq!(order, ["abc222", "abc111"]);
        }
        // After a restart every record is there, fixed on the way in; names are held again.
        let idx = open(dir.path(), |r| {
            r.at += 10;
            true
        });
        assert_eq!(idx.find("abc111").map(|r| r.at), Some(13));
        assert_eq!(idx.reserve("a", "new").err(), Some("abc111".into()));
        assert_eq!(
            idx.remove("abc111").expect("remove").map(|r| r.id),
            Some("abc111".into())
        );
        assert_eq!(idx.remove("abc111").expect("idempotent"), None);
        assert!(idx.reserve("a", "new").is_ok(), "removal gives the name back");
        assert_eq!(idx.ids(), HashSet::from(["abc222".to_string()]));
        drop(idx);
        let idx = open(dir.path(), |_| false);
        assert_eq!(idx.find("abc111"), None, "the removal was durable");
    }

    #[test]
    fn get_is_exact_and_find_by_matches_a_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = open(dir.path(), |_| false);
        idx.put(&rec("abc111", "a", 1)).expect("put");
        idx.put(&rec("abd222", "b", 2)).expect("put");
        assert_eq!(idx.get("abc111").map(|r| r.name), Some("a".into()));
        assert_eq!(idx.get("abc1"), None, "no prefix match");
        assert_eq!(idx.find_by(|r| r.name == "b").map(|r| r.id), Some("abd222".into()));
        assert_eq!(idx.find_by(|r| r.name == "c"), None);
    }

    #[test]
    fn a_reservation_not_kept_gives_its_name_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = open(dir.path(), |_| false);
        let r = idx.reserve("web", "id1").expect("free");
        assert_eq!(idx.reserve("web", "id2").err(), Some("id1".into()));
        drop(r);
        let r = idx.reserve("web", "id2").expect("given back");
        idx.put(&rec("id2", "web", 1)).expect("put");
        r.keep();
        assert_eq!(idx.reserve("web", "id3").err(), Some("id2".into()));
    }

    #[test]
    fn concurrent_reservations_of_one_name_admit_exactly_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = open(dir.path(), |_| false);
        let winners = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for n in 0..16 {
                let (idx, winners) = (&idx, &winners);
                s.spawn(move || {
                    if let Ok(r) = idx.reserve("same", &format!("id{n}")) {
                        winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        r.keep();
                    }
                });
            }
        });
        assert_eq!(winners.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
