//! The dedup store: `(consumer group, event id)` pairs marked processed for a TTL.

use std::{sync::Arc, time::Duration};

use alpha_panda_core::{DedupError, DedupStore, EventId, SystemClock};
use async_trait::async_trait;

use crate::{backend::Backend, keys::KeySpace, CacheError};

/// Key prefix used when settings give none; tests pass a random one to isolate themselves.
pub const DEFAULT_PREFIX: &str = "alpha_panda:";

/// A dedup store over Redis or memory; services hold this and never learn which.
#[derive(Clone)]
pub struct Dedup {
    keys: KeySpace,
    backend: Backend,
}

impl Dedup {
    /// Connects to `memory://` or `redis://…` (auto-reconnecting connection manager) with its own
    /// connection. Prefer [`crate::Cache::dedup`], which shares the cache's connection.
    ///
    /// # Errors
    /// [`CacheError::UnsupportedUrl`] for other schemes, [`CacheError::Redis`] when Redis is down.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let backend = Backend::connect(url, Arc::new(SystemClock)).await?;
        Ok(Self::new(KeySpace::new(prefix), backend))
    }

    pub(crate) fn new(keys: KeySpace, backend: Backend) -> Self {
        Self { keys, backend }
    }
}

/// The port speaks [`DedupError`]; the runtime classes it as infrastructure, as [`CacheError`] is.
fn unavailable(e: CacheError) -> DedupError {
    DedupError(e.to_string())
}

#[async_trait]
impl DedupStore for Dedup {
    async fn is_processed(&self, group: &str, event: EventId) -> Result<bool, DedupError> {
        self.backend
            .is_marked(&self.keys, group, event)
            .await
            .map_err(unavailable)
    }

    async fn mark_processed(
        &self,
        group: &str,
        event: EventId,
        ttl: Duration,
    ) -> Result<(), DedupError> {
        self.backend
            .mark_all_if_absent(&self.keys, group, &[event], ttl)
            .await
            .map_err(unavailable)
    }

    async fn mark_all_processed(
        &self,
        group: &str,
        events: &[EventId],
        ttl: Duration,
    ) -> Result<(), DedupError> {
        self.backend
            .mark_all_if_absent(&self.keys, group, events, ttl)
            .await
            .map_err(unavailable)
    }
}
