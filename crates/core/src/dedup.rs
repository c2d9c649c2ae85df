//! The deduplication port (ARCHITECTURE §4 rule 3): has this consumer group already processed this
//! event id? Implemented in memory by `alpha-panda-stream` and over Redis by `alpha-panda-cache`.

use std::time::Duration;

use async_trait::async_trait;

use crate::{ErrorClass, EventId};

/// The dedup store could not answer (Redis down, …). Always infrastructure: the runtime retries
/// and commits nothing; it never falls back to "not seen".
#[derive(Debug, Clone, thiserror::Error)]
#[error("dedup store unavailable: {0}")]
pub struct DedupError(pub String);

impl DedupError {
    /// The runtime's treatment.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Infrastructure
    }
}

/// Records which `(consumer group, event id)` pairs were processed.
#[async_trait]
pub trait DedupStore: Send + Sync + 'static {
    /// Whether `event` was already marked processed for `group`.
    ///
    /// # Errors
    /// [`DedupError`] when the store cannot be reached.
    async fn is_processed(&self, group: &str, event: EventId) -> Result<bool, DedupError>;

    /// Marks `event` processed for `group`, for `ttl` (Redis `SET NX` with expiry).
    ///
    /// # Errors
    /// [`DedupError`] when the store cannot be reached.
    async fn mark_processed(
        &self,
        group: &str,
        event: EventId,
        ttl: Duration,
    ) -> Result<(), DedupError>;

    /// Marks every one of `events` processed for `group`, for `ttl`: in one round trip where the
    /// store allows it (the runtime marks a whole commit's inputs at once). Marking is idempotent,
    /// so after an error the whole call may be made again.
    ///
    /// # Errors
    /// [`DedupError`] when the store cannot be reached; some of `events` may be marked.
    async fn mark_all_processed(
        &self,
        group: &str,
        events: &[EventId],
        ttl: Duration,
    ) -> Result<(), DedupError> {
        for &event in events {
            self.mark_processed(group, event, ttl).await?;
        }
        Ok(())
    }
}
