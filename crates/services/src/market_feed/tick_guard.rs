//! [`TickGuard`]: the market feed's check of every tick before it reaches `market.ticks`, whatever
//! the source (simulator, CSV replay, KiteTicker). A tick that no exchange could have printed — a
//! price that is not positive, absurdly large, off the instrument's tick grid, or further from that
//! instrument's last accepted price than `market_feed.max_price_jump_pct` — would corrupt every
//! indicator, mark and risk figure downstream; it goes to `market.ticks.dlq` with its reason.
//!
//! Pure: no I/O and no clock. The last accepted price per instrument is all the state it keeps.

use alpha_panda_core::{Instrument, InstrumentToken, MarketTick, Price};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

/// Why a tick was refused, for the DLQ record and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TickRejection(pub String);

/// Checks ticks against the instruments master and each instrument's last accepted price.
#[derive(Debug, Clone, Default)]
pub struct TickGuard {
    tick_sizes: FxHashMap<InstrumentToken, Decimal>,
    /// The largest move from the last accepted price, as a fraction (`0.2` for 20 %); `None`
    /// checks no move.
    max_jump: Option<Decimal>,
    // Fx rather than SipHash: two lookups per tick, keyed by tokens no outsider chooses.
    last_prices: FxHashMap<InstrumentToken, Price>,
}

/// Whether `price` is further than `max_jump × last` from `last` (a positive last price):
/// `|p − last| > jump × last` rather than the ratio, and for ordinary prices on integers at one
/// scale, since every tick passes here. A test holds it to the decimal comparison.
fn jumps(price: Decimal, last: Decimal, max_jump: Decimal) -> bool {
    let small = |d: Decimal| i64::try_from(d.mantissa()).ok().map(i128::from);
    if let (Some(p), Some(l), Some(j)) = (small(price), small(last), small(max_jump)) {
        // Everything at the scale of jump × last.
        let scale = max_jump.scale() + last.scale();
        let to_scale = |m: i128, s: u32| {
            scale
                .checked_sub(s)
                .and_then(|up| 10i128.checked_pow(up))
                .and_then(|f| m.checked_mul(f))
        };
        if let (Some(p_scaled), Some(l_scaled)) =
            (to_scale(p, price.scale()), to_scale(l, last.scale()))
        {
            return (p_scaled - l_scaled).abs() > j * l;
        }
    }
    (price - last).abs() > max_jump * last
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
            last_prices: FxHashMap::default(),
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
            if jumps(price.0, last.0, max_jump) {
                let distance = (price.0 - last.0).abs();
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

    proptest::proptest! {
        /// The integer path is the decimal comparison, at every scale.
        #[test]
        fn the_jump_is_the_decimal_comparison(p in 1i64..10_000_000_000, ps in 0u32..=6,
                                              l in 1i64..10_000_000_000, ls in 0u32..=6,
                                              j in 1i64..1_000, js in 0u32..=4) {
            let (price, last, jump) = (Decimal::new(p, ps), Decimal::new(l, ls), Decimal::new(j, js));
            proptest::prop_assert_eq!(jumps(price, last, jump), (price - last).abs() > jump * last);
        }
    }

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
