//! `mean_reversion`: trades a price's z-score against its rolling mean.
//!
//! Per instrument, the last `window` prices (including the current tick) give a mean and a population
//! standard deviation; `z = (price − mean) / stddev`. Nothing happens until the window is full or while
//! the deviation is zero. Positions are flat, long or (only when `allow_short`, default false) short:
//! - flat and `z <= −entry_z` → BUY `quantity` (long); flat and `z >= entry_z` with shorts allowed →
//!   SELL `quantity` (short);
//! - long and `z >= −exit_z` → SELL (flat); short and `z <= exit_z` → BUY (flat).
//!
//! With the default `exit_z = 0` a position is closed when the price crosses back to its mean.
//! Indicators use `f64`; signals carry the exact decimal tick price. Ticks with a non-positive price
//! are ignored.

use std::collections::VecDeque;

use alpha_panda_core::{EventId, InstrumentToken, MarketTick, Side, StrategyId, TradingSignal};
use serde::{Deserialize, Serialize};

use super::states::InstrumentStates;
use super::{market_signal, push_fixed, Strategy};

/// Parameters of `mean_reversion`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanReversionParams {
    /// Prices in the rolling window (default 20, at least 2).
    pub window: u32,
    /// |z| at which a position is opened (default 2.0, positive).
    pub entry_z: f64,
    /// z (towards the mean) at which a position is closed (default 0.0, in `[0, entry_z)`).
    pub exit_z: f64,
    /// Units per order (default 1).
    pub quantity: u32,
    /// Whether to open shorts on high z (default false: long-only).
    pub allow_short: bool,
}

impl Default for MeanReversionParams {
    fn default() -> Self {
        Self {
            window: 20,
            entry_z: 2.0,
            exit_z: 0.0,
            quantity: 1,
            allow_short: false,
        }
    }
}

/// The position a mean-reversion instrument state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MrPosition {
    /// No position.
    #[default]
    Flat,
    /// Long `quantity`.
    Long,
    /// Short `quantity`.
    Short,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct InstrumentState {
    prices: VecDeque<f64>,
    position: MrPosition,
}

/// The `mean_reversion` strategy.
#[derive(Debug, Clone)]
pub struct MeanReversion {
    id: StrategyId,
    params: MeanReversionParams,
    /// The constant end of a signal's reason: ` over 20 prices (entry ±2, exit 0)`.
    reason_tail: String,
    states: InstrumentStates<InstrumentState>,
}

impl MeanReversion {
    /// A new strategy. Parameters are validated by [`super::build_strategy`].
    pub fn new(
        id: StrategyId,
        instruments: Vec<InstrumentToken>,
        params: MeanReversionParams,
    ) -> Self {
        Self {
            id,
            reason_tail: format!(
                " over {} prices (entry ±{}, exit {})",
                params.window, params.entry_z, params.exit_z
            ),
            params,
            states: InstrumentStates::new(instruments),
        }
    }

    /// The parameters.
    pub fn params(&self) -> MeanReversionParams {
        self.params
    }

    /// The position held in `token`.
    pub fn position(&self, token: InstrumentToken) -> MrPosition {
        self.states
            .get(token)
            .map(|s| s.position)
            .unwrap_or_default()
    }
}

/// The mean of the window.
fn mean(prices: &VecDeque<f64>) -> f64 {
    prices.iter().sum::<f64>() / prices.len() as f64
}

