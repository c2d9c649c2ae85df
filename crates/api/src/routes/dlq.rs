//! Dead letters: list them (filtered as the CLI filters), replay one or a range (a `trader`; a
//! replayed event keeps its id, so deduplication still protects downstream), purge (an `admin`).

use std::sync::Arc;

use alpha_panda_core::{DlqPayload, EventId, Timestamp};
use alpha_panda_store::Role;
use alpha_panda_stream::dlq::{self, DlqEntry, DlqError, DlqFilter, ReplayTarget};
use alpha_panda_stream::Log;
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{limit, ApiJson, ApiQuery};
use crate::state::ApiState;

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DlqView {
    /// The dead letter's id (replay by it).
    pub id: EventId,
    /// The `.dlq` topic it is on.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// `paper`, `zerodha` or `shared`.
    pub broker: String,
    /// The service that gave up on it.
    pub service: String,
    /// `poison`, `business`, …
    pub error_class: String,
    /// Why.
    pub error: String,
    /// Attempts before it was dead-lettered.
    pub retry_count: u32,
    /// When.
    pub at: Timestamp,
    /// Where it came from.
    pub original_topic: String,
    /// Its offset there.
    pub original_offset: i64,
    /// The original event's id, when it could be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_id: Option<EventId>,
    /// The first characters of the original.
    pub payload_preview: String,
}

impl From<&DlqEntry> for DlqView {
    fn from(e: &DlqEntry) -> Self {
        let original = match &e.message.original {
            DlqPayload::Envelope { envelope } => {
                String::from_utf8_lossy(&envelope.to_json()).into_owned()
            }
            DlqPayload::Raw { value_base64 } => format!("base64:{value_base64}"),
        };
        let preview: String = original.chars().take(300).collect();
        Self {
            id: e.id,
            topic: e.dlq_topic.clone(),
            partition: e.partition,
            offset: e.offset,
            broker: e.message.broker.as_str().to_string(),
            service: e.message.service.clone(),
            error_class: e.message.error_class.as_str().to_string(),
            error: e.message.error_message.clone(),
            retry_count: e.message.retry_count,
            at: e.message.failed_at,
            original_topic: e.message.original_topic.clone(),
            original_offset: e.message.original_offset,
            original_id: e.original_id(),
            payload_preview: preview,
        }
    }
}

/// `?topic=…&since=…&until=…&limit=…`
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqQuery {
    /// Only this topic (the original or its `.dlq`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Failed at or after (RFC 3339).
    #[serde(default)]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub since: Option<String>,
    /// Failed before (RFC 3339).
    #[serde(default)]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub until: Option<String>,
    /// Most rows (1–1000; default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// What to replay: ids, or a range.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Dead letter ids (or original event ids).
    #[serde(default)]
    pub ids: Vec<EventId>,
    /// Or every dead letter of this topic…
    #[serde(default)]
    pub topic: Option<String>,
    /// …failed at or after (RFC 3339)…
    #[serde(default)]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub since: Option<String>,
    /// …and before (RFC 3339).
    #[serde(default)]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub until: Option<String>,
}

/// How many were replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Replayed {
    /// Records sent back to their topics.
    pub replayed: usize,
}

/// `?older_than=…&topic=…`
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeQuery {
    /// Remove what failed before this instant (RFC 3339); every dead letter when absent.
    #[serde(default)]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub older_than: Option<String>,
    /// Only this topic.
    #[serde(default)]
    pub topic: Option<String>,
}

/// How many were removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Purged {
    /// Records removed.
    pub purged: usize,
}

fn instant(name: &str, value: Option<&String>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| Timestamp::from_datetime(t.with_timezone(&chrono::Utc)))
                .map_err(|e| {
                    ApiError::invalid(format!("{name}: {text:?} is not an RFC 3339 instant ({e})"))
                })
        })
        .transpose()
}

fn log(state: &ApiState) -> Result<&Log, ApiError> {
    state.log.as_ref().ok_or_else(|| {
        ApiError::unavailable("this API process has no log to read dead letters from")
    })
}

fn log_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(format!("the log is unavailable: {e}"))
}

/// Dead letters, oldest first.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<DlqQuery>,
) -> Result<Json<Vec<DlqView>>, ApiError> {
    let n = limit(query.limit, 100)? as usize;
    let filter = DlqFilter {
        topic: query.topic.clone(),
        since: instant("since", query.since.as_ref())?,
        until: instant("until", query.until.as_ref())?,
    };
    let entries = dlq::list(log(&state)?, &filter).await.map_err(log_error)?;
    Ok(Json(entries.iter().take(n).map(DlqView::from).collect()))
}

/// Replays dead letters to their original topics, for the group that gave up on each.
pub async fn replay(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Json<Replayed>, ApiError> {
    caller.require(Role::Trader)?;
    let log = log(&state)?;
    let target = ReplayTarget::FailedGroup;
    let range = request.topic.is_some() || request.since.is_some() || request.until.is_some();
    let replayed = match (request.ids.is_empty(), range) {
        (false, false) => {
            for id in &request.ids {
                dlq::replay_one(log, *id, &target)
                    .await
                    .map_err(|e| match e {
                        DlqError::NotFound(id) => {
                            ApiError::not_found(format!("no dead letter {id}"))
                        }
                        other => log_error(other),
                    })?;
            }
            request.ids.len()
        }
        (true, true) => {
            let filter = DlqFilter {
                topic: request.topic.clone(),
                since: instant("since", request.since.as_ref())?,
                until: instant("until", request.until.as_ref())?,
            };
            dlq::replay_matching(log, &filter, &target)
                .await
                .map_err(log_error)?
                .len()
        }
        (false, true) => {
            return Err(ApiError::invalid(
                "ids: give ids or a range (topic, since, until), not both",
            ))
        }
        (true, false) => {
            return Err(ApiError::invalid(
                "ids: give the dead letters to replay, or a range (topic, since, until)",
            ))
        }
    };
    // Each replayed record was acknowledged as it was sent. No flush: this process's producer is
    // shared with the running pipeline, whose queue is never empty while ticks flow.
    tracing::warn!(replayed, by = %caller.username, "dead letters replayed");
    Ok(Json(Replayed { replayed }))
}

/// Removes dead letters (`admin`).
pub async fn purge(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PurgeQuery>,
) -> Result<Json<Purged>, ApiError> {
    caller.require(Role::Admin)?;
    let cutoff = instant("older_than", query.older_than.as_ref())?.unwrap_or_else(|| {
        Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(1))
    });
    let purged = dlq::purge(log(&state)?, query.topic.as_deref(), cutoff)
        .await
        .map_err(log_error)?;
    tracing::warn!(purged, by = %caller.username, "dead letters purged");
    Ok(Json(Purged { purged }))
}
