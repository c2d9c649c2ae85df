//! The in-memory [`DedupStore`] (the embedded default; Redis lives in `alpha-panda-cache`).

use std::collections::HashMap;
use std::time::Duration;

use alpha_panda_core::{DedupError, DedupStore, EventId};
use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::time::Instant;

/// Processed `(group, event id)` pairs with their expiry, swept as it grows.
#[derive(Debug, Default)]
pub struct MemoryDedupStore {
    entries: Mutex<HashMap<(String, EventId), Instant>>,
}

impl MemoryDedupStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DedupStore for MemoryDedupStore {
    async fn is_processed(&self, group: &str, event: EventId) -> Result<bool, DedupError> {
        let entries = self.entries.lock();
        Ok(entries
            .get(&(group.to_string(), event))
            .is_some_and(|expires| *expires > Instant::now()))
    }

    async fn mark_processed(
        &self,
        group: &str,
        event: EventId,
        ttl: Duration,
    ) -> Result<(), DedupError> {
        self.mark_all_processed(group, &[event], ttl).await
    }

    async fn mark_all_processed(
        &self,
        group: &str,
        events: &[EventId],
        ttl: Duration,
    ) -> Result<(), DedupError> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        for &event in events {
            if entries.len() >= 100_000 && entries.len().is_power_of_two() {
                entries.retain(|_, expires| *expires > now);
            }
            entries
                .entry((group.to_string(), event))
                .or_insert(now + ttl);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn marks_per_group_and_expires() {
        let store = MemoryDedupStore::new();
        let id = EventId::new_root();
        assert!(!store.is_processed("g", id).await.unwrap());
        store
            .mark_processed("g", id, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.is_processed("g", id).await.unwrap());
        assert!(!store.is_processed("other", id).await.unwrap());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!store.is_processed("g", id).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn marks_a_batch_at_once() {
        let store = MemoryDedupStore::new();
        let ids: Vec<EventId> = (0..3).map(|_| EventId::new_root()).collect();
        store
            .mark_all_processed("g", &ids, Duration::from_secs(60))
            .await
            .unwrap();
        for id in &ids {
            assert!(store.is_processed("g", *id).await.unwrap());
            assert!(!store.is_processed("other", *id).await.unwrap());
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!store.is_processed("g", ids[0]).await.unwrap());
    }
}
