//! One typed payload per event type, and [`Payload`], the sum of them all.

mod alert;
mod dlq;
mod market_tick;
mod order;
mod plausibility;
mod pnl;
mod signal;

pub use alert::{Alert, AlertKind, AlertSeverity};
pub use dlq::{DlqMessage, DlqPayload};
pub use market_tick::{DepthLevel, MarketDepth, MarketTick, Ohlc};
pub use order::{
    ExecutionMode, FeeBreakdown, FeesSource, OrderAck, OrderFailed, OrderFilled, OrderSubmitted,
    OrderType,
};
pub use pnl::{PnlSnapshot, PositionSnapshot, SnapshotType};
pub use signal::{
    RejectedSignal, RuleViolation, Side, SignalAtTarget, TickRef, TradingSignal, ValidatedSignal,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::envelope::EventType;

/// The payload of an envelope, tagged by the envelope's `type` and carried in its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Payload {
    /// A market data tick.
    MarketTick(MarketTick),
    /// A strategy's raw signal.
    TradingSignal(TradingSignal),
    /// A signal the risk manager approved.
    ValidatedSignal(ValidatedSignal),
    /// A signal the risk manager refused, with every failed rule.
    RejectedSignal(RejectedSignal),
    /// A signal whose target the namespace already holds (or has in flight): no order.
    SignalAtTarget(SignalAtTarget),
    /// An order sent to a trader.
    OrderSubmitted(OrderSubmitted),
    /// The venue accepted the order.
    OrderAck(OrderAck),
    /// A (possibly partial) fill.
    OrderFilled(OrderFilled),
    /// The order failed or was rejected.
    OrderFailed(OrderFailed),
    /// A portfolio's PnL at a point in time.
    PnlSnapshot(PnlSnapshot),
    /// A record that could not be processed.
    DlqMessage(DlqMessage),
    /// Something an operator must look at.
    Alert(Alert),
}

impl Payload {
    /// The envelope `type` this payload is carried under.
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::MarketTick(_) => EventType::MarketTick,
            Payload::TradingSignal(_) => EventType::TradingSignal,
            Payload::ValidatedSignal(_) => EventType::ValidatedSignal,
            Payload::RejectedSignal(_) => EventType::RejectedSignal,
            Payload::SignalAtTarget(_) => EventType::SignalAtTarget,
            Payload::OrderSubmitted(_) => EventType::OrderSubmitted,
            Payload::OrderAck(_) => EventType::OrderAck,
            Payload::OrderFilled(_) => EventType::OrderFilled,
            Payload::OrderFailed(_) => EventType::OrderFailed,
            Payload::PnlSnapshot(_) => EventType::PnlSnapshot,
            Payload::DlqMessage(_) => EventType::DlqMessage,
            Payload::Alert(_) => EventType::Alert,
        }
    }
}

macro_rules! payload_from {
    ($($variant:ident),*) => {
        $(impl From<$variant> for Payload {
            fn from(p: $variant) -> Self {
                Payload::$variant(p)
            }
        })*
    };
}

payload_from!(
    MarketTick,
    TradingSignal,
    ValidatedSignal,
    RejectedSignal,
    OrderSubmitted,
    OrderAck,
    OrderFilled,
    OrderFailed,
    PnlSnapshot,
    DlqMessage,
    Alert
);
