//! `ema_cross`: the reference EMA crossover strategy, implemented exactly as ARCHITECTURE §6 defines it.
//!
//! One state per instrument. On each tick of that instrument, `x` is the last price as an `f64`
//! (indicators may use floats; money never does). For each of `fast` and `slow`, with
//! `alpha = 2/(period+1)`: on the instrument's first tick `ema = x` and then the update is applied
//! once more; on every tick the update is `ema = alpha*x + (1.0-alpha)*ema`, in exactly that form.
//! Ticks are counted and the strategy acts only from the `slow`-th tick on (inclusive): fast above
//! slow while flat → BUY `quantity` at MARKET (now long); fast below slow while long → SELL
//! `quantity` (now flat); equal → nothing. Long/flat only; nothing is flattened at the end.
//!
//! Ticks with a non-positive last price are not trades and are ignored (they neither update the
//! indicators nor count).

use alpha_panda_core::{EventId, InstrumentToken, MarketTick, Side, StrategyId, TradingSignal};
use serde::{Deserialize, Serialize};

use super::states::InstrumentStates;
use super::{market_signal, push_digits, push_fixed, Strategy};

/// Parameters of `ema_cross`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmaCrossParams {
    /// Fast EMA period (default 10).
    pub fast: u32,
    /// Slow EMA period (default 30); must exceed `fast`.
    pub slow: u32,
    /// Units per order (default 1).
    pub quantity: u32,
}

impl Default for EmaCrossParams {
    fn default() -> Self {
        Self {
            fast: 10,
            slow: 30,
            quantity: 1,
        }
    }
}

/// Per-instrument indicator state.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EmaState {
    /// Fast EMA.
    pub fast_ema: f64,
    /// Slow EMA.
    pub slow_ema: f64,
    /// Ticks seen.
    pub ticks: u64,
    /// Whether the strategy is long.
    pub long: bool,
}

/// The `ema_cross` strategy.
#[derive(Debug, Clone)]
pub struct EmaCross {
    id: StrategyId,
    params: EmaCrossParams,
    /// `alpha(fast)` and `alpha(slow)`, computed once (the same values every tick would compute).
    alpha_fast: f64,
    alpha_slow: f64,
    /// The constant parts of a signal's reason: `ema_cross: fast EMA(10) ` and `slow EMA(30) `.
    reason_fast: String,
    reason_slow: String,
    states: InstrumentStates<EmaState>,
}

impl EmaCross {
    /// A new strategy. Parameters are validated by [`super::build_strategy`]; this constructor
    /// trusts them (`fast < slow`, positive periods and quantity).
    pub fn new(id: StrategyId, instruments: Vec<InstrumentToken>, params: EmaCrossParams) -> Self {
        Self {
            id,
            alpha_fast: alpha(params.fast),
            alpha_slow: alpha(params.slow),
            reason_fast: format!("ema_cross: fast EMA({}) ", params.fast),
            reason_slow: format!("slow EMA({}) ", params.slow),
            params,
            states: InstrumentStates::new(instruments),
        }
    }

    /// The parameters.
    pub fn params(&self) -> EmaCrossParams {
        self.params
    }

    /// The indicator state of `token`, if it has seen a tick.
    pub fn state(&self, token: InstrumentToken) -> Option<&EmaState> {
        self.states.get(token)
    }
}

/// `ema = alpha*x + (1.0-alpha)*ema`, in exactly that form.
fn ema_update(alpha: f64, x: f64, ema: f64) -> f64 {
    alpha * x + (1.0 - alpha) * ema
}

/// `2/(period+1)`.
fn alpha(period: u32) -> f64 {
    2.0 / (f64::from(period) + 1.0)
}

