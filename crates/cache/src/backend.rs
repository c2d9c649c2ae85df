//! The storage behind every cache type: Redis through one auto-reconnecting `ConnectionManager`, or
//! the in-memory store. Each operation maps to one Redis command, one `MULTI` block or one script,
//! and the memory store mirrors its semantics (including expiry), so the typed caches above are
//! written once.

use std::{
    collections::BTreeMap,
    sync::{Arc, LazyLock},
    time::Duration,
};

use alpha_panda_core::{Clock, EventId, Timestamp};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{keys::KeySpace, memory::MemoryStore, CacheError};

/// How long one connection attempt may take before it counts as failed.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for its reply; a half-open socket must not hang a handler.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection attempts before an operation (or `connect`) reports Redis unavailable; the
/// processor runtime then retries the input with its own backoff.
const RECONNECT_RETRIES: usize = 3;
/// Dedup marks sent to Redis per pipelined round trip.
const MARK_PIPELINE: usize = 1_000;
/// Growth factor of the delay between reconnection attempts (the first waits about a second).
/// The library's default factor (100) stretches an outage report to minutes.
const RECONNECT_FACTOR: u64 = 2;
/// Upper bound of one delay between reconnection attempts, in milliseconds.
const RECONNECT_MAX_DELAY_MS: u64 = 2_000;

/// Stores `ARGV[3]` under field `ARGV[1]` of `KEYS[1]` and the version `ARGV[2]` under the same
/// field of `KEYS[2]`, unless `KEYS[2]` already holds a larger version. Returns 1 if stored.
const SET_IF_NOT_OLDER: &str = r"
local stored = redis.call('HGET', KEYS[2], ARGV[1])
if stored and tonumber(stored) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
";

/// [`SET_IF_NOT_OLDER`], hashed once; invoked by `EVALSHA`, falling back to `EVAL`.
static SET_IF_NOT_OLDER_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(SET_IF_NOT_OLDER));

/// A connected backend; cloning shares the connection (or the memory store).
#[derive(Clone)]
pub(crate) enum Backend {
    Memory(Arc<MemoryStore>),
    Redis(ConnectionManager),
}

/// Unix milliseconds of `at`, rounded up so a key never expires before `at`.
fn unix_millis_ceil(at: Timestamp) -> i64 {
    at.unix_micros().saturating_add(999).div_euclid(1000)
}

fn parse_i64(key: &str, raw: &str) -> Result<i64, CacheError> {
    raw.parse::<i64>()
        .map_err(|e| CacheError::corrupt(key, format!("{raw:?} is not an integer: {e}")))
}

