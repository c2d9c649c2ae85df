//! `GET /api/v1/events`: server-sent events of fills, orders, signals, rejections, snapshots and
//! alerts, filtered by `broker` and `type`, resumable with `Last-Event-ID` (the events since are
//! sent first, as long as the hub still keeps them).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::events::{matches, LiveEvent};
use crate::extract::ApiQuery;
use crate::state::ApiState;

/// `?broker=paper,zerodha&type=order_filled,alert`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct EventQuery {
    /// Namespaces, comma-separated (all when absent); `shared` events always pass.
    #[serde(default)]
    pub broker: Option<String>,
    /// Event types, comma-separated (all when absent).
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    /// The access token, for `EventSource`, which cannot send headers.
    #[serde(default)]
    pub access_token: Option<String>,
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn sse_event(event: &LiveEvent) -> Event {
    Event::default()
        .id(event.seq.to_string())
        .event(event.event_type.clone())
        .json_data(event)
        .unwrap_or_else(|_| Event::default().comment("unencodable event"))
}

/// The live event stream.
pub async fn events(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let brokers = list(query.broker);
    for b in &brokers {
        if b != "shared" {
            state.broker(b)?;
        }
    }
    let types = list(query.event_type);
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event's id"))?,
        // A new stream starts with what happens from now on.
        None => state.events.latest_seq(),
    };
    let (missed, receiver) = state.events.subscribe_after(after);
    let (b1, t1) = (brokers.clone(), types.clone());
    let replay = stream::iter(missed)
        .filter(move |e| futures::future::ready(matches(e, &b1, &t1)))
        .map(|e| Ok(sse_event(&e)));
    let live = stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(event) => return Some((Some(event), receiver)),
                // A slow client skips what it could not keep up with; its next reconnect
                // replays from the hub.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .filter_map(move |event| {
        let pass = event.filter(|e| matches(e, &brokers, &types));
        futures::future::ready(pass.map(|e| Ok(sse_event(&e))))
    });
    Ok(Sse::new(replay.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `?level=info`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// The lowest level shown: error, warn, info (default), debug or trace.
    #[serde(default)]
    pub level: Option<String>,
    /// The access token, for `EventSource`.
    #[serde(default)]
    pub access_token: Option<String>,
}

/// The process's log lines: those kept, then each new one.
pub async fn logs(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let wanted: tracing::Level = match query.level.as_deref() {
        None => tracing::Level::INFO,
        Some(level) => level.parse().map_err(|_| {
            ApiError::invalid(format!(
                "level: {level:?}; use error, warn, info, debug or trace"
            ))
        })?,
    };
    let (kept, receiver) = state.logs.subscribe();
    let line_event = |line: &crate::logs::LogLine| {
        Event::default()
            .id(line.seq.to_string())
            .event("log")
            .json_data(line)
            .unwrap_or_else(|_| Event::default().comment("unencodable line"))
    };
    let replay = stream::iter(kept)
        .filter(move |l| futures::future::ready(crate::logs::passes(&l.level, wanted)))
        .map(move |l| Ok(line_event(&l)));
    let live = stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(line) => return Some((line, receiver)),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |l| futures::future::ready(crate::logs::passes(&l.level, wanted)))
    .map(move |l| Ok(line_event(&l)));
    Ok(Sse::new(replay.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
