//! The in-memory backend: the few Redis structures the cache uses (dedup markers, counters, hashes,
//! lists), with expiry judged against an injected clock so tests and replays control "now".
//!
//! Dedup markers live in their own table keyed by `(consumer group, event id)`, not under formatted
//! string keys: the runtime asks for one on every event of every consumer, and no other operation
//! ever reads a dedup key. A memory store serves one key prefix (the [`crate::Cache`] or
//! [`crate::Dedup`] that created it), so the prefix need not be part of that key.

use std::{
    collections::{hash_map, BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use alpha_panda_core::{Clock, EventId, Timestamp};
use parking_lot::{Mutex, MutexGuard};
use rustc_hash::FxHashMap;

use crate::CacheError;

/// One value, shaped like its Redis counterpart.
#[derive(Debug, Clone)]
enum Value {
    Counter(i64),
    Hash(BTreeMap<String, String>),
    List(Vec<String>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Counter(_) => "counter",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Option<Timestamp>,
}

/// The dedup markers of one consumer group: event → expiry (`None`: never expires).
type GroupMarkers = FxHashMap<EventId, Option<Timestamp>>;

/// Process-local key/value storage behaving like the Redis commands the backend issues.
pub(crate) struct MemoryStore {
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, Entry>>,
    markers: Mutex<FxHashMap<Box<str>, GroupMarkers>>,
}

fn wrong_type(key: &str, found: &Value, wanted: &str) -> CacheError {
    CacheError::corrupt(
        key,
        format!("holds a {}, expected a {wanted}", found.kind()),
    )
}

/// `at` plus `ttl`, saturating at the far future.
fn after(at: Timestamp, ttl: Duration) -> Option<Timestamp> {
    let micros = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(at.unix_micros().saturating_add(micros))
}

impl MemoryStore {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            entries: Mutex::default(),
            markers: Mutex::default(),
        }
    }

    /// Locks the store after dropping whichever of `keys` has expired, so every operation sees
    /// only live entries and runs atomically, like one Redis command or script.
    fn lock_live(&self, keys: &[&str]) -> MutexGuard<'_, HashMap<String, Entry>> {
        let now = self.clock.now();
        let mut entries = self.entries.lock();
        for key in keys {
            if entries
                .get(*key)
                .and_then(|e| e.expires_at)
                .is_some_and(|expiry| expiry <= now)
            {
                entries.remove(*key);
            }
        }
        entries
    }

    /// Sets `key`'s expiry, dropping it right away when the instant has already passed (as Redis
    /// does for a past `PEXPIREAT`).
    fn expire_at(&self, entries: &mut HashMap<String, Entry>, key: &str, at: Timestamp) {
        if at <= self.clock.now() {
            entries.remove(key);
        } else if let Some(entry) = entries.get_mut(key) {
            entry.expires_at = Some(at);
        }
    }

    /// Whether `event` is marked for `group` and the mark has not expired (an expired mark is
    /// dropped, as every other operation drops the expired key it touches).
    pub(crate) fn is_marked(&self, group: &str, event: EventId) -> bool {
        let now = self.clock.now();
        let mut markers = self.markers.lock();
        let Some(events) = markers.get_mut(group) else {
            return false;
        };
        match events.get(&event) {
            None => false,
            Some(expiry) if expiry.is_some_and(|at| at <= now) => {
                events.remove(&event);
                false
            }
            Some(_) => true,
        }
    }

    /// Marks every one of `events` for `group` until `ttl` from now, unless a live mark exists
    /// (`SET NX`: the earlier expiry stays); under one lock and one reading of the clock.
    pub(crate) fn mark_all_if_absent(&self, group: &str, events: &[EventId], ttl: Duration) {
        let now = self.clock.now();
        let expires_at = after(now, ttl);
        let mut markers = self.markers.lock();
        if !markers.contains_key(group) {
            markers.insert(group.into(), GroupMarkers::default());
        }
        let Some(marked) = markers.get_mut(group) else {
            return;
        };
        marked.reserve(events.len());
        for &event in events {
            match marked.entry(event) {
                hash_map::Entry::Occupied(mut mark) => {
                    if mark.get().is_some_and(|at| at <= now) {
                        mark.insert(expires_at);
                    }
                }
                hash_map::Entry::Vacant(absent) => {
                    absent.insert(expires_at);
                }
            }
        }
    }

    pub(crate) fn expires_at(&self, key: &str) -> Option<Timestamp> {
        self.lock_live(&[key]).get(key).and_then(|e| e.expires_at)
    }

    pub(crate) fn counter_increment_until(
        &self,
        key: &str,
        expires_at: Timestamp,
    ) -> Result<i64, CacheError> {
        let mut entries = self.lock_live(&[key]);
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            value: Value::Counter(0),
            expires_at: None,
        });
        let count = match &mut entry.value {
            Value::Counter(n) => {
                *n = n
                    .checked_add(1)
                    .ok_or_else(|| CacheError::corrupt(key, "counter overflow"))?;
                *n
            }
            other => return Err(wrong_type(key, other, "counter")),
        };
        self.expire_at(&mut entries, key, expires_at);
        Ok(count)
    }

    pub(crate) fn counter_get(&self, key: &str) -> Result<Option<i64>, CacheError> {
        match self.lock_live(&[key]).get(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Counter(n)) => Ok(Some(*n)),
            Some(other) => Err(wrong_type(key, other, "counter")),
        }
    }

    pub(crate) fn list_push_until(
        &self,
        key: &str,
        item: &str,
        expires_at: Timestamp,
    ) -> Result<Vec<String>, CacheError> {
        let mut entries = self.lock_live(&[key]);
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            value: Value::List(Vec::new()),
            expires_at: None,
        });
        let items = match &mut entry.value {
            Value::List(items) => {
                items.push(item.to_owned());
                items.clone()
            }
            other => return Err(wrong_type(key, other, "list")),
        };
        self.expire_at(&mut entries, key, expires_at);
        Ok(items)
    }

    pub(crate) fn list_all(&self, key: &str) -> Result<Vec<String>, CacheError> {
        match self.lock_live(&[key]).get(key).map(|e| &e.value) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => Ok(items.clone()),
            Some(other) => Err(wrong_type(key, other, "list")),
        }
    }

    pub(crate) fn hash_set(&self, key: &str, field: &str, value: &str) -> Result<(), CacheError> {
        let mut entries = self.lock_live(&[key]);
        hash_mut(&mut entries, key)?.insert(field.to_owned(), value.to_owned());
        Ok(())
    }

    pub(crate) fn hash_get(&self, key: &str, field: &str) -> Result<Option<String>, CacheError> {
        let entries = self.lock_live(&[key]);
        Ok(hash_ref(&entries, key)?.and_then(|h| h.get(field).cloned()))
    }

    pub(crate) fn hash_delete(&self, key: &str, field: &str) -> Result<(), CacheError> {
        let mut entries = self.lock_live(&[key]);
        let emptied = match entries.get_mut(key).map(|e| &mut e.value) {
            None => false,
            Some(Value::Hash(hash)) => {
                hash.remove(field);
                hash.is_empty()
            }
            Some(other) => return Err(wrong_type(key, other, "hash")),
        };
        // Redis deletes a hash whose last field is removed.
        if emptied {
            entries.remove(key);
        }
        Ok(())
    }

    pub(crate) fn hash_all(&self, key: &str) -> Result<Vec<(String, String)>, CacheError> {
        let entries = self.lock_live(&[key]);
        Ok(hash_ref(&entries, key)?
            .map(|h| h.iter().map(|(f, v)| (f.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    pub(crate) fn hash_increment(
        &self,
        key: &str,
        field: &str,
        delta: i64,
    ) -> Result<i64, CacheError> {
        let mut entries = self.lock_live(&[key]);
        let hash = hash_mut(&mut entries, key)?;
        let current = read_i64(hash, key, field)?.unwrap_or(0);
        let next = current
            .checked_add(delta)
            .ok_or_else(|| CacheError::corrupt(format!("{key}/{field}"), "integer overflow"))?;
        hash.insert(field.to_owned(), next.to_string());
        Ok(next)
    }

    /// Sets `field` in `key` and its `version` in `versions_key`, unless the stored version is
    /// newer; both under one lock, like the Redis script.
    pub(crate) fn hash_set_if_not_older(
        &self,
        key: &str,
        versions_key: &str,
        field: &str,
        version: i64,
        value: &str,
    ) -> Result<bool, CacheError> {
        let mut entries = self.lock_live(&[key, versions_key]);
        let versions = hash_mut(&mut entries, versions_key)?;
        if read_i64(versions, versions_key, field)?.is_some_and(|stored| stored > version) {
            return Ok(false);
        }
        versions.insert(field.to_owned(), version.to_string());
        hash_mut(&mut entries, key)?.insert(field.to_owned(), value.to_owned());
        Ok(true)
    }
}

/// The hash at `key`, created empty when absent.
fn hash_mut<'a>(
    entries: &'a mut HashMap<String, Entry>,
    key: &str,
) -> Result<&'a mut BTreeMap<String, String>, CacheError> {
    let entry = entries.entry(key.to_owned()).or_insert(Entry {
        value: Value::Hash(BTreeMap::new()),
        expires_at: None,
    });
    match &mut entry.value {
        Value::Hash(hash) => Ok(hash),
        other => Err(wrong_type(key, other, "hash")),
    }
}

/// The hash at `key`, if any.
fn hash_ref<'a>(
    entries: &'a HashMap<String, Entry>,
    key: &str,
) -> Result<Option<&'a BTreeMap<String, String>>, CacheError> {
    match entries.get(key).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Hash(hash)) => Ok(Some(hash)),
        Some(other) => Err(wrong_type(key, other, "hash")),
    }
}

