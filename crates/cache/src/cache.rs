//! [`Cache`]: the one handle built from settings, from which every typed cache is taken.

use std::sync::Arc;

use alpha_panda_core::{Clock, SystemClock};

use crate::{
    backend::Backend, keys::KeySpace, CacheError, Dedup, MetricsCache, PortfolioCache,
    RiskStateCache,
};

/// The cache connection (Redis or memory) and key prefix. Built once by the composition root and
/// cloned to whoever needs it; every typed cache taken from it shares the same connection (for
/// memory, the same store).
#[derive(Clone)]
pub struct Cache {
    keys: KeySpace,
    backend: Backend,
}

impl Cache {
    /// Connects to `memory://` (the embedded default) or `redis://…` / `rediss://…` (one
    /// auto-reconnecting connection manager). Keys start with `prefix` (e.g. [`crate::DEFAULT_PREFIX`]).
    /// Redis being down is an error, never a silent switch to memory.
    ///
    /// # Errors
    /// [`CacheError::UnsupportedUrl`] for other schemes (fix the setting), [`CacheError::Redis`]
    /// when Redis cannot be reached (class infrastructure).
    pub async fn connect(url: &str, prefix: &str) -> Result<Cache, CacheError> {
        Self::connect_with_clock(url, prefix, Arc::new(SystemClock)).await
    }

    /// As [`Cache::connect`], but the memory backend judges expiry by `clock` (a `ManualClock` in
    /// tests and replays). Redis always expires keys by its own clock.
    ///
    /// # Errors
    /// As [`Cache::connect`].
    pub async fn connect_with_clock(
        url: &str,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Cache, CacheError> {
        Ok(Cache {
            keys: KeySpace::new(prefix),
            backend: Backend::connect(url, clock).await?,
        })
    }

    /// The dedup store, sharing this connection.
    pub fn dedup(&self) -> Dedup {
        Dedup::new(self.keys.clone(), self.backend.clone())
    }

    /// Positions, daily trade counts and daily PnL, sharing this connection.
    pub fn risk_state(&self) -> RiskStateCache {
        RiskStateCache::new(self.keys.clone(), self.backend.clone())
    }

    /// The latest PnL snapshots, sharing this connection.
    pub fn portfolios(&self) -> PortfolioCache {
        PortfolioCache::new(self.keys.clone(), self.backend.clone())
    }

    /// Service metrics, sharing this connection.
    pub fn metrics(&self) -> MetricsCache {
        MetricsCache::new(self.keys.clone(), self.backend.clone())
    }

    /// Readiness: Redis answers `PING` (memory is always ready).
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis does not answer.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.backend.ping().await
    }
}