impl Strategy for EmaCross {
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
        let Some((x, state)) = self.states.tick_input(tick) else {
            return Vec::new();
        };
        let (alpha_fast, alpha_slow) = (self.alpha_fast, self.alpha_slow);
        if state.ticks == 0 {
            state.fast_ema = x;
            state.slow_ema = x;
        }
        state.fast_ema = ema_update(alpha_fast, x, state.fast_ema);
        state.slow_ema = ema_update(alpha_slow, x, state.slow_ema);
        state.ticks += 1;
        if state.ticks < u64::from(self.params.slow) {
            return Vec::new();
        }
        let side = if state.fast_ema > state.slow_ema && !state.long {
            state.long = true;
            Side::Buy
        } else if state.fast_ema < state.slow_ema && state.long {
            state.long = false;
            Side::Sell
        } else {
            return Vec::new();
        };
        // `ema_cross: fast EMA(10) 2501.3127 crossed above slow EMA(30) 2500.9981 at tick 31`,
        // assembled by hand: a signal is emitted every few dozen ticks per instrument.
        let mut reason = String::with_capacity(96);
        reason.push_str(&self.reason_fast);
        push_fixed(&mut reason, state.fast_ema, 4);
        reason.push_str(if side == Side::Buy {
            " crossed above "
        } else {
            " crossed below "
        });
        reason.push_str(&self.reason_slow);
        push_fixed(&mut reason, state.slow_ema, 4);
        reason.push_str(" at tick ");
        push_digits(&mut reason, state.ticks, 1);
        // Long/flat: a buy wants `quantity` units held, a sell wants none.
        let target = match side {
            Side::Buy => i64::from(self.params.quantity),
            Side::Sell => 0,
        };
        vec![market_signal(
            &self.id,
            tick,
            tick_event_id,
            side,
            self.params.quantity,
            target,
            reason,
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::tick;
    use alpha_panda_core::OrderType;
    use rust_decimal::prelude::ToPrimitive;
    use rust_decimal::Decimal;

    fn strategy(fast: u32, slow: u32) -> EmaCross {
        EmaCross::new(
            StrategyId::new("ema_test").unwrap(),
            vec![InstrumentToken(738561)],
            EmaCrossParams {
                fast,
                slow,
                quantity: 1,
            },
        )
    }

    /// An independent transcription of the §6 definition over a price list: returns (tick number,
    /// side) of every signal.
    fn reference(prices: &[f64], fast: u32, slow: u32) -> Vec<(usize, Side)> {
        let af = 2.0 / (fast as f64 + 1.0);
        let a_s = 2.0 / (slow as f64 + 1.0);
        let (mut f, mut s, mut long) = (0.0_f64, 0.0_f64, false);
        let mut out = Vec::new();
        for (i, &x) in prices.iter().enumerate() {
            if i == 0 {
                f = x;
                s = x;
            }
            f = af * x + (1.0 - af) * f;
            s = a_s * x + (1.0 - a_s) * s;
            if i + 1 >= slow as usize {
                if f > s && !long {
                    long = true;
                    out.push((i + 1, Side::Buy));
                } else if f < s && long {
                    long = false;
                    out.push((i + 1, Side::Sell));
                }
            }
        }
        out
    }

    #[test]
    fn first_tick_seeds_then_updates_once() {
        let mut s = strategy(3, 5);
        let out = s.on_tick(&tick(738561, Decimal::from(100), 0), EventId::new_root());
        assert!(out.is_empty());
        let st = s.state(InstrumentToken(738561)).unwrap();
        // ema = x, then alpha*x + (1-alpha)*x == x.
        assert_eq!(st.fast_ema, 0.5 * 100.0 + (1.0 - 0.5) * 100.0);
        assert_eq!(st.ticks, 1);
    }

    #[test]
    fn acts_only_from_the_slow_th_tick_and_alternates_buy_sell() {
        let mut s = strategy(2, 4);
        let prices = [100, 101, 102, 103, 104, 103, 101, 99, 98, 100, 103, 106];
        let mut signals = Vec::new();
        for (i, p) in prices.iter().enumerate() {
            let id = EventId::new_root();
            for sig in s.on_tick(&tick(738561, Decimal::from(*p), i as i64), id) {
                assert_eq!(sig.tick.event_id, id);
                assert_eq!(sig.tick.last_price.0, Decimal::from(*p));
                assert_eq!(sig.order_type, OrderType::Market);
                signals.push((i + 1, sig.side));
            }
        }
        // Rising from the start: the first possible action is tick 4 (slow), a BUY.
        assert_eq!(signals.first(), Some(&(4, Side::Buy)));
        let floats: Vec<f64> = prices.iter().map(|p| *p as f64).collect();
        assert_eq!(signals, reference(&floats, 2, 4));
        assert!(signals.windows(2).all(|w| w[0].1 != w[1].1));
    }

    #[test]
    fn matches_the_reference_on_a_long_decimal_series_with_defaults() {
        let mut s = strategy(10, 30);
        let mut prices = Vec::new();
        let mut p = Decimal::new(250000, 2);
        for i in 0..600i64 {
            // Deterministic zig-zag with drift changes on a 0.05 grid.
            let step = Decimal::new(((i * 37) % 23 - 11) * 5, 2)
                + if (i / 90) % 2 == 0 {
                    Decimal::new(10, 2)
                } else {
                    Decimal::new(-10, 2)
                };
            p += step;
            prices.push(p);
        }
        let mut got = Vec::new();
        for (i, price) in prices.iter().enumerate() {
            for sig in s.on_tick(&tick(738561, *price, i as i64), EventId::new_root()) {
                got.push((i + 1, sig.side));
            }
        }
        let floats: Vec<f64> = prices.iter().map(|d| d.to_f64().unwrap()).collect();
        let want = reference(&floats, 10, 30);
        assert!(!want.is_empty());
        assert_eq!(got, want);
    }

    #[test]
    fn the_reason_reads_like_the_exact_format() {
        let mut s = strategy(2, 4);
        let prices = [
            "100.05", "101.10", "102.35", "103.40", "104.45", "103.20", "101.05", "99.95", "98.40",
        ];
        let mut reasons = Vec::new();
        for (i, p) in prices.iter().enumerate() {
            for sig in s.on_tick(
                &tick(738561, p.parse().unwrap(), i as i64),
                EventId::new_root(),
            ) {
                let st = s.state(InstrumentToken(738561)).unwrap();
                let before = format!(
                    "ema_cross: fast EMA(2) {:.4} {} slow EMA(4) {:.4} at tick {}",
                    st.fast_ema,
                    if sig.side == Side::Buy {
                        "crossed above"
                    } else {
                        "crossed below"
                    },
                    st.slow_ema,
                    st.ticks
                );
                assert_eq!(sig.reason, before);
                reasons.push(sig.reason);
            }
        }
        assert_eq!(
            reasons,
            [
                "ema_cross: fast EMA(2) 102.8722 crossed above slow EMA(4) 102.0932 at tick 4",
                "ema_cross: fast EMA(2) 101.8471 crossed below slow EMA(4) 102.2809 at tick 7",
            ]
        );
    }

    #[test]
    fn state_saves_as_a_token_ordered_map_and_restores() {
        let mut s = EmaCross::new(
            StrategyId::new("ema_test").unwrap(),
            vec![InstrumentToken(408065), InstrumentToken(738561)],
            EmaCrossParams::default(),
        );
        for i in 0..40 {
            let price = Decimal::new(250_000 + (i * 7 % 13) * 5, 2);
            s.on_tick(&tick(738561, price, i), EventId::new_root());
            s.on_tick(&tick(408065, price, i), EventId::new_root());
        }
        let saved = s.save_state();
        let plain: std::collections::BTreeMap<InstrumentToken, EmaState> = [408065, 738561]
            .into_iter()
            .map(|t| (InstrumentToken(t), *s.state(InstrumentToken(t)).unwrap()))
            .collect();
        assert_eq!(saved, serde_json::to_value(&plain).unwrap());
        let mut restored = strategy(10, 30);
        restored.restore_state(saved.clone()).unwrap();
        assert_eq!(restored.save_state(), saved);
        assert_eq!(
            restored.state(InstrumentToken(738561)),
            s.state(InstrumentToken(738561))
        );
    }

    #[test]
    fn ignores_other_instruments_and_keeps_state_per_instrument() {
        let mut s = strategy(2, 3);
        assert!(s
            .on_tick(&tick(999, Decimal::from(5), 0), EventId::new_root())
            .is_empty());
        assert!(s.state(InstrumentToken(999)).is_none());
    }

    #[test]
    fn equal_emas_do_nothing() {
        let mut s = strategy(2, 3);
        for i in 0..10 {
            assert!(s
                .on_tick(&tick(738561, Decimal::from(100), i), EventId::new_root())
                .is_empty());
        }
    }
}
