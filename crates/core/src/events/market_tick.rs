//! `market_tick`: one quote of one instrument, as KiteTicker delivers it.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{InstrumentToken, Price, Timestamp};

/// Open, high, low, close of the day (close is the previous session's close on Kite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ohlc {
    /// Day's open.
    pub open: Price,
    /// Day's high.
    pub high: Price,
    /// Day's low.
    pub low: Price,
    /// Previous close.
    pub close: Price,
}

/// One level of the order book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DepthLevel {
    /// Quantity at this level.
    pub quantity: u32,
    /// Price of this level.
    pub price: Price,
    /// Number of orders at this level.
    pub orders: u16,
}

/// Five levels of bids and asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MarketDepth {
    /// Bids, best first.
    pub buy: Vec<DepthLevel>,
    /// Asks, best first.
    pub sell: Vec<DepthLevel>,
}

/// A market data tick for one instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MarketTick {
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Trading symbol when known (never invented from the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tradingsymbol: Option<Arc<str>>,
    /// Last traded price.
    pub last_price: Price,
    /// Quantity of the last trade.
    #[serde(default)]
    pub last_traded_quantity: u32,
    /// Volume-weighted average traded price of the day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_traded_price: Option<Price>,
    /// Day's traded volume.
    #[serde(default)]
    pub volume_traded: u64,
    /// Total pending buy quantity.
    #[serde(default)]
    pub total_buy_quantity: u64,
    /// Total pending sell quantity.
    #[serde(default)]
    pub total_sell_quantity: u64,
    /// Day's OHLC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ohlc: Option<Ohlc>,
    /// Open interest (derivatives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oi: Option<u64>,
    /// Exchange timestamp of the quote.
    pub exchange_timestamp: Timestamp,
    /// Market depth (full mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<MarketDepth>,
}
