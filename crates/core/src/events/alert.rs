//! `alert`: something an operator must look at, raised by the service that saw it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    /// A condition ended; nothing to do.
    Info,
    /// The system copes for now, but will not for ever.
    Warning,
    /// Trading is affected until someone acts.
    Critical,
}

/// What the alert is about. Each kind that raises a condition has one that clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A service cannot save its state: its commits are held back and, past
    /// `runtime.max_unsaved_records`, so is its input.
    CheckpointFailing,
    /// The service saved its state again after [`AlertKind::CheckpointFailing`].
    CheckpointRecovered,
    /// A service cannot reach its dedup store (the cache): its input waits.
    DedupStoreUnavailable,
    /// The dedup store answers again after [`AlertKind::DedupStoreUnavailable`].
    DedupStoreRecovered,
    /// A dependency of a service's handler is down (the database, the venue): its input waits.
    DependencyDown,
    /// The dependency answers again after [`AlertKind::DependencyDown`].
    DependencyRecovered,
    /// The Kite session expired or was revoked: the `zerodha` namespace places nothing until
    /// `alpha-panda kite login` stores a new one.
    SessionExpired,
    /// A new Kite session was found and works: the `zerodha` namespace trades again.
    SessionRestored,
    /// A protected MARKET order rested unfilled at its band and was cancelled.
    OrderRestedAtBand,
    /// A position disagrees with the broker's in a way the trader cannot explain: new entries in
    /// the instrument are halted.
    PositionMismatch,
    /// The position agrees with the broker's again after [`AlertKind::PositionMismatch`].
    PositionReconciled,
    /// The broker sent a message or an error on its ticker.
    BrokerMessage,
}

impl AlertKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CheckpointFailing => "checkpoint_failing",
            AlertKind::CheckpointRecovered => "checkpoint_recovered",
            AlertKind::DedupStoreUnavailable => "dedup_store_unavailable",
            AlertKind::DedupStoreRecovered => "dedup_store_recovered",
            AlertKind::DependencyDown => "dependency_down",
            AlertKind::DependencyRecovered => "dependency_recovered",
            AlertKind::SessionExpired => "session_expired",
            AlertKind::SessionRestored => "session_restored",
            AlertKind::OrderRestedAtBand => "order_rested_at_band",
            AlertKind::PositionMismatch => "position_mismatch",
            AlertKind::PositionReconciled => "position_reconciled",
            AlertKind::BrokerMessage => "broker_message",
        }
    }
}

/// An alert (ARCHITECTURE §4: failures are visible, not only logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: AlertSeverity,
    /// The service that raised it.
    pub service: String,
    /// For people: what happened and what to do.
    pub message: String,
    /// When the condition began (for a clearing alert: when the condition it clears began).
    pub since: Timestamp,
}
