//! Signals: a strategy's intent (`trading_signal`), and the risk manager's verdict on it
//! (`validated_signal`, `rejected_signal`).

use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EventId, InstrumentToken, OrderType, Price, Quantity, StrategyId, Timestamp};

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// +1 for a buy, −1 for a sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    /// `BUY` / `SELL`, as Kite writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tick that caused a signal: the paper trader prices a MARKET fill from it (causal pricing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TickRef {
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Its last traded price at that tick.
    pub last_price: Price,
    /// The tick's exchange time.
    pub exchange_timestamp: Timestamp,
    /// The tick event's id.
    pub event_id: EventId,
}

/// A strategy's request to trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TradingSignal {
    /// The strategy that decided.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Buy or sell: what reaches `target_quantity` from where the strategy believes it stands.
    pub side: Side,
    /// Units to trade (positive), likewise.
    pub quantity: Quantity,
    /// The position the strategy wants in the instrument: `+q` long, `0` flat, `−q` short. The risk
    /// manager sizes the order from it and the namespace's actual position (ARCHITECTURE §6), so a
    /// strategy whose belief drifted from what was filled never trades past its target.
    pub target_quantity: i64,
    /// MARKET or LIMIT.
    pub order_type: OrderType,
    /// Limit price for LIMIT orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Price>,
    /// Why the strategy decided, for people.
    pub reason: String,
    /// The tick that caused the decision.
    pub tick: TickRef,
}

/// A signal that passed every risk rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidatedSignal {
    /// The approved order: the raw signal with `side` and `quantity` sized by the risk manager to
    /// reach `target_quantity` from the namespace's position and orders in flight.
    pub signal: TradingSignal,
    /// The raw signal event's id.
    pub signal_event_id: EventId,
    /// Names of the rules that were checked.
    // Shared: every approval of a desk names the same rules.
    pub rules_checked: Arc<[String]>,
}

/// One failed risk rule: which, its limit, and what the signal would have made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleViolation {
    /// Rule name (`max_order_value`, …).
    pub rule: String,
    /// The configured limit, as text (a number, a band, a time window).
    pub limit: String,
    /// The value the signal would have produced.
    pub actual: String,
    /// A sentence for people.
    pub message: String,
}

/// A signal the risk manager refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RejectedSignal {
    /// The refused order: the raw signal with `side` and `quantity` sized as for a validated one.
    pub signal: TradingSignal,
    /// The raw signal event's id.
    pub signal_event_id: EventId,
    /// Every rule that failed.
    pub violations: Vec<RuleViolation>,
}

/// A signal whose target the namespace already reaches with its position and the orders in flight:
/// no order is placed. Not a refusal: nothing the strategy asked for is withheld.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignalAtTarget {
    /// The raw signal, unchanged.
    pub signal: TradingSignal,
    /// The raw signal event's id.
    pub signal_event_id: EventId,
    /// The namespace's position from fills when the signal was judged.
    pub position: i64,
    /// Units of orders approved and not yet filled or failed, signed.
    pub in_flight: i64,
}