/// z-score of the last price `x` against the window and its `mean`, or None when the deviation is
/// zero. Recomputed from the window on every tick (never a running sum), so a restored window gives
/// exactly the z-scores the uninterrupted run gave.
fn z_score(prices: &VecDeque<f64>, mean: f64, x: f64) -> Option<f64> {
    let n = prices.len() as f64;
    let var = prices.iter().map(|p| (p - mean) * (p - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    (sd > f64::EPSILON * mean.abs().max(1.0)).then(|| (x - mean) / sd)
}

/// Whether `position` can change at a price `x` on this side of `mean`, whatever the deviation.
///
/// `z` has the sign of `x − mean` (the deviation is positive whenever `z` exists). Flat, a long
/// entry needs `z <= −entry_z < 0`, so `x` below the mean, and a short entry needs `x` above it:
/// otherwise nothing can happen and the deviation need not be computed. The decision taken when it
/// is computed is unchanged. A non-positive (or NaN) `entry_z`, which configuration refuses, always
/// computes it.
fn may_act(position: MrPosition, p: &MeanReversionParams, x: f64, mean: f64) -> bool {
    match position {
        MrPosition::Flat if p.entry_z > 0.0 => x < mean || (p.allow_short && x > mean),
        _ => true,
    }
}

impl Strategy for MeanReversion {
    fn id(&self) -> &StrategyId {
        &self.id
    }

    fn instruments(&self) -> &[InstrumentToken] {
        self.states.instruments()
    }

    fn save_state(&self) -> serde_json::Value {
        self.states.save()
    }

    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        self.states.restore(state)
    }

    fn on_tick(&mut self, tick: &MarketTick, tick_event_id: EventId) -> Vec<TradingSignal> {
        let p = self.params;
        let Some((x, state)) = self.states.tick_input(tick) else {
            return Vec::new();
        };
        state.prices.push_back(x);
        while state.prices.len() > p.window as usize {
            state.prices.pop_front();
        }
        if state.prices.len() < p.window as usize {
            return Vec::new();
        }
        let mean = mean(&state.prices);
        if !may_act(state.position, &p, x, mean) {
            return Vec::new();
        }
        let Some(z) = z_score(&state.prices, mean, x) else {
            return Vec::new();
        };
        let (side, next, why) = match state.position {
            MrPosition::Flat if z <= -p.entry_z => (Side::Buy, MrPosition::Long, "entry long"),
            MrPosition::Flat if p.allow_short && z >= p.entry_z => {
                (Side::Sell, MrPosition::Short, "entry short")
            }
            MrPosition::Long if z >= -p.exit_z => (Side::Sell, MrPosition::Flat, "exit long"),
            MrPosition::Short if z <= p.exit_z => (Side::Buy, MrPosition::Flat, "exit short"),
            _ => return Vec::new(),
        };
        state.position = next;
        // `mean_reversion entry long: z -2.104 over 20 prices (entry ±2, exit 0)`.
        let mut reason = String::with_capacity(32 + self.reason_tail.len());
        reason.push_str("mean_reversion ");
        reason.push_str(why);
        reason.push_str(": z ");
        push_fixed(&mut reason, z, 3);
        reason.push_str(&self.reason_tail);
        let held = i64::from(p.quantity);
        let target = match next {
            MrPosition::Long => held,
            MrPosition::Flat => 0,
            MrPosition::Short => -held,
        };
        vec![market_signal(
            &self.id,
            tick,
            tick_event_id,
            side,
            p.quantity,
            target,
            reason,
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::tick;
    use rust_decimal::Decimal;

    fn strategy(allow_short: bool) -> MeanReversion {
        MeanReversion::new(
            StrategyId::new("mr_test").unwrap(),
            vec![InstrumentToken(408065)],
            MeanReversionParams {
                window: 5,
                entry_z: 1.5,
                exit_z: 0.0,
                quantity: 2,
                allow_short,
            },
        )
    }

    fn feed(s: &mut MeanReversion, prices: &[i64]) -> Vec<(usize, Side)> {
        let mut out = Vec::new();
        for (i, p) in prices.iter().enumerate() {
            for sig in s.on_tick(
                &tick(408065, Decimal::from(*p), i as i64),
                EventId::new_root(),
            ) {
                assert_eq!(sig.quantity.0, 2);
                out.push((i + 1, sig.side));
            }
        }
        out
    }

    #[test]
    fn waits_for_a_full_window_and_a_nonzero_deviation() {
        let mut s = strategy(false);
        assert!(feed(&mut s, &[100, 100, 100, 100, 100, 100]).is_empty());
    }

    #[test]
    fn buys_a_drop_and_sells_on_the_return_to_the_mean() {
        let mut s = strategy(false);
        // Window of 5: [100,100,100,100,90] → z of 90 = -2.0 → BUY at tick 5.
        // Then 100 brings z above 0 → SELL.
        let got = feed(&mut s, &[100, 100, 100, 100, 90, 92, 100]);
        assert_eq!(got, vec![(5, Side::Buy), (7, Side::Sell)]);
        assert_eq!(s.position(InstrumentToken(408065)), MrPosition::Flat);
    }

    /// The strategy as first written (the z-score of every full window, no shortcut), over one
    /// instrument's prices: (tick number, side, reason) of every signal.
    fn reference(prices: &[Decimal], p: MeanReversionParams) -> Vec<(usize, Side, String)> {
        let mut window = VecDeque::new();
        let mut position = MrPosition::Flat;
        let mut out = Vec::new();
        for (i, price) in prices.iter().enumerate() {
            let x = rust_decimal::prelude::ToPrimitive::to_f64(price).unwrap();
            window.push_back(x);
            while window.len() > p.window as usize {
                window.pop_front();
            }
            if window.len() < p.window as usize {
                continue;
            }
            let n = window.len() as f64;
            let mean = window.iter().sum::<f64>() / n;
            let var = window.iter().map(|p| (p - mean) * (p - mean)).sum::<f64>() / n;
            let sd = var.sqrt();
            if sd <= f64::EPSILON * mean.abs().max(1.0) {
                continue;
            }
            let z = (x - mean) / sd;
            let (side, next, why) = match position {
                MrPosition::Flat if z <= -p.entry_z => (Side::Buy, MrPosition::Long, "entry long"),
                MrPosition::Flat if p.allow_short && z >= p.entry_z => {
                    (Side::Sell, MrPosition::Short, "entry short")
                }
                MrPosition::Long if z >= -p.exit_z => (Side::Sell, MrPosition::Flat, "exit long"),
                MrPosition::Short if z <= p.exit_z => (Side::Buy, MrPosition::Flat, "exit short"),
                _ => continue,
            };
            position = next;
            let mut z_text = String::new();
            push_fixed(&mut z_text, z, 3);
            let reason = format!(
                "mean_reversion {why}: z {z_text} over {} prices (entry ±{}, exit {})",
                p.window, p.entry_z, p.exit_z
            );
            assert_eq!(z_text, format!("{z:.3}"), "readable like before");
            out.push((i + 1, side, reason));
        }
        out
    }

    #[test]
    fn skipping_the_deviation_never_changes_a_decision() {
        let params = [
            MeanReversionParams::default(),
            MeanReversionParams {
                allow_short: true,
                ..MeanReversionParams::default()
            },
            MeanReversionParams {
                window: 5,
                entry_z: 1.2,
                exit_z: 0.5,
                quantity: 1,
                allow_short: true,
            },
        ];
        // A deterministic, mean-reverting walk on the 0.05 grid with flat stretches.
        let mut prices = Vec::new();
        let mut p = Decimal::new(150_000, 2);
        let mut seed = 0x2545_f491_u64;
        for i in 0..5_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let step = if (i / 400) % 3 == 2 {
                0
            } else {
                (seed % 21) as i64 - 10
            };
            p += Decimal::new(step * 5, 2);
            prices.push(p);
        }
        for params in params {
            let mut s = MeanReversion::new(
                StrategyId::new("mr_test").unwrap(),
                vec![InstrumentToken(408065)],
                params,
            );
            let mut got = Vec::new();
            for (i, price) in prices.iter().enumerate() {
                for sig in s.on_tick(&tick(408065, *price, i as i64), EventId::new_root()) {
                    got.push((i + 1, sig.side, sig.reason));
                }
            }
            let want = reference(&prices, params);
            assert!(want.len() > 20, "{params:?}: only {} signals", want.len());
            assert_eq!(got, want, "{params:?}");
        }
    }

    #[test]
    fn long_only_ignores_spikes_but_shorting_trades_them() {
        let prices = [100, 100, 100, 100, 110, 108, 100];
        assert!(feed(&mut strategy(false), &prices).is_empty());
        let got = feed(&mut strategy(true), &prices);
        assert_eq!(got, vec![(5, Side::Sell), (7, Side::Buy)]);
    }
}
