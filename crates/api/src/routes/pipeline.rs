//! The event pipeline: every service's events in and out, retries, dead letters, lag and last
//! event, per namespace (and `shared` for market data), as the running services record them.

use std::sync::Arc;

use alpha_panda_core::{EventBroker, Timestamp};
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ApiState;

/// One service of one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PipelineService {
    /// `paper`, `zerodha` or `shared`.
    pub broker: String,
    /// The service (`strategy_runner`, `risk_manager`, …).
    pub service: String,
    /// Events consumed.
    pub events_in: u64,
    /// Events produced.
    pub events_out: u64,
    /// Inputs skipped as already processed.
    pub duplicates: u64,
    /// Handler retries.
    pub retries: u64,
    /// Inputs sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Consumer lag in records.
    pub lag: u64,
    /// When it last handled an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<Timestamp>,
    /// When these figures were recorded.
    pub updated_at: Timestamp,
    /// `running` when the figures are fresh (30 s), `stale` otherwise.
    pub status: String,
    /// Lag per partition read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionLag>,
}

/// The lag of one partition a service reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Records behind.
    pub lag: i64,
}

/// How often the event stream gets the services' figures (`service_status` events).
pub const STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Publishes the services' figures on the event stream every [`STATUS_EVERY`] until `stop`, so a
/// dashboard sees the pipeline move without polling.
pub async fn publish_status(state: Arc<ApiState>, stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(STATUS_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        match services(&state).await {
            Ok(services) => state.events.publish_status(
                "service_status",
                "shared",
                serde_json::json!({ "services": services }),
            ),
            Err(e) => tracing::debug!(error = %e, "no service figures for the event stream"),
        }
    }
}

/// Every service's figures.
pub async fn pipeline(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
) -> Result<Json<Vec<PipelineService>>, ApiError> {
    Ok(Json(services(&state).await?))
}

async fn services(state: &ApiState) -> Result<Vec<PipelineService>, ApiError> {
    let Some(cache) = &state.cache else {
        return Ok(Vec::new());
    };
    let metrics = cache.metrics();
    let mut namespaces = vec![EventBroker::Shared];
    namespaces.extend(state.brokers.iter().map(|b| EventBroker::from(*b)));
    let now = chrono::Utc::now();
    let mut services = Vec::new();
    for namespace in namespaces {
        for entry in metrics.list(namespace).await? {
            let m = entry.metrics;
            let fresh = (now - m.updated_at.as_datetime()).num_seconds() <= 30;
            services.push(PipelineService {
                broker: namespace.as_str().to_string(),
                service: entry.service,
                events_in: m.events_in,
                events_out: m.events_out,
                duplicates: m.duplicates,
                retries: m.retries,
                dead_lettered: m.dead_lettered,
                lag: m.lag,
                last_event_at: m.last_event_at,
                updated_at: m.updated_at,
                status: if fresh { "running" } else { "stale" }.into(),
                partitions: m
                    .partition_lag
                    .iter()
                    .map(|p| PartitionLag {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        lag: p.lag,
                    })
                    .collect(),
            });
        }
    }
    Ok(services)
}
