//! Fixtures shared by the services' tests: one test clock, INFY ticks, a portfolio manager over a
//! store, and handing an event to a handler at a log position, as the runtime would.
#![allow(dead_code)]

use std::sync::Arc;

use alpha_panda_core::{
    Broker, Envelope, EventBroker, InstrumentToken, MarketTick, Payload, Price, Timestamp,
};
use alpha_panda_services::portfolio_manager::service::{PortfolioManager, PortfolioSettings};
use alpha_panda_store::Store;
use alpha_panda_stream::{Handler, HandlerError, Input, Output, RecordPosition};
use rust_decimal::Decimal;

/// INFY's instrument token.
pub const INFY: u32 = 408065;

/// `second` seconds into the test day.
pub fn at(second: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_767_584_700_000_000 + second * 1_000_000).unwrap()
}

/// An INFY tick trading at `last_price` at `second`.
pub fn infy_market_tick(second: i64, last_price: Price) -> MarketTick {
    MarketTick {
        instrument_token: InstrumentToken(INFY),
        tradingsymbol: None,
        last_price,
        last_traded_quantity: 1,
        average_traded_price: None,
        volume_traded: 1,
        total_buy_quantity: 0,
        total_sell_quantity: 0,
        ohlc: None,
        oi: None,
        exchange_timestamp: at(second),
        depth: None,
    }
}

/// An INFY tick at `price` rupees, traded and published at `second`.
pub fn infy_tick(second: i64, price: i64) -> Envelope {
    Envelope::root(
        Payload::MarketTick(infy_market_tick(second, Price(Decimal::from(price)))),
        INFY.to_string(),
        EventBroker::Shared,
        "market_feed",
        at(second),
    )
}

/// The paper portfolio manager over `store`, resumed from its checkpoint when there is one.
pub async fn open_portfolio_manager(store: &Store) -> PortfolioManager {
    PortfolioManager::open(
        Broker::Paper,
        PortfolioSettings::default(),
        store.clone(),
        None,
    )
    .await
    .unwrap()
}

/// Hands `envelope` to `handler` as read at `offset` of partition 0 of `topic`, at `now`.
pub async fn deliver<H: Handler>(
    handler: &mut H,
    topic: &str,
    offset: i64,
    envelope: &Envelope,
    now: Timestamp,
) -> Result<Vec<Output>, HandlerError> {
    let position = RecordPosition {
        topic: Arc::from(topic),
        partition: 0,
        offset,
    };
    handler
        .handle(Input {
            envelope,
            position: &position,
            now,
        })
        .await
}
