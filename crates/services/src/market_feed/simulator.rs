//! A seeded random-walk tick generator over a set of instruments.
//!
//! Instruments are visited **round-robin** in the order given: the n-th call to
//! [`TickSimulator::next_tick`] quotes instrument `n mod len`. Each visit moves that instrument's price
//! by a whole number of ticks drawn from a ChaCha8 generator seeded with the given seed (a step of
//! about ±0.1 % of the price at most, never below one tick), so prices stay on the instrument's tick
//! grid and positive. Volume, last traded quantity, buy/sell quantities, the day's OHLC (close = the
//! base price, i.e. the previous close) and the volume-weighted average price follow from the walk.
//! The same seed and instruments give the identical tick sequence.

use std::sync::Arc;

use alpha_panda_core::{Instrument, MarketTick, Ohlc, Price, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ServiceError;

/// The walk of one instrument, in whole ticks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Walk {
    instrument: Instrument,
    /// The trading symbol every tick carries, shared rather than copied per tick.
    tradingsymbol: Arc<str>,
    /// Price in ticks.
    price_ticks: i64,
    open_ticks: i64,
    high_ticks: i64,
    low_ticks: i64,
    close_ticks: i64,
    volume: u64,
    /// Σ price × quantity, in tick-size units: exact integers, so no decimal arithmetic per tick.
    turnover_ticks: i128,
    started: bool,
}

impl Walk {
    /// `ticks` tick sizes as a price (the tick size's own scale).
    fn price(&self, ticks: i64) -> Price {
        let tick_size = self.instrument.tick_size;
        Price(Decimal::from_i128_with_scale(
            i128::from(ticks) * tick_size.mantissa(),
            tick_size.scale(),
        ))
    }

    /// The volume-weighted average price so far, rounded half-even to the paisa.
    fn average_price(&self) -> Decimal {
        let tick_size = self.instrument.tick_size;
        let volume = i128::from(self.volume.max(1));
        let turnover = self.turnover_ticks * tick_size.mantissa();
        if tick_size.scale() <= 2 {
            // Exact: turnover in paise over volume, rounded once.
            let paise = turnover * 10i128.pow(2 - tick_size.scale());
            let (quotient, remainder) = (paise / volume, paise % volume);
            let twice = 2 * remainder.abs();
            let round_away = twice > volume || (twice == volume && quotient % 2 != 0);
            let rounded = if round_away {
                quotient + paise.signum()
            } else {
                quotient
            };
            Decimal::from_i128_with_scale(rounded, 2)
        } else {
            (Decimal::from_i128_with_scale(turnover, tick_size.scale()) / Decimal::from(volume))
                .round_dp(2)
        }
    }
}

/// A deterministic tick generator.
#[derive(Debug, Clone)]
pub struct TickSimulator {
    rng: ChaCha8Rng,
    walks: Vec<Walk>,
    next: usize,
}

