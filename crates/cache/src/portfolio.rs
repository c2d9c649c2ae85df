//! The portfolio read model the API serves: the latest `PnlSnapshot` per (broker, portfolio).

use alpha_panda_core::{Broker, PnlSnapshot, PortfolioId};

use crate::{backend::Backend, keys::KeySpace, CacheError};

/// What [`PortfolioCache::put`] did with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored: it is as new as or newer than what was there.
    Stored,
    /// Ignored: a snapshot with a later `as_of` is already stored (a replay or a late delivery).
    Stale,
}

/// Latest snapshots per broker. Cheap to clone; shares the cache's connection.
#[derive(Clone)]
pub struct PortfolioCache {
    keys: KeySpace,
    backend: Backend,
}

impl PortfolioCache {
    pub(crate) fn new(keys: KeySpace, backend: Backend) -> Self {
        Self { keys, backend }
    }

    /// Stores `snapshot` as the latest of its portfolio in its broker's namespace, unless a
    /// snapshot with a later `as_of` is already there; an equal `as_of` replaces it.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when the
    /// stored `as_of` is unreadable or the snapshot cannot be encoded.
    pub async fn put(&self, snapshot: &PnlSnapshot) -> Result<PutOutcome, CacheError> {
        let key = self.keys.snapshots(snapshot.broker);
        let json = serde_json::to_string(snapshot)
            .map_err(|e| CacheError::corrupt(key.as_str(), format!("cannot encode: {e}")))?;
        let stored = self
            .backend
            .hash_set_if_not_older(
                &key,
                &self.keys.snapshot_times(snapshot.broker),
                snapshot.portfolio_id.as_str(),
                snapshot.as_of.unix_micros(),
                &json,
            )
            .await?;
        Ok(if stored {
            PutOutcome::Stored
        } else {
            PutOutcome::Stale
        })
    }

    /// The latest snapshot of `portfolio_id` in `broker`'s namespace.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when the
    /// stored JSON is not a snapshot.
    pub async fn get(
        &self,
        broker: Broker,
        portfolio_id: &PortfolioId,
    ) -> Result<Option<PnlSnapshot>, CacheError> {
        let key = self.keys.snapshots(broker);
        self.backend
            .hash_get(&key, portfolio_id.as_str())
            .await?
            .map(|json| decode(&key, portfolio_id.as_str(), &json))
            .transpose()
    }

    /// The latest snapshot of every portfolio in `broker`'s namespace, ordered by portfolio id.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when a
    /// stored JSON is not a snapshot.
    pub async fn list(&self, broker: Broker) -> Result<Vec<PnlSnapshot>, CacheError> {
        let key = self.keys.snapshots(broker);
        self.backend
            .hash_all(&key)
            .await?
            .into_iter()
            .map(|(field, json)| decode(&key, &field, &json))
            .collect()
    }
}

fn decode(key: &str, field: &str, json: &str) -> Result<PnlSnapshot, CacheError> {
    serde_json::from_str(json).map_err(|e| CacheError::corrupt(format!("{key}/{field}"), e))
}
