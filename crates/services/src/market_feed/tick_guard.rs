//! [`TickGuard`]: the market feed's check of every tick before it reaches `market.ticks`, whatever
//! the source (simulator, CSV replay, KiteTicker). A tick that no exchange could have printed — a
//! price that is not positive, absurdly large, off the instrument's tick grid, or further from that
//! instrument's last accepted price than `market_feed.max_price_jump_pct` — would corrupt every
//! indicator, mark and risk figure downstream; it goes to `market.ticks.dlq` with its reason.
//!
//! Pure: no I/O and no clock. The last accepted price per instrument is all the state it keeps.

use std::collections::HashMap;

use alpha_panda_core::{Instrument, InstrumentToken, MarketTick, Price};
use rust_decimal::Decimal;

/// Why a tick was refused, for the DLQ record and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TickRejection(pub String);

/// Checks ticks against the instruments master and each instrument's last accepted price.
#[derive(Debug, Clone, Default)]
pub struct TickGuard {
    tick_sizes: HashMap<InstrumentToken, Decimal>,
    /// The largest move from the last accepted price, as a fraction (`0.2` for 20 %); `None`
    /// checks no move.
    max_jump: Option<Decimal>,
    last_prices: HashMap<InstrumentToken, Price>,
}

impl TickGuard {
    /// A guard knowing the tick sizes of `instruments`, refusing moves of more than
    /// `max_price_jump_pct` percent (`0` refuses none).
    pub fn new(instruments: &[Instrument], max_price_jump_pct: Decimal) -> Self {
        Self {
            tick_sizes: instruments
                .iter()
                .filter(|i| i.tick_size > Decimal::ZERO)
                .map(|i| (i.instrument_token, i.tick_size))
                .collect(),
            max_jump: (max_price_jump_pct > Decimal::ZERO)
                .then(|| max_price_jump_pct / Decimal::ONE_HUNDRED),
            last_prices: HashMap::new(),
        }
    }

    /// Accepts `tick` (it becomes the instrument's last price) or says why not.
    ///
    /// # Errors
    /// A [`TickRejection`] naming the rule and the figures.
    pub fn check(&mut self, tick: &MarketTick) -> Result<(), TickRejection> {
        let token = tick.instrument_token;
        let price = tick.last_price;
        // Positive, not absurd, OHLC in range: the checks every event gets.
        tick.check_plausible().map_err(TickRejection)?;
        if let Some(tick_size) = self.tick_sizes.get(&token) {
            if !price.is_on_tick(*tick_size) {
                return Err(TickRejection(format!(
                    "last_price {} of {token} is off its tick grid of {tick_size}",
                    price.0
                )));
            }
        }
        if let (Some(max_jump), Some(last)) = (self.max_jump, self.last_prices.get(&token)) {
            // `|p − last| > jump × last` rather than the ratio: every tick passes here, and a
            // division costs many times a multiplication (the last price is positive).
            let distance = (price.0 - last.0).abs();
            if distance > max_jump * last.0 {
                let moved = distance / last.0;
                return Err(TickRejection(format!(
                    "last_price {} of {token} is {}% from its last price {}, more than \
                     market_feed.max_price_jump_pct ({}%)",
                    price.0,
                    (moved * Decimal::ONE_HUNDRED).round_dp(2),
                    last.0,
                    (max_jump * Decimal::ONE_HUNDRED).normalize()
                )));
            }
        }
        self.last_prices.insert(token, price);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alpha_panda_core::Timestamp;
    use rust_decimal_macros::dec;

    use super::*;

    const INFY: InstrumentToken = InstrumentToken(408065);

    fn tick(price: Decimal) -> MarketTick {
        MarketTick {
            instrument_token: INFY,
            tradingsymbol: None,
            last_price: Price(price),
            last_traded_quantity: 1,
            average_traded_price: None,
            volume_traded: 1,
            total_buy_quantity: 0,
            total_sell_quantity: 0,
            ohlc: None,
            oi: None,
            exchange_timestamp: Timestamp::from_unix_micros(1_767_584_700_000_000).unwrap(),
            depth: None,
        }
    }

    fn guard(max_jump_pct: Decimal) -> TickGuard {
        let infy = crate::market_feed::nse_universe()
            .into_iter()
            .find(|i| i.instrument_token == INFY)
            .unwrap();
        TickGuard::new(&[infy], max_jump_pct)
    }

    #[test]
    fn refuses_what_no_exchange_prints() {
        let mut guard = guard(dec!(20));
        assert!(guard.check(&tick(dec!(1500.05))).is_ok());
        for (price, says) in [
            (dec!(0), "not positive"),
            (dec!(-5), "not positive"),
            (dec!(99999999999999999999999.99), "outside"),
            (dec!(1500.03), "off its tick grid of 0.05"),
            (dec!(1900), "26.66% from its last price 1500.05"),
            (dec!(1100), "more than market_feed.max_price_jump_pct (20%)"),
        ] {
            let refused = guard.check(&tick(price)).unwrap_err().to_string();
            assert!(refused.contains(says), "{price}: {refused}");
        }
        // Refused ticks do not move the reference: a move within the band from 1500.05 passes.
        assert!(guard.check(&tick(dec!(1700))).is_ok());
        assert!(guard.check(&tick(dec!(2000))).is_ok(), "17.6 % from 1700");
    }

    #[test]
    fn unknown_instruments_and_a_zero_band_check_less() {
        let mut guard = TickGuard::new(&[], Decimal::ZERO);
        assert!(guard.check(&tick(dec!(1500.03))).is_ok());
        assert!(guard.check(&tick(dec!(15000))).is_ok());
        assert!(guard.check(&tick(dec!(0))).is_err());
    }
}
