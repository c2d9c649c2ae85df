//! The risk manager's state: positions from fills, orders approved and still in flight, the ids of
//! the fills applied, daily counters keyed by IST trading day, and last traded prices. Serializable so it can be checkpointed with the offsets it reflects.
//!
//! Daily counters hold only the current trading day: the first update with a later day starts a new
//! count, and reads for any other day see zero. The daily PnL of a portfolio (one per strategy in this
//! broker namespace) is the realized PnL of the day's fills minus their fees, by the same average-cost
//! rule the portfolio manager uses.

use std::collections::BTreeMap;

use alpha_panda_core::{
    EventId, InstrumentToken, OrderFilled, OrderId, Price, StrategyId, TradingSignal,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// Orders approved and not yet filled or failed, by the order id the trading engine gives them.
    #[serde(default)]
    pub in_flight: BTreeMap<OrderId, InFlightOrder>,
    /// Ids of the fills applied, by the IST day of the fill, for [`FILL_MEMORY_DAYS`] days: a fill
    /// re-sent after a restart is recognised whatever the dedup store forgot.
    #[serde(default)]
    pub applied_fills: BTreeMap<NaiveDate, FillIds>,
    /// The latest trading day [`RiskState::roll_to`] rolled to.
    #[serde(default)]
    pub rolled_to: Option<NaiveDate>,
    /// Units filled per order (signed), with the IST day of its last fill, for
    /// [`FILL_MEMORY_DAYS`] days: what a signal judged again after a restart already got.
    #[serde(default, serialize_with = "sorted_by_key")]
    pub filled_by_order: FxHashMap<OrderId, (i64, NaiveDate)>,
    /// Signals that wait for an order of the other side to finish (at most one per strategy and
    /// instrument: a newer one supersedes it).
    #[serde(default)]
    pub deferred: Vec<DeferredSignal>,
}

/// A raw signal judged only once the opposite order in flight is filled or failed: sized against
/// that order now, it would overshoot its target if the order failed (a sell sized against a buy
/// that never fills would open a short).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredSignal {
    /// The raw signal.
    pub signal: TradingSignal,
    /// Its event id.
    pub signal_event_id: EventId,
}

/// The ids of the fills of one trading day. Every fill asks each remembered day whether it knows
/// the fill, so the ids are hashed rather than ordered; they are written sorted, so the same state
/// is always checkpointed as the same bytes (and reads what an ordered set wrote).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FillIds(FxHashSet<EventId>);

impl FillIds {
    /// Whether the fill `id` is among them.
    pub fn contains(&self, id: &EventId) -> bool {
        self.0.contains(id)
    }

    /// Adds the fill `id`.
    pub fn insert(&mut self, id: EventId) -> bool {
        self.0.insert(id)
    }
}

impl Serialize for FillIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut ids: Vec<&EventId> = self.0.iter().collect();
        ids.sort_unstable();
        serializer.collect_seq(ids)
    }
}

impl<'de> Deserialize<'de> for FillIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<EventId>::deserialize(deserializer).map(|ids| Self(ids.into_iter().collect()))
    }
}

/// A hashed map written in the order of its keys, so the same state is the same bytes.
fn sorted_by_key<K: Ord + Serialize, V: Serialize, S: Serializer>(
    map: &FxHashMap<K, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

/// How many days of applied fill ids the state keeps (as long as the dedup store's default TTL).
pub const FILL_MEMORY_DAYS: u64 = 7;

/// An approved order not yet complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightOrder {
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Units still to fill, signed (+ buy, − sell).
    pub remaining: i64,
    /// Whether it may end without filling (any Zerodha order, a LIMIT order); a paper MARKET order
    /// fills at the tick that caused it, always.
    #[serde(default)]
    pub may_fail: bool,
    /// The IST trading day it was approved on: an order does not outlive its day.
    pub day: NaiveDate,
}

