//! An entry of the Kite instruments master: what a token is, where it trades, and its lot and tick.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::InstrumentToken;

/// One row of the instruments master. Keyed by (exchange, tradingsymbol); tokens can be reused
/// after expiry, so the token is an index, not the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Instrument {
    /// Token used by the ticker and in events.
    pub instrument_token: InstrumentToken,
    /// The exchange's own token.
    pub exchange_token: u32,
    /// Exchange trading symbol (`INFY`, `NIFTY24DECFUT`).
    pub tradingsymbol: String,
    /// Company or underlying name (may be empty).
    pub name: String,
    /// Last price when the dump was built (not live).
    pub last_price: Decimal,
    /// Expiry date for derivatives.
    pub expiry: Option<NaiveDate>,
    /// Strike for options (None for others).
    pub strike: Option<Decimal>,
    /// Minimum price step.
    pub tick_size: Decimal,
    /// Minimum quantity multiple.
    pub lot_size: u32,
    /// EQ, FUT, CE or PE.
    pub instrument_type: String,
    /// NSE, BSE, NFO-FUT, NFO-OPT, MCX, CDS-FUT, INDICES, …
    pub segment: String,
    /// NSE, BSE, NFO, CDS, BCD, MCX, …
    pub exchange: String,
}