impl TickSimulator {
    /// A simulator over `instruments`, each starting from its `last_price` (snapped to its tick grid).
    ///
    /// # Errors
    /// [`ServiceError::SimulatorUniverse`] when the list is empty or an instrument has a non-positive
    /// base price or tick size.
    pub fn new(seed: u64, instruments: Vec<Instrument>) -> Result<Self, ServiceError> {
        if instruments.is_empty() {
            return Err(ServiceError::SimulatorUniverse("no instruments".into()));
        }
        let mut walks = Vec::with_capacity(instruments.len());
        for instrument in instruments {
            if instrument.tick_size <= Decimal::ZERO || instrument.last_price <= Decimal::ZERO {
                return Err(ServiceError::SimulatorUniverse(format!(
                    "instrument {} ({}) has base price {} and tick size {}",
                    instrument.tradingsymbol,
                    instrument.instrument_token,
                    instrument.last_price,
                    instrument.tick_size
                )));
            }
            let ticks = i64::try_from((instrument.last_price / instrument.tick_size).round())
                .unwrap_or(1)
                .max(1);
            walks.push(Walk {
                tradingsymbol: Arc::from(instrument.tradingsymbol.as_str()),
                instrument,
                price_ticks: ticks,
                open_ticks: ticks,
                high_ticks: ticks,
                low_ticks: ticks,
                close_ticks: ticks,
                volume: 0,
                turnover_ticks: 0,
                started: false,
            });
        }
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            walks,
            next: 0,
        })
    }

    /// The instruments simulated, in visiting order.
    pub fn instruments(&self) -> impl Iterator<Item = &Instrument> {
        self.walks.iter().map(|w| &w.instrument)
    }

    /// The next tick (of the next instrument in round-robin order), stamped `at`.
    pub fn next_tick(&mut self, at: Timestamp) -> MarketTick {
        let index = self.next % self.walks.len();
        self.next = (index + 1) % self.walks.len();
        let rng = &mut self.rng;
        let walk = &mut self.walks[index];

        // Step: up to ±0.1 % of the price, at least ±1 tick, bell-shaped (mean of two uniforms).
        let max_step = (walk.price_ticks / 1000).max(1);
        let step = (rng.gen_range(-max_step..=max_step) + rng.gen_range(-max_step..=max_step)) / 2;
        walk.price_ticks = (walk.price_ticks + step).max(1);
        if !walk.started {
            // The first quote of the day opens the day's range.
            walk.open_ticks = walk.price_ticks;
            walk.high_ticks = walk.price_ticks;
            walk.low_ticks = walk.price_ticks;
            walk.started = true;
        }
        walk.high_ticks = walk.high_ticks.max(walk.price_ticks);
        walk.low_ticks = walk.low_ticks.min(walk.price_ticks);

        let last_traded_quantity: u32 = rng.gen_range(1..=500);
        walk.volume += u64::from(last_traded_quantity);
        walk.turnover_ticks += i128::from(walk.price_ticks) * i128::from(last_traded_quantity);
        let walk = &*walk;
        let price = |ticks: i64| walk.price(ticks);
        let last_price = price(walk.price_ticks);
        let average = walk.average_price();

        MarketTick {
            instrument_token: walk.instrument.instrument_token,
            tradingsymbol: Some(walk.tradingsymbol.clone()),
            last_price,
            last_traded_quantity,
            average_traded_price: Some(Price(average)),
            volume_traded: walk.volume,
            total_buy_quantity: rng.gen_range(10_000..=500_000),
            total_sell_quantity: rng.gen_range(10_000..=500_000),
            ohlc: Some(Ohlc {
                open: price(walk.open_ticks),
                high: price(walk.high_ticks),
                low: price(walk.low_ticks),
                close: price(walk.close_ticks),
            }),
            oi: None,
            exchange_timestamp: at,
            depth: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market_feed::nse_universe;

    fn at(i: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_763_696_700_000_000 + i * 250_000).unwrap()
    }

    fn run(seed: u64, n: i64) -> Vec<MarketTick> {
        let mut sim = TickSimulator::new(seed, nse_universe()).unwrap();
        (0..n).map(|i| sim.next_tick(at(i))).collect()
    }

    #[test]
    fn average_price_is_the_exact_vwap_rounded_half_even() {
        let mut sim = TickSimulator::new(11, nse_universe()).unwrap();
        let mut turnover = vec![Decimal::ZERO; sim.walks.len()];
        for i in 0..2_000 {
            let index = sim.next;
            let tick = sim.next_tick(at(i));
            turnover[index] += tick.last_price.0 * Decimal::from(tick.last_traded_quantity);
            let expected = (turnover[index] / Decimal::from(tick.volume_traded))
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven);
            assert_eq!(tick.average_traded_price.unwrap().0, expected);
            assert_eq!(
                tick.last_price.0,
                Decimal::from(sim.walks[index].price_ticks) * sim.walks[index].instrument.tick_size
            );
        }
        // A tie goes to the even paisa; anything else to the nearest.
        let mut walk = sim.walks[0].clone();
        walk.instrument.tick_size = Decimal::new(1, 2);
        (walk.turnover_ticks, walk.volume) = (1, 2); // 0.005 → 0.00
        assert_eq!(walk.average_price(), Decimal::new(0, 2));
        (walk.turnover_ticks, walk.volume) = (3, 2); // 0.015 → 0.02
        assert_eq!(walk.average_price(), Decimal::new(2, 2));
        (walk.turnover_ticks, walk.volume) = (7, 3); // 0.02333 → 0.02
        assert_eq!(walk.average_price(), Decimal::new(2, 2));
        walk.instrument.tick_size = Decimal::new(25, 4); // a grid finer than the paisa
        (walk.turnover_ticks, walk.volume) = (3, 1); // 0.0075 → 0.01
        assert_eq!(walk.average_price(), Decimal::new(1, 2));
    }

    #[test]
    fn same_seed_same_sequence_different_seed_differs() {
        assert_eq!(run(7, 500), run(7, 500));
        assert_ne!(run(7, 500), run(8, 500));
    }

    #[test]
    fn round_robin_on_grid_positive_and_consistent() {
        let universe = nse_universe();
        let ticks = run(42, 20_000);
        let tick_size = Decimal::new(5, 2);
        for (i, t) in ticks.iter().enumerate() {
            assert_eq!(
                t.instrument_token,
                universe[i % universe.len()].instrument_token
            );
            assert!(t.last_price.0 > Decimal::ZERO);
            assert!(t.last_price.is_on_tick(tick_size), "{}", t.last_price);
            let ohlc = t.ohlc.unwrap();
            assert!(ohlc.low <= t.last_price && t.last_price <= ohlc.high);
            assert!(ohlc.low <= ohlc.open && ohlc.open <= ohlc.high);
            assert!(
                t.last_traded_quantity >= 1 && t.volume_traded >= u64::from(t.last_traded_quantity)
            );
            assert_eq!(t.exchange_timestamp, at(i as i64));
            assert!(t.tradingsymbol.is_some());
        }
        // Prices actually move.
        let reliance: Vec<_> = ticks
            .iter()
            .filter(|t| t.instrument_token.0 == 738561)
            .map(|t| t.last_price)
            .collect();
        assert!(reliance.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn a_one_tick_instrument_stays_positive() {
        let mut penny = nse_universe().remove(0);
        penny.last_price = Decimal::new(5, 2);
        let mut sim = TickSimulator::new(1, vec![penny]).unwrap();
        for i in 0..2_000 {
            assert!(sim.next_tick(at(i)).last_price.0 >= Decimal::new(5, 2));
        }
    }

    #[test]
    fn rejects_unusable_universes() {
        assert!(TickSimulator::new(1, vec![]).is_err());
        let mut bad = nse_universe().remove(0);
        bad.last_price = Decimal::ZERO;
        let err = TickSimulator::new(1, vec![bad]).unwrap_err();
        assert!(err.to_string().contains("RELIANCE"));
    }
}