/// An integer hash field, as `HINCRBY` reads it.
fn read_i64(
    hash: &BTreeMap<String, String>,
    key: &str,
    field: &str,
) -> Result<Option<i64>, CacheError> {
    hash.get(field)
        .map(|raw| {
            raw.parse::<i64>()
                .map_err(|e| CacheError::corrupt(format!("{key}/{field}"), e))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use alpha_panda_core::ManualClock;

    use super::*;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(micros).unwrap()
    }

    #[test]
    fn counter_lives_until_its_expiry_instant_exclusive() {
        let clock = Arc::new(ManualClock::new(at(1_000)));
        let store = MemoryStore::new(clock.clone());
        assert_eq!(store.counter_increment_until("k", at(2_000)).unwrap(), 1);
        assert_eq!(store.counter_increment_until("k", at(2_000)).unwrap(), 2);
        clock.set(at(1_999));
        assert_eq!(store.counter_get("k").unwrap(), Some(2));
        assert_eq!(store.expires_at("k"), Some(at(2_000)));
        clock.set(at(2_000));
        assert_eq!(store.counter_get("k").unwrap(), None);
        assert_eq!(store.expires_at("k"), None);
    }

    #[test]
    fn a_past_expiry_drops_the_key_like_redis() {
        let clock = Arc::new(ManualClock::new(at(5_000)));
        let store = MemoryStore::new(clock);
        assert_eq!(store.counter_increment_until("k", at(4_000)).unwrap(), 1);
        assert_eq!(store.counter_get("k").unwrap(), None);
    }

    #[test]
    fn wrong_types_are_reported_not_coerced() {
        let store = MemoryStore::new(Arc::new(ManualClock::new(at(0))));
        store.hash_set("h", "f", "v").unwrap();
        let err = store.counter_get("h").unwrap_err();
        assert!(matches!(err, CacheError::CorruptValue { ref key, .. } if key == "h"));
        store.hash_set("h", "n", "x").unwrap();
        assert!(store.hash_increment("h", "n", 1).is_err());
    }

    #[test]
    fn marker_expires_after_ttl() {
        let clock = Arc::new(ManualClock::new(at(0)));
        let store = MemoryStore::new(clock.clone());
        let event = EventId::new_root();
        store.mark_all_if_absent("g", &[event], Duration::from_secs(1));
        assert!(store.is_marked("g", event));
        clock.advance(Duration::from_secs(1));
        assert!(!store.is_marked("g", event));
    }

    #[test]
    fn a_live_marker_keeps_its_expiry_and_an_expired_one_is_renewed() {
        let clock = Arc::new(ManualClock::new(at(0)));
        let store = MemoryStore::new(clock.clone());
        let (event, other) = (EventId::new_root(), EventId::new_root());
        store.mark_all_if_absent("g", &[event], Duration::from_secs(2));
        clock.advance(Duration::from_secs(1));
        // NX: marking again does not push the expiry out.
        store.mark_all_if_absent("g", &[event], Duration::from_secs(10));
        clock.advance(Duration::from_secs(1));
        assert!(!store.is_marked("g", event));
        // Once expired, a new mark takes its own TTL.
        store.mark_all_if_absent("g", &[event], Duration::from_secs(10));
        clock.advance(Duration::from_secs(9));
        assert!(store.is_marked("g", event));
        // Marks are per group and per event; a huge TTL never expires.
        assert!(!store.is_marked("h", event));
        assert!(!store.is_marked("g", other));
        store.mark_all_if_absent("h", &[other], Duration::MAX);
        clock.advance(Duration::from_secs(1_000_000_000));
        assert!(store.is_marked("h", other));
        assert!(!store.is_marked("g", event));
    }
}
