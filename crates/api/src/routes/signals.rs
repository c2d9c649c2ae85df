//! The risk manager's answers per namespace (validated, rejected with the rules that failed, at
//! target), newest first, from the log as the API has read it; and the last tick of instruments.

use std::sync::Arc;

use alpha_panda_core::{
    EventId, InstrumentToken, MarketTick, Payload, Quantity, RuleViolation, Side, StrategyId,
    Timestamp,
};
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{limit, ApiPath, ApiQuery};
use crate::state::ApiState;

/// Which answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalStatus {
    /// Approved and sent to the trading engine.
    Validated,
    /// Refused by one rule or more.
    Rejected,
    /// No order was needed.
    AtTarget,
}

/// `?status=…&limit=…`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalQuery {
    /// Which answers (default: validated and rejected).
    #[serde(default)]
    pub status: Option<SignalStatus>,
    /// Most rows (1–1000; default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One answer to a strategy's signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignalEntry {
    /// The answer's event id.
    pub event_id: EventId,
    /// The raw signal's event id.
    pub signal_event_id: EventId,
    /// `validated`, `rejected` or `at_target`.
    pub status: String,
    /// When the risk manager answered.
    pub at: Timestamp,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// The order's side.
    pub side: Side,
    /// The order's units.
    pub quantity: Quantity,
    /// The position the strategy asked for.
    pub target_quantity: i64,
    /// Why the strategy signalled.
    pub reason: String,
    /// The rules that failed (rejected answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<RuleViolation>,
}

fn entry(envelope: &alpha_panda_core::Envelope) -> Option<SignalEntry> {
    let (status, signal, signal_event_id, violations) = match &envelope.payload {
        Payload::ValidatedSignal(v) => ("validated", &v.signal, v.signal_event_id, Vec::new()),
        Payload::RejectedSignal(r) => (
            "rejected",
            &r.signal,
            r.signal_event_id,
            r.violations.clone(),
        ),
        Payload::SignalAtTarget(a) => ("at_target", &a.signal, a.signal_event_id, Vec::new()),
        _ => return None,
    };
    Some(SignalEntry {
        event_id: envelope.id,
        signal_event_id,
        status: status.into(),
        at: envelope.ts,
        strategy_id: signal.strategy_id.clone(),
        instrument_token: signal.instrument_token,
        side: signal.side,
        quantity: signal.quantity,
        target_quantity: signal.target_quantity,
        reason: signal.reason.clone(),
        violations,
    })
}

/// The namespace's latest risk answers.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
    ApiQuery(query): ApiQuery<SignalQuery>,
) -> Result<Json<Vec<SignalEntry>>, ApiError> {
    let broker = state.broker(&broker)?;
    let n = limit(query.limit, 100)? as usize;
    let types: &[&str] = match query.status {
        Some(SignalStatus::Validated) => &["validated_signal"],
        Some(SignalStatus::Rejected) => &["rejected_signal"],
        Some(SignalStatus::AtTarget) => &["signal_at_target"],
        None => &["validated_signal", "rejected_signal"],
    };
    let mut entries: Vec<SignalEntry> = types
        .iter()
        .flat_map(|t| state.events.signals(broker.as_str(), t, n))
        .filter_map(|e| entry(&e))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse((e.at, e.event_id)));
    entries.truncate(n);
    Ok(Json(entries))
}

/// `?tokens=408065,2953217`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LastQuery {
    /// Instrument tokens, comma separated (at most 500).
    pub tokens: String,
}

/// The last tick of each instrument asked for that has one.
pub async fn last(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<LastQuery>,
) -> Result<Json<Vec<MarketTick>>, ApiError> {
    let tokens: Vec<u32> = query
        .tokens
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| ApiError::invalid(format!("tokens: {t:?} is not an instrument token")))
        })
        .collect::<Result<_, _>>()?;
    if tokens.is_empty() || tokens.len() > 500 {
        return Err(ApiError::invalid(
            "tokens: give 1 to 500 instrument tokens, comma separated",
        ));
    }
    Ok(Json(state.events.last_ticks(&tokens)))
}
