//! The dedup store: `(consumer group, event id)` pairs marked processed for a TTL.

use std::{collections::HashMap, sync::Arc, time::Duration};

use alpha_panda_core::{DedupError, DedupStore, EventId};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::CacheError;

/// Key prefix used when settings give none; tests pass a random one to isolate themselves.
pub const DEFAULT_PREFIX: &str = "alpha_panda:";

/// A dedup store over Redis or memory; services hold this and never learn which.
#[derive(Clone)]
pub struct Dedup {
    prefix: String,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<HashMap<String, Instant>>>),
    Redis(ConnectionManager),
}

impl Dedup {
    /// Connects to `memory://` or `redis://…` (auto-reconnecting connection manager).
    ///
    /// # Errors
    /// [`CacheError::UnsupportedUrl`] for other schemes, [`CacheError::Redis`] when Redis is down.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let backend = if url.starts_with("memory://") {
            Backend::Memory(Arc::default())
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            let client = redis::Client::open(url)?;
            Backend::Redis(ConnectionManager::new(client).await?)
        } else {
            // Only the scheme is echoed: the rest of a URL may hold a password.
            let scheme = url.split("://").next().unwrap_or_default().to_owned();
            return Err(CacheError::UnsupportedUrl(scheme));
        };
        Ok(Self {
            prefix: prefix.to_owned(),
            backend,
        })
    }

    /// The one place a dedup key is formatted, so writer and reader cannot disagree.
    fn key(&self, group: &str, event: EventId) -> String {
        format!("{}dedup:{}:{}", self.prefix, group, event)
    }
}

fn infra(e: redis::RedisError) -> DedupError {
    DedupError(e.to_string())
}

#[async_trait]
impl DedupStore for Dedup {
    async fn is_processed(&self, group: &str, event: EventId) -> Result<bool, DedupError> {
        let key = self.key(group, event);
        match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock();
                match map.get(&key) {
                    Some(expiry) if *expiry > Instant::now() => Ok(true),
                    Some(_) => {
                        map.remove(&key);
                        Ok(false)
                    }
                    None => Ok(false),
                }
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async::<bool>(&mut conn)
                    .await
                    .map_err(infra)
            }
        }
    }

    async fn mark_processed(
        &self,
        group: &str,
        event: EventId,
        ttl: Duration,
    ) -> Result<(), DedupError> {
        let key = self.key(group, event);
        match &self.backend {
            Backend::Memory(map) => {
                let expiry = Instant::now() + ttl;
                map.lock().entry(key).or_insert(expiry);
                Ok(())
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                // Redis rejects EX 0; a sub-second TTL still means "remember briefly".
                let secs = ttl.as_secs().max(1);
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(secs)
                    .query_async::<Option<String>>(&mut conn)
                    .await
                    .map(|_| ())
                    .map_err(infra)
            }
        }
    }
}
