//! Service metrics the dashboard reads, written and read through one key scheme by one type.

use alpha_panda_core::{EventBroker, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{backend::Backend, keys::KeySpace, CacheError};

/// A service's counters in one broker namespace, as last reported by the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    /// Events consumed.
    pub events_in: u64,
    /// Events produced.
    pub events_out: u64,
    /// Inputs skipped as already processed.
    pub duplicates: u64,
    /// Handler retries.
    pub retries: u64,
    /// Inputs sent to a dead-letter topic.
    pub dead_lettered: u64,
    /// Consumer lag in records, summed over partitions.
    pub lag: u64,
    /// When the service last handled an event, if ever.
    pub last_event_at: Option<Timestamp>,
    /// When these figures were recorded.
    pub updated_at: Timestamp,
    /// How long the handler took per input, in buckets (absent from services that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_latency: Option<LatencyBuckets>,
    /// Consumer lag per partition read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_lag: Vec<PartitionLagEntry>,
}

/// The lag of one partition a service reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLagEntry {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Records behind.
    pub lag: i64,
}

/// A latency histogram as a service reports it: cumulative counts at each bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyBuckets {
    /// Bucket bounds, microseconds.
    pub bounds_micros: Vec<u64>,
    /// Observations at or below each bound.
    pub counts: Vec<u64>,
    /// Observations.
    pub count: u64,
    /// Their sum, microseconds.
    pub sum_micros: u64,
}

/// One service's metrics in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceMetricsEntry {
    /// The service name (`market_feed`, `risk_manager`, …).
    pub service: String,
    /// Its latest metrics.
    pub metrics: ServiceMetrics,
}

/// Service metrics per broker namespace (`shared` for market data). Cheap to clone; shares the
/// cache's connection.
#[derive(Clone)]
pub struct MetricsCache {
    keys: KeySpace,
    backend: Backend,
}

impl MetricsCache {
    pub(crate) fn new(keys: KeySpace, backend: Backend) -> Self {
        Self { keys, backend }
    }

    /// Replaces `service`'s metrics in `broker`'s namespace.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable.
    pub async fn record(
        &self,
        broker: impl Into<EventBroker>,
        service: &str,
        metrics: &ServiceMetrics,
    ) -> Result<(), CacheError> {
        let key = self.keys.service_metrics(broker.into());
        let json = serde_json::to_string(metrics)
            .map_err(|e| CacheError::corrupt(format!("{key}/{service}"), e))?;
        self.backend.hash_set(&key, service, &json).await
    }

    /// `service`'s latest metrics in `broker`'s namespace.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when the
    /// stored JSON is not metrics.
    pub async fn get(
        &self,
        broker: impl Into<EventBroker>,
        service: &str,
    ) -> Result<Option<ServiceMetrics>, CacheError> {
        let key = self.keys.service_metrics(broker.into());
        self.backend
            .hash_get(&key, service)
            .await?
            .map(|json| decode(&key, service, &json))
            .transpose()
    }

    /// Every service's latest metrics in `broker`'s namespace, ordered by service name.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when a
    /// stored JSON is not metrics.
    pub async fn list(
        &self,
        broker: impl Into<EventBroker>,
    ) -> Result<Vec<ServiceMetricsEntry>, CacheError> {
        let key = self.keys.service_metrics(broker.into());
        self.backend
            .hash_all(&key)
            .await?
            .into_iter()
            .map(|(service, json)| {
                decode(&key, &service, &json)
                    .map(|metrics| ServiceMetricsEntry { service, metrics })
            })
            .collect()
    }
}

fn decode(key: &str, service: &str, json: &str) -> Result<ServiceMetrics, CacheError> {
    serde_json::from_str(json).map_err(|e| CacheError::corrupt(format!("{key}/{service}"), e))
}
