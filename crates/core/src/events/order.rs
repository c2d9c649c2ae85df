//! Order lifecycle events: `order_submitted`, `order_ack`, `order_filled`, `order_failed`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    EventId, InstrumentToken, Money, OrderId, Price, Quantity, Side, StrategyId, Timestamp,
};

/// MARKET or LIMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderType {
    /// At the market.
    Market,
    /// At the limit price or better.
    Limit,
}

/// Who executed: the simulator or Zerodha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// The paper trader.
    Paper,
    /// Zerodha Kite.
    Zerodha,
}

/// Itemised charges of one fill (Zerodha equity charges by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FeeBreakdown {
    /// Brokerage.
    pub brokerage: Money,
    /// Securities transaction tax.
    pub stt: Money,
    /// Exchange transaction charges.
    pub exchange_charges: Money,
    /// SEBI turnover fees.
    pub sebi_charges: Money,
    /// GST on brokerage, exchange and SEBI charges.
    pub gst: Money,
    /// Stamp duty (buy side).
    pub stamp_duty: Money,
    /// The depository's charge (with its GST) on a delivery sell, once per scrip and day; not on
    /// the contract note, and absent on the wire when zero.
    #[serde(default, skip_serializing_if = "Money::is_zero")]
    pub dp_charges: Money,
    /// Sum of all of the above.
    pub total: Money,
}

impl FeeBreakdown {
    /// A breakdown whose total is the sum of its lines.
    pub fn itemised(
        brokerage: Money,
        stt: Money,
        exchange_charges: Money,
        sebi_charges: Money,
        gst: Money,
        stamp_duty: Money,
    ) -> FeeBreakdown {
        FeeBreakdown {
            brokerage,
            stt,
            exchange_charges,
            sebi_charges,
            gst,
            stamp_duty,
            dp_charges: Money::default(),
            total: brokerage + stt + exchange_charges + sebi_charges + gst + stamp_duty,
        }
    }

    /// With the depository charge `dp` added (to its line and the total).
    pub fn with_dp_charges(mut self, dp: Money) -> FeeBreakdown {
        self.dp_charges += dp;
        self.total += dp;
        self
    }

    /// Line by line, `self` plus `other`.
    pub fn plus(&self, other: &FeeBreakdown) -> FeeBreakdown {
        FeeBreakdown::itemised(
            self.brokerage + other.brokerage,
            self.stt + other.stt,
            self.exchange_charges + other.exchange_charges,
            self.sebi_charges + other.sebi_charges,
            self.gst + other.gst,
            self.stamp_duty + other.stamp_duty,
        )
        .with_dp_charges(self.dp_charges + other.dp_charges)
    }

    /// Line by line, `self` minus `other`: what is left to charge of `self` when `other` was
    /// charged already.
    pub fn minus(&self, other: &FeeBreakdown) -> FeeBreakdown {
        FeeBreakdown::itemised(
            self.brokerage - other.brokerage,
            self.stt - other.stt,
            self.exchange_charges - other.exchange_charges,
            self.sebi_charges - other.sebi_charges,
            self.gst - other.gst,
            self.stamp_duty - other.stamp_duty,
        )
        .with_dp_charges(self.dp_charges - other.dp_charges)
    }
}

/// Where a fill's fees come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeesSource {
    /// The venue's own fee model: paper's settings, the truth for a paper fill.
    #[default]
    Model,
    /// The broker's own itemised charges of the order (Kite's virtual contract note).
    ContractNote,
    /// The charge model standing in for the broker's charges, which could not be had (or which
    /// the broker works out later, such as a CNC closed on its buy day): an estimate.
    Estimate,
}

impl FeesSource {
    /// Whether these are the venue model's fees (left out of the wire form).
    pub fn is_model(&self) -> bool {
        *self == FeesSource::Model
    }
}

/// An order sent to a trader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderSubmitted {
    /// Alpha Panda's order id.
    pub order_id: OrderId,
    /// The validated signal event that caused the order.
    pub signal_event_id: EventId,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Buy or sell.
    pub side: Side,
    /// Units.
    pub quantity: Quantity,
    /// MARKET or LIMIT.
    pub order_type: OrderType,
    /// Limit price for LIMIT orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Price>,
    /// Paper or Zerodha.
    pub execution_mode: ExecutionMode,
}

/// The venue accepted an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderAck {
    /// Alpha Panda's order id.
    pub order_id: OrderId,
    /// The venue's order id (Kite's, or the paper trader's).
    pub broker_order_id: String,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Paper or Zerodha.
    pub execution_mode: ExecutionMode,
}

/// A fill (possibly partial) of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderFilled {
    /// Alpha Panda's order id.
    pub order_id: OrderId,
    /// The venue's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_order_id: Option<String>,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Trading symbol when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tradingsymbol: Option<String>,
    /// Buy or sell.
    pub side: Side,
    /// Units filled by this fill.
    pub quantity: Quantity,
    /// Price per unit.
    pub fill_price: Price,
    /// Charges for this fill.
    pub fees: FeeBreakdown,
    /// Where the fees come from; absent on the wire for the venue's model (every paper fill).
    #[serde(default, skip_serializing_if = "FeesSource::is_model")]
    pub fees_source: FeesSource,
    /// Paper or Zerodha.
    pub execution_mode: ExecutionMode,
    /// When the fill happened (exchange time of the pricing tick for paper).
    pub filled_at: Timestamp,
}

/// An order failed or was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderFailed {
    /// Alpha Panda's order id.
    pub order_id: OrderId,
    /// The venue's order id when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_order_id: Option<String>,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Buy or sell.
    pub side: Side,
    /// Units requested.
    pub quantity: Quantity,
    /// Why, for people (Kite's status message for Zerodha).
    pub reason: String,
    /// Whether trying again could succeed.
    pub retryable: bool,
    /// Paper or Zerodha.
    pub execution_mode: ExecutionMode,
}
