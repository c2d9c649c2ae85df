//! The risk manager's state: positions from fills only, daily counters keyed by IST trading day, and
//! last traded prices. Serializable so it can be checkpointed with the offsets it reflects.
//!
//! Daily counters hold only the current trading day: the first update with a later day starts a new
//! count, and reads for any other day see zero. The daily PnL of a portfolio (one per strategy in this
//! broker namespace) is the realized PnL of the day's fills minus their fees, by the same average-cost
//! rule the portfolio manager uses.

use std::collections::BTreeMap;

use alpha_panda_core::{InstrumentToken, OrderFilled, Price, StrategyId};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::portfolio_manager::apply_fill_to_position;

/// A position as the risk manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RiskPosition {
    /// Signed quantity.
    pub quantity: i64,
    /// Average entry price.
    pub average_price: Decimal,
}

/// A counter of one trading day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCounter<T> {
    /// The IST trading day it counts.
    pub day: NaiveDate,
    /// The value.
    pub value: T,
}

/// Everything the rules read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RiskState {
    /// Positions per strategy and instrument, built from fills only.
    pub positions: BTreeMap<StrategyId, BTreeMap<InstrumentToken, RiskPosition>>,
    /// Approved orders per strategy on the current trading day.
    pub daily_trades: BTreeMap<StrategyId, DailyCounter<u32>>,
    /// Realized PnL net of fees per strategy (portfolio) on the current trading day.
    pub daily_realized_pnl: BTreeMap<StrategyId, DailyCounter<Decimal>>,
    /// Last traded price per instrument.
    pub last_prices: BTreeMap<InstrumentToken, Price>,
}

impl RiskState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a fill to the strategy's position and to its daily PnL for `trading_day` (the IST day
    /// of the fill).
    pub fn apply_fill(&mut self, fill: &OrderFilled, trading_day: NaiveDate) {
        let position = self
            .positions
            .entry(fill.strategy_id.clone())
            .or_default()
            .entry(fill.instrument_token)
            .or_default();
        let effect = apply_fill_to_position(
            position.quantity,
            position.average_price,
            fill.side.sign(),
            fill.quantity.as_i64(),
            fill.fill_price.0,
        );
        position.quantity = effect.quantity;
        position.average_price = effect.average_price;
        let pnl = self
            .daily_realized_pnl
            .entry(fill.strategy_id.clone())
            .or_insert(DailyCounter {
                day: trading_day,
                value: Decimal::ZERO,
            });
        if pnl.day != trading_day {
            if trading_day < pnl.day {
                // A late fill of an earlier day no longer affects today's kill switch.
                return;
            }
            *pnl = DailyCounter {
                day: trading_day,
                value: Decimal::ZERO,
            };
        }
        pnl.value += effect.realized - fill.fees.total.0;
    }

    /// Records the last traded price of `token`.
    pub fn on_tick(&mut self, token: InstrumentToken, price: Price) {
        self.last_prices.insert(token, price);
    }

    /// Counts one approved order of `strategy` on `trading_day`.
    pub fn record_approved(&mut self, strategy: &StrategyId, trading_day: NaiveDate) {
        let counter = self
            .daily_trades
            .entry(strategy.clone())
            .or_insert(DailyCounter {
                day: trading_day,
                value: 0,
            });
        if counter.day < trading_day {
            *counter = DailyCounter {
                day: trading_day,
                value: 0,
            };
        }
        if counter.day == trading_day {
            counter.value = counter.value.saturating_add(1);
        }
    }

    /// The signed position of `strategy` in `token`.
    pub fn position(&self, strategy: &StrategyId, token: InstrumentToken) -> i64 {
        self.positions
            .get(strategy)
            .and_then(|m| m.get(&token))
            .map_or(0, |p| p.quantity)
    }

    /// Orders approved for `strategy` on `trading_day`.
    pub fn trades_on(&self, strategy: &StrategyId, trading_day: NaiveDate) -> u32 {
        self.daily_trades
            .get(strategy)
            .filter(|c| c.day == trading_day)
            .map_or(0, |c| c.value)
    }

    /// Realized PnL net of fees of `strategy` on `trading_day`.
    pub fn realized_pnl_on(&self, strategy: &StrategyId, trading_day: NaiveDate) -> Decimal {
        self.daily_realized_pnl
            .get(strategy)
            .filter(|c| c.day == trading_day)
            .map_or(Decimal::ZERO, |c| c.value)
    }

    /// The last traded price of `token`.
    pub fn last_price(&self, token: InstrumentToken) -> Option<Price> {
        self.last_prices.get(&token).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk_manager::rules::test_support::{day, fill};
    use alpha_panda_core::Side;
    use rust_decimal_macros::dec;

    #[test]
    fn positions_and_daily_pnl_come_from_fills() {
        let mut s = RiskState::new();
        let sid = StrategyId::new("s1").unwrap();
        s.apply_fill(&fill(Side::Buy, 10, dec!(100), dec!(1)), day(21));
        s.apply_fill(&fill(Side::Sell, 4, dec!(90), dec!(1)), day(21));
        assert_eq!(s.position(&sid, InstrumentToken(738561)), 6);
        assert_eq!(s.realized_pnl_on(&sid, day(21)), dec!(-42));
        // A new day starts from zero; an old day's late fill does not touch it.
        s.apply_fill(&fill(Side::Sell, 1, dec!(110), dec!(0)), day(24));
        assert_eq!(s.realized_pnl_on(&sid, day(24)), dec!(10));
        s.apply_fill(&fill(Side::Sell, 1, dec!(110), dec!(0)), day(21));
        assert_eq!(s.realized_pnl_on(&sid, day(24)), dec!(10));
        assert_eq!(s.realized_pnl_on(&sid, day(21)), Decimal::ZERO);
        assert_eq!(s.position(&sid, InstrumentToken(738561)), 4);
    }

    #[test]
    fn daily_trades_reset_per_trading_day_and_state_round_trips() {
        let mut s = RiskState::new();
        let sid = StrategyId::new("s1").unwrap();
        s.record_approved(&sid, day(21));
        s.record_approved(&sid, day(21));
        assert_eq!(s.trades_on(&sid, day(21)), 2);
        s.record_approved(&sid, day(24));
        assert_eq!(s.trades_on(&sid, day(24)), 1);
        assert_eq!(s.trades_on(&sid, day(21)), 0);
        s.on_tick(InstrumentToken(738561), Price(dec!(101.5)));
        s.apply_fill(&fill(Side::Buy, 3, dec!(100), dec!(0)), day(24));
        let json = serde_json::to_string(&s).unwrap();
        let back: RiskState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
