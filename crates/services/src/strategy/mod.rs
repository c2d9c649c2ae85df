//! Strategies: pure state machines that turn ticks into trading signals; the runner emits them.
//!
//! - [`ema_cross`]: the exact reference EMA crossover (ARCHITECTURE §6).
//! - [`mean_reversion`]: z-score mean reversion over a rolling window.
//! - [`config`]: building a strategy from a configuration row, and the default strategy set.

pub mod config;
pub mod ema_cross;
pub mod mean_reversion;

pub use config::{build_strategy, default_strategy_set, StrategyConfigError, StrategySeed};
pub use ema_cross::{EmaCross, EmaCrossParams};
pub use mean_reversion::{MeanReversion, MeanReversionParams};

use alpha_panda_core::{
    EventId, InstrumentToken, MarketTick, OrderType, Quantity, Side, StrategyId, TickRef,
    TradingSignal,
};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// A trading strategy: reads ticks, keeps its own indicators, returns signals. No I/O, no clock.
pub trait Strategy: Send {
    /// The configured strategy id.
    fn id(&self) -> &StrategyId;
    /// The instruments the strategy trades; ticks of other instruments are ignored.
    fn instruments(&self) -> &[InstrumentToken];
    /// Handles one tick (`tick_event_id` is the tick event's id) and returns the signals it causes,
    /// each carrying that tick as its [`TickRef`].
    fn on_tick(&mut self, tick: &MarketTick, tick_event_id: EventId) -> Vec<TradingSignal>;
    /// The indicator state of every instrument, for the runner's checkpoint.
    fn save_state(&self) -> serde_json::Value;
    /// Restores a state saved by [`Strategy::save_state`] of the same strategy.
    ///
    /// # Errors
    /// When the saved state does not decode into this strategy's state.
    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error>;
}

/// The price of `tick` as an indicator input, when the strategy trades its instrument and the price
/// is usable (positive and representable as an `f64`).
pub(crate) fn indicator_price(instruments: &[InstrumentToken], tick: &MarketTick) -> Option<f64> {
    if !instruments.contains(&tick.instrument_token) || tick.last_price.0 <= Decimal::ZERO {
        return None;
    }
    tick.last_price.0.to_f64()
}

/// A MARKET signal caused by `tick`.
pub(crate) fn market_signal(
    strategy_id: &StrategyId,
    tick: &MarketTick,
    tick_event_id: EventId,
    side: Side,
    quantity: u32,
    reason: String,
) -> TradingSignal {
    TradingSignal {
        strategy_id: strategy_id.clone(),
        instrument_token: tick.instrument_token,
        side,
        quantity: Quantity(quantity),
        order_type: OrderType::Market,
        limit_price: None,
        reason,
        tick: TickRef {
            instrument_token: tick.instrument_token,
            last_price: tick.last_price,
            exchange_timestamp: tick.exchange_timestamp,
            event_id: tick_event_id,
        },
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Tick builders for strategy tests.
    use alpha_panda_core::{InstrumentToken, MarketTick, Price, Timestamp};
    use rust_decimal::Decimal;

    /// A minimal tick of `token` at `price`, `seq` microseconds after a fixed instant.
    pub fn tick(token: u32, price: Decimal, seq: i64) -> MarketTick {
        MarketTick {
            instrument_token: InstrumentToken(token),
            tradingsymbol: None,
            last_price: Price(price),
            last_traded_quantity: 1,
            average_traded_price: None,
            volume_traded: 0,
            total_buy_quantity: 0,
            total_sell_quantity: 0,
            ohlc: None,
            oi: None,
            exchange_timestamp: Timestamp::from_unix_micros(
                1_763_696_700_000_000 + seq * 1_000_000,
            )
            .unwrap(),
            depth: None,
        }
    }
}