impl Backend {
    /// Opens `memory://` (expiry judged by `clock`) or `redis://…` / `rediss://…`.
    ///
    /// # Errors
    /// [`CacheError::UnsupportedUrl`] for other schemes, [`CacheError::Redis`] when Redis cannot be
    /// reached.
    pub(crate) async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self, CacheError> {
        if url.starts_with("memory://") {
            Ok(Backend::Memory(Arc::new(MemoryStore::new(clock))))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            let client = redis::Client::open(url)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CONNECTION_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT)
                .set_number_of_retries(RECONNECT_RETRIES)
                .set_factor(RECONNECT_FACTOR)
                .set_max_delay(RECONNECT_MAX_DELAY_MS);
            let manager = ConnectionManager::new_with_config(client, config).await?;
            Ok(Backend::Redis(manager))
        } else {
            // Only the scheme is echoed: the rest of a URL may hold a password.
            let scheme = url.split("://").next().unwrap_or_default().to_owned();
            Err(CacheError::UnsupportedUrl(scheme))
        }
    }

    /// `PING`.
    pub(crate) async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("PING").query_async::<String>(&mut conn).await?;
                Ok(())
            }
        }
    }

    /// `EXISTS {dedup key}` of `(group, event)`. The memory store keeps dedup markers by group and
    /// event without formatting a key.
    pub(crate) async fn is_marked(
        &self,
        keys: &KeySpace,
        group: &str,
        event: EventId,
    ) -> Result<bool, CacheError> {
        match self {
            Backend::Memory(store) => Ok(store.is_marked(group, event)),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                Ok(redis::cmd("EXISTS")
                    .arg(keys.dedup(group, event))
                    .query_async::<bool>(&mut conn)
                    .await?)
            }
        }
    }

    /// `SET {dedup key} 1 NX EX ttl` of `(group, event)` for every one of `events` (a sub-second
    /// TTL is kept for one second: Redis rejects `EX 0`): in memory under one lock, on Redis
    /// pipelined, [`MARK_PIPELINE`] commands per round trip.
    pub(crate) async fn mark_all_if_absent(
        &self,
        keys: &KeySpace,
        group: &str,
        events: &[EventId],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        match self {
            Backend::Memory(store) => {
                store.mark_all_if_absent(group, events, ttl);
                Ok(())
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                for chunk in events.chunks(MARK_PIPELINE) {
                    let mut pipe = redis::pipe();
                    for &event in chunk {
                        pipe.cmd("SET")
                            .arg(keys.dedup(group, event))
                            .arg(1)
                            .arg("NX")
                            .arg("EX")
                            .arg(ttl.as_secs().max(1))
                            .ignore();
                    }
                    pipe.query_async::<()>(&mut conn).await?;
                }
                Ok(())
            }
        }
    }

    /// `PEXPIRETIME key`: when `key` expires, `None` if it is absent or has no expiry.
    pub(crate) async fn expires_at(&self, key: &str) -> Result<Option<Timestamp>, CacheError> {
        match self {
            Backend::Memory(store) => Ok(store.expires_at(key)),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let millis = redis::cmd("PEXPIRETIME")
                    .arg(key)
                    .query_async::<i64>(&mut conn)
                    .await?;
                if millis < 0 {
                    return Ok(None);
                }
                let at = millis
                    .checked_mul(1000)
                    .and_then(Timestamp::from_unix_micros)
                    .ok_or_else(|| CacheError::corrupt(key, "expiry out of range"))?;
                Ok(Some(at))
            }
        }
    }

    /// `MULTI; INCR key; PEXPIREAT key expires_at; EXEC`: the new count. A past `expires_at`
    /// removes the key at once (the count is still returned).
    pub(crate) async fn counter_increment_until(
        &self,
        key: &str,
        expires_at: Timestamp,
    ) -> Result<i64, CacheError> {
        match self {
            Backend::Memory(store) => store.counter_increment_until(key, expires_at),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let (count,) = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(key)
                    .cmd("PEXPIREAT")
                    .arg(key)
                    .arg(unix_millis_ceil(expires_at))
                    .ignore()
                    .query_async::<(i64,)>(&mut conn)
                    .await?;
                Ok(count)
            }
        }
    }

    /// `GET key` read as an integer counter.
    pub(crate) async fn counter_get(&self, key: &str) -> Result<Option<i64>, CacheError> {
        match self {
            Backend::Memory(store) => store.counter_get(key),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let raw = redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut conn)
                    .await?;
                raw.map(|raw| parse_i64(key, &raw)).transpose()
            }
        }
    }

    /// `MULTI; RPUSH key item; LRANGE key 0 -1; PEXPIREAT key expires_at; EXEC`: every item,
    /// including the new one, as of that atomic step (read before a past `expires_at` drops them).
    pub(crate) async fn list_push_until(
        &self,
        key: &str,
        item: &str,
        expires_at: Timestamp,
    ) -> Result<Vec<String>, CacheError> {
        match self {
            Backend::Memory(store) => store.list_push_until(key, item, expires_at),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let (items,) = redis::pipe()
                    .atomic()
                    .cmd("RPUSH")
                    .arg(key)
                    .arg(item)
                    .ignore()
                    .cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .cmd("PEXPIREAT")
                    .arg(key)
                    .arg(unix_millis_ceil(expires_at))
                    .ignore()
                    .query_async::<(Vec<String>,)>(&mut conn)
                    .await?;
                Ok(items)
            }
        }
    }

    /// `LRANGE key 0 -1`.
    pub(crate) async fn list_all(&self, key: &str) -> Result<Vec<String>, CacheError> {
        match self {
            Backend::Memory(store) => store.list_all(key),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                Ok(redis::cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<String>>(&mut conn)
                    .await?)
            }
        }
    }

    /// `HSET key field value`.
    pub(crate) async fn hash_set(
        &self,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<(), CacheError> {
        match self {
            Backend::Memory(store) => store.hash_set(key, field, value),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("HSET")
                    .arg(key)
                    .arg(field)
                    .arg(value)
                    .query_async::<i64>(&mut conn)
                    .await?;
                Ok(())
            }
        }
    }

    /// `HGET key field`.
    pub(crate) async fn hash_get(
        &self,
        key: &str,
        field: &str,
    ) -> Result<Option<String>, CacheError> {
        match self {
            Backend::Memory(store) => store.hash_get(key, field),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                Ok(redis::cmd("HGET")
                    .arg(key)
                    .arg(field)
                    .query_async::<Option<String>>(&mut conn)
                    .await?)
            }
        }
    }

    /// `HDEL key field`.
    pub(crate) async fn hash_delete(&self, key: &str, field: &str) -> Result<(), CacheError> {
        match self {
            Backend::Memory(store) => store.hash_delete(key, field),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("HDEL")
                    .arg(key)
                    .arg(field)
                    .query_async::<i64>(&mut conn)
                    .await?;
                Ok(())
            }
        }
    }

    /// `HGETALL key`, ordered by field.
    pub(crate) async fn hash_all(&self, key: &str) -> Result<Vec<(String, String)>, CacheError> {
        match self {
            Backend::Memory(store) => store.hash_all(key),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let all = redis::cmd("HGETALL")
                    .arg(key)
                    .query_async::<BTreeMap<String, String>>(&mut conn)
                    .await?;
                Ok(all.into_iter().collect())
            }
        }
    }

    /// `HINCRBY key field delta`: the new value.
    pub(crate) async fn hash_increment(
        &self,
        key: &str,
        field: &str,
        delta: i64,
    ) -> Result<i64, CacheError> {
        match self {
            Backend::Memory(store) => store.hash_increment(key, field, delta),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                Ok(redis::cmd("HINCRBY")
                    .arg(key)
                    .arg(field)
                    .arg(delta)
                    .query_async::<i64>(&mut conn)
                    .await?)
            }
        }
    }

    /// Stores `value` under `field` of `key` unless `versions_key` records a newer `version` for
    /// that field (one script, so concurrent writers cannot interleave). Whether it was stored.
    pub(crate) async fn hash_set_if_not_older(
        &self,
        key: &str,
        versions_key: &str,
        field: &str,
        version: i64,
        value: &str,
    ) -> Result<bool, CacheError> {
        match self {
            Backend::Memory(store) => {
                store.hash_set_if_not_older(key, versions_key, field, version, value)
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let stored = SET_IF_NOT_OLDER_SCRIPT
                    .key(key)
                    .key(versions_key)
                    .arg(field)
                    .arg(version)
                    .arg(value)
                    .invoke_async::<i64>(&mut conn)
                    .await?;
                Ok(stored == 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_millis_round_up_never_down() {
        let at = |micros| Timestamp::from_unix_micros(micros).unwrap();
        assert_eq!(unix_millis_ceil(at(1_000_000)), 1_000);
        assert_eq!(unix_millis_ceil(at(1_000_001)), 1_001);
        assert_eq!(unix_millis_ceil(at(999)), 1);
    }
}