impl RiskState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the fill `fill_id` to the strategy's position, to its order in flight and to its
    /// daily PnL for `trading_day` (the IST day of the fill); `false`, changing nothing, when that
    /// fill was applied before.
    pub fn apply_fill(
        &mut self,
        fill_id: EventId,
        fill: &OrderFilled,
        trading_day: NaiveDate,
    ) -> bool {
        if self
            .applied_fills
            .values()
            .any(|ids| ids.contains(&fill_id))
        {
            return false;
        }
        self.applied_fills
            .entry(trading_day)
            .or_default()
            .insert(fill_id);
        let filled = fill.side.sign() * fill.quantity.as_i64();
        let by_order = self
            .filled_by_order
            .entry(fill.order_id.clone())
            .or_insert((0, trading_day));
        by_order.0 += filled;
        by_order.1 = by_order.1.max(trading_day);
        if let Some(order) = self.in_flight.get_mut(&fill.order_id) {
            // Never past zero: an overfill (or a fill of the other side) completes the order.
            order.remaining = if order.remaining.signum() == filled.signum()
                && order.remaining.abs() > filled.abs()
            {
                order.remaining - filled
            } else {
                0
            };
            if order.remaining == 0 {
                self.in_flight.remove(&fill.order_id);
            }
        }
        self.apply_fill_to_books(fill, trading_day);
        true
    }

    fn apply_fill_to_books(&mut self, fill: &OrderFilled, trading_day: NaiveDate) {
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

    /// An approved order of `remaining` signed units goes out as `order_id` on `trading_day`.
    pub fn record_in_flight(
        &mut self,
        order_id: OrderId,
        strategy_id: &StrategyId,
        instrument_token: InstrumentToken,
        remaining: i64,
        may_fail: bool,
        trading_day: NaiveDate,
    ) {
        self.in_flight.insert(
            order_id,
            InFlightOrder {
                strategy_id: strategy_id.clone(),
                instrument_token,
                remaining,
                may_fail,
                day: trading_day,
            },
        );
    }

    /// The order `order_id` failed: what it had not filled is no longer in flight.
    pub fn order_failed(&mut self, order_id: &OrderId) -> bool {
        self.in_flight.remove(order_id).is_some()
    }

    /// Forgets what `trading_day` no longer needs: orders in flight from earlier days (a day order
    /// that was never reported complete is gone at the close) and fill ids older than
    /// [`FILL_MEMORY_DAYS`]. `true` when anything was dropped.
    pub fn roll_to(&mut self, trading_day: NaiveDate) -> bool {
        // Every signal and fill asks; the maps are walked once per new day, not once per ask
        // (walking them each time made a day's fills quadratic).
        if self.rolled_to.is_some_and(|day| day >= trading_day) {
            return false;
        }
        self.rolled_to = Some(trading_day);
        let before = (self.in_flight.len(), self.applied_fills.len());
        self.in_flight.retain(|_, order| order.day >= trading_day);
        if let Some(oldest) = trading_day.checked_sub_days(chrono::Days::new(FILL_MEMORY_DAYS)) {
            self.applied_fills = self.applied_fills.split_off(&oldest);
            self.filled_by_order.retain(|_, (_, day)| *day >= oldest);
        }
        before != (self.in_flight.len(), self.applied_fills.len())
    }

    /// Units filled so far of `order_id`, signed (0 when none, or forgotten).
    pub fn filled_of(&self, order_id: &OrderId) -> i64 {
        self.filled_by_order
            .get(order_id)
            .map_or(0, |(filled, _)| *filled)
    }

    /// Units of `strategy`'s orders in `token` in flight that may still fail: (buys, sells), the
    /// sells negative.
    pub fn may_fail_by_side(&self, strategy: &StrategyId, token: InstrumentToken) -> (i64, i64) {
        self.in_flight
            .values()
            .filter(|o| o.may_fail && o.instrument_token == token && &o.strategy_id == strategy)
            .fold((0, 0), |(buys, sells), o| {
                if o.remaining > 0 {
                    (buys + o.remaining, sells)
                } else {
                    (buys, sells + o.remaining)
                }
            })
    }

    /// Holds `signal` until the opposite order in flight is done; the signal it supersedes, if
    /// any, is handed back.
    pub fn defer(
        &mut self,
        signal: TradingSignal,
        signal_event_id: EventId,
    ) -> Option<DeferredSignal> {
        let superseded = self.take_deferred(&signal.strategy_id, signal.instrument_token);
        self.deferred.push(DeferredSignal {
            signal,
            signal_event_id,
        });
        superseded
    }

    /// The signal waiting for `strategy` in `token`, taken out.
    pub fn take_deferred(
        &mut self,
        strategy: &StrategyId,
        token: InstrumentToken,
    ) -> Option<DeferredSignal> {
        let index = self.deferred.iter().position(|d| {
            d.signal.instrument_token == token && &d.signal.strategy_id == strategy
        })?;
        Some(self.deferred.remove(index))
    }

    /// Units of `strategy`'s orders in `token` approved and not yet filled, signed.
    pub fn in_flight(&self, strategy: &StrategyId, token: InstrumentToken) -> i64 {
        self.in_flight
            .values()
            .filter(|o| o.instrument_token == token && &o.strategy_id == strategy)
            .map(|o| o.remaining)
            .sum()
    }

    /// What `strategy` holds in `token` once its orders in flight fill: the position the rules
    /// judge an order against.
    pub fn exposure(&self, strategy: &StrategyId, token: InstrumentToken) -> i64 {
        self.position(strategy, token) + self.in_flight(strategy, token)
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
        s.apply_fill(
            EventId::new_root(),
            &fill(Side::Buy, 10, dec!(100), dec!(1)),
            day(21),
        );
        s.apply_fill(
            EventId::new_root(),
            &fill(Side::Sell, 4, dec!(90), dec!(1)),
            day(21),
        );
        assert_eq!(s.position(&sid, InstrumentToken(738561)), 6);
        assert_eq!(s.realized_pnl_on(&sid, day(21)), dec!(-42));
        // A new day starts from zero; an old day's late fill does not touch it.
        s.apply_fill(
            EventId::new_root(),
            &fill(Side::Sell, 1, dec!(110), dec!(0)),
            day(24),
        );
        assert_eq!(s.realized_pnl_on(&sid, day(24)), dec!(10));
        s.apply_fill(
            EventId::new_root(),
            &fill(Side::Sell, 1, dec!(110), dec!(0)),
            day(21),
        );
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
        s.apply_fill(
            EventId::new_root(),
            &fill(Side::Buy, 3, dec!(100), dec!(0)),
            day(24),
        );
        let json = serde_json::to_string(&s).unwrap();
        let back: RiskState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn fill_ids_are_written_sorted_and_a_fill_is_applied_once() {
        // Ids made out of order: a hashed set would write them in any order.
        let ids: Vec<EventId> = [9u8, 3, 7, 1, 5]
            .iter()
            .map(|n| EventId(uuid::Uuid::from_bytes([*n; 16])))
            .collect();
        let mut s = RiskState::new();
        for id in &ids {
            assert!(s.apply_fill(*id, &fill(Side::Buy, 1, dec!(100), dec!(0)), day(21)));
        }
        // The same fill again, whatever day it is told of, changes nothing.
        assert!(!s.apply_fill(ids[2], &fill(Side::Buy, 1, dec!(100), dec!(0)), day(22)));
        assert_eq!(
            s.position(&StrategyId::new("s1").unwrap(), InstrumentToken(738561)),
            5
        );

        let json = serde_json::to_value(&s).unwrap();
        let written: Vec<String> = json["applied_fills"]["2025-11-21"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect();
        let mut sorted = written.clone();
        sorted.sort();
        assert_eq!((written.len(), &written), (5, &sorted));
        // The same state is the same bytes, and reads back equal.
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            serde_json::to_string(&s.clone()).unwrap()
        );
        let back: RiskState = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        assert!(!back
            .clone()
            .apply_fill(ids[4], &fill(Side::Buy, 1, dec!(100), dec!(0)), day(21)));
    }
}
