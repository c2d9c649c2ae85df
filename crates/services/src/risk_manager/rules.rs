//! Evaluating a signal against every risk rule. The result lists EVERY failed rule with its limit and
//! the value the signal would have produced, so a refusal explains itself.
//!
//! Rules, by name:
//! - `instrument_known`: the instrument is in the instruments master (without it, `lot_size` and
//!   `tick_size` cannot be checked and are skipped).
//! - `positive_quantity`: at least one unit.
//! - `lot_size`: quantity is a multiple of the lot size.
//! - `limit_price_present`: a LIMIT signal carries a positive limit price.
//! - `tick_size`: the limit price lies on the tick grid.
//! - `limit_price_band`: the limit price is within `limit_price_band_pct` of the last traded price.
//! - `reference_price`: some positive price is known to value the order.
//! - `max_order_value`: quantity × price (limit price for LIMIT, reference price for MARKET).
//! - `max_position_quantity`, `max_position_value`: the position after the order (orders in flight
//!   counted as filled), checked only when the order adds exposure (an order that only reduces a
//!   position always passes them).
//! - `max_daily_trades`: approved orders of the strategy today (IST) stay within the limit.
//! - `daily_loss_kill_switch`: once the portfolio's realized PnL net of fees today is at or below
//!   `−max_daily_loss`, orders that add exposure are refused; a sell that reduces a long (or a buy
//!   that reduces a short) still passes.
//! - `market_hours`: when `enforce_market_hours`, `now` must be inside the NSE session.
//!
//! The **last traded price** is the price of the signal's own tick (the price the strategy saw, so a
//! replay decides identically whatever the scheduling); only when that is not positive does the
//! state's latest tick of the instrument stand in.

use std::fmt::Write as _;

use alpha_panda_core::calendar;
use alpha_panda_core::{
    Instrument, OrderType, Price, RuleViolation, StrategyId, Timestamp, TradingSignal,
};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::{RiskLimits, RiskState};

/// The risk manager's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskDecision {
    /// Every rule passed.
    Approved,
    /// These rules failed (never empty).
    Rejected(Vec<RuleViolation>),
}

/// The names of the rules [`evaluate`] checks under `limits` (for `ValidatedSignal::rules_checked`).
pub fn rule_names(limits: &RiskLimits) -> Vec<String> {
    let mut names = vec![
        "instrument_known",
        "positive_quantity",
        "lot_size",
        "limit_price_present",
        "tick_size",
        "limit_price_band",
        "reference_price",
        "max_order_value",
        "max_position_quantity",
        "max_position_value",
        "max_daily_trades",
        "daily_loss_kill_switch",
    ];
    if limits.enforce_market_hours {
        names.push("market_hours");
    }
    names.into_iter().map(String::from).collect()
}

fn violation(rule: &str, limit: String, actual: String, message: String) -> RuleViolation {
    RuleViolation {
        rule: rule.to_string(),
        limit,
        actual,
        message,
    }
}

/// The `max_daily_trades` violation. Strategies signal far more often than the daily limit allows,
/// so most refusals carry this one: its texts are appended piece by piece instead of through
/// `format!`, and read exactly as
/// `"strategy {strategy} already has {trades} approved orders on {day}; the limit is {limit}"`.
fn max_daily_trades_violation(
    strategy: &StrategyId,
    trades: u32,
    day: NaiveDate,
    limit: u32,
) -> RuleViolation {
    let strategy = strategy.as_str();
    let mut message = String::with_capacity(strategy.len() + 72);
    message.push_str("strategy ");
    message.push_str(strategy);
    message.push_str(" already has ");
    let _ = write!(message, "{trades}");
    message.push_str(" approved orders on ");
    push_date(&mut message, day);
    message.push_str("; the limit is ");
    let _ = write!(message, "{limit}");
    violation(
        "max_daily_trades",
        limit.to_string(),
        (u64::from(trades) + 1).to_string(),
        message,
    )
}

/// Appends `day` as its `Display` writes it (`YYYY-MM-DD` for years 0 to 9999).
fn push_date(out: &mut String, day: NaiveDate) {
    let year = day.year();
    if !(0..=9999).contains(&year) {
        let _ = write!(out, "{day}");
        return;
    }
    let two = |out: &mut String, n: u32| {
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    let year = year.unsigned_abs();
    two(out, year / 100);
    two(out, year % 100);
    out.push('-');
    two(out, day.month());
    out.push('-');
    two(out, day.day());
}

/// Checks `signal` against every rule. `instrument` is the signal's instrument from the master (None
/// if unknown); `now` is the decision time (market hours, IST trading day of the counters).
pub fn evaluate(
    signal: &TradingSignal,
    state: &RiskState,
    limits: &RiskLimits,
    instrument: Option<&Instrument>,
    now: Timestamp,
) -> RiskDecision {
    let mut v = Vec::new();
    let token = signal.instrument_token;
    let quantity = signal.quantity.0;
    let day = calendar::trading_day(now);

    // Instrument and order shape.
    match instrument {
        None => v.push(violation(
            "instrument_known",
            "present in the instruments master".into(),
            format!("unknown token {token}"),
            format!("instrument {token} is not in the instruments master; refresh instruments or fix the strategy's instrument list"),
        )),
        Some(inst) => {
            if inst.lot_size > 1 && quantity.checked_rem(inst.lot_size) != Some(0) {
                v.push(violation(
                    "lot_size",
                    format!("multiple of {}", inst.lot_size),
                    quantity.to_string(),
                    format!(
                        "quantity {quantity} of {} is not a multiple of its lot size {}",
                        inst.tradingsymbol, inst.lot_size
                    ),
                ));
            }
        }
    }
    if quantity == 0 {
        v.push(violation(
            "positive_quantity",
            ">= 1".into(),
            "0".into(),
            "the signal asks for zero units".into(),
        ));
    }
    let limit_price = match signal.order_type {
        OrderType::Market => None,
        OrderType::Limit => match signal.limit_price {
            Some(p) if p.0 > Decimal::ZERO => Some(p),
            other => {
                v.push(violation(
                    "limit_price_present",
                    "a positive limit price".into(),
                    other.map_or("none".into(), |p| p.0.to_string()),
                    "a LIMIT signal must carry a positive limit price".into(),
                ));
                None
            }
        },
    };
    if let (Some(p), Some(inst)) = (limit_price, instrument) {
        if !p.is_on_tick(inst.tick_size) {
            v.push(violation(
                "tick_size",
                format!("multiple of {}", inst.tick_size),
                p.0.to_string(),
                format!(
                    "limit price {} is not on the {} tick grid of {}",
                    p.0, inst.tick_size, inst.tradingsymbol
                ),
            ));
        }
    }

    // Prices.
    let last_traded = Some(signal.tick.last_price)
        .filter(|p| p.0 > Decimal::ZERO)
        .or_else(|| state.last_price(token).filter(|p| p.0 > Decimal::ZERO));
    if let (Some(p), Some(ltp)) = (limit_price, last_traded) {
        let band = ltp.0 * limits.limit_price_band_pct / Decimal::ONE_HUNDRED;
        let deviation_pct = ((p.0 - ltp.0).abs() * Decimal::ONE_HUNDRED / ltp.0).round_dp(2);
        if (p.0 - ltp.0).abs() > band {
            v.push(violation(
                "limit_price_band",
                format!("±{}% of {}", limits.limit_price_band_pct, ltp.0),
                format!("{} ({}% away)", p.0, deviation_pct),
                format!(
                    "limit price {} is {}% from the last traded price {}, beyond the ±{}% band",
                    p.0, deviation_pct, ltp.0, limits.limit_price_band_pct
                ),
            ));
        }
    }
    let reference: Option<Price> = limit_price.or(last_traded);
    if reference.is_none() {
        v.push(violation(
            "reference_price",
            "a positive last traded price".into(),
            "none".into(),
            format!(
                "no positive price is known for instrument {token}; the order cannot be valued"
            ),
        ));
    }

    if let Some(price) = reference {
        let order_value = price * signal.quantity;
        if order_value > limits.max_order_value {
            v.push(violation(
                "max_order_value",
                limits.max_order_value.to_string(),
                order_value.to_string(),
                format!(
                    "order value {order_value} ({quantity} × {}) exceeds the limit {}",
                    price.0, limits.max_order_value
                ),
            ));
        }
    }

    // Position after the order, counting the orders still in flight as filled.
    let current = state.exposure(&signal.strategy_id, token);
    let after = current + signal.side.sign() * i64::from(quantity);
    let reduces_only = current != 0
        && after.abs() < current.abs()
        && (after == 0 || after.signum() == current.signum());
    if !reduces_only {
        if after.unsigned_abs() > u64::from(limits.max_position_quantity) {
            v.push(violation(
                "max_position_quantity",
                limits.max_position_quantity.to_string(),
                after.to_string(),
                format!(
                    "position would become {after} units (now {current}), beyond ±{}",
                    limits.max_position_quantity
                ),
            ));
        }
        if let Some(price) = reference {
            let value = price.0 * Decimal::from(after.unsigned_abs());
            if value > limits.max_position_value.0 {
                v.push(violation(
                    "max_position_value",
                    limits.max_position_value.to_string(),
                    value.to_string(),
                    format!(
                        "position value would become {value} ({after} × {}), beyond {}",
                        price.0, limits.max_position_value
                    ),
                ));
            }
        }
    }

    // Daily counters.
    let trades = state.trades_on(&signal.strategy_id, day);
    if trades >= limits.max_daily_trades_per_strategy {
        v.push(max_daily_trades_violation(
            &signal.strategy_id,
            trades,
            day,
            limits.max_daily_trades_per_strategy,
        ));
    }
    let realized_today = state.realized_pnl_on(&signal.strategy_id, day);
    if !reduces_only && realized_today <= -limits.max_daily_loss.0 {
        v.push(violation(
            "daily_loss_kill_switch",
            format!("-{}", limits.max_daily_loss),
            realized_today.to_string(),
            format!(
                "kill switch: strategy {} lost {} today (limit {}); only orders that reduce a position are accepted until the next trading day",
                signal.strategy_id, -realized_today, limits.max_daily_loss
            ),
        ));
    }

    // Session.
    if limits.enforce_market_hours && !calendar::is_market_open(now) {
        v.push(violation(
            "market_hours",
            "09:15-15:30 IST on NSE trading days".into(),
            calendar::to_ist(now)
                .format("%Y-%m-%d %H:%M:%S IST")
                .to_string(),
            format!(
                "the NSE session is closed at {}; next open {}",
                calendar::to_ist(now).format("%Y-%m-%d %H:%M:%S IST"),
                calendar::to_ist(calendar::next_session_open(now)).format("%Y-%m-%d %H:%M IST")
            ),
        ));
    }

    if v.is_empty() {
        RiskDecision::Approved
    } else {
        RiskDecision::Rejected(v)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders shared by the risk manager's tests.
    use alpha_panda_core::{
        EventId, ExecutionMode, FeeBreakdown, InstrumentToken, Money, OrderFilled, OrderId,
        OrderType, Price, Quantity, Side, StrategyId, TickRef, Timestamp, TradingSignal,
    };
    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    /// 2025-11-`d`.
    pub fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 11, d).unwrap()
    }

    /// A RELIANCE fill of strategy s1.
    pub fn fill(side: Side, n: u32, price: Decimal, fee: Decimal) -> OrderFilled {
        OrderFilled {
            order_id: OrderId::new("o1").unwrap(),
            broker_order_id: None,
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: InstrumentToken(738561),
            tradingsymbol: None,
            side,
            quantity: Quantity(n),
            fill_price: Price(price),
            fees_source: Default::default(),
            fees: FeeBreakdown {
                total: Money(fee),
                ..FeeBreakdown::default()
            },
            execution_mode: ExecutionMode::Paper,
            filled_at: Timestamp::from_unix_micros(1_763_696_700_000_000).unwrap(),
        }
    }

    /// A RELIANCE signal of strategy s1 caused by a tick at `tick_price`.
    pub fn signal(
        side: Side,
        n: u32,
        order_type: OrderType,
        limit: Option<Decimal>,
        tick_price: Decimal,
    ) -> TradingSignal {
        TradingSignal {
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: InstrumentToken(738561),
            side,
            quantity: Quantity(n),
            target_quantity: side.sign() * i64::from(n),
            order_type,
            limit_price: limit.map(Price),
            reason: "test".into(),
            tick: TickRef {
                instrument_token: InstrumentToken(738561),
                last_price: Price(tick_price),
                exchange_timestamp: Timestamp::from_unix_micros(1_763_696_700_000_000).unwrap(),
                event_id: EventId::new_root(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{day, fill, signal};
    use super::*;
    use crate::market_feed::nse_universe;
    use alpha_panda_core::{Broker, EventId, Instrument, InstrumentToken, Money, Side, StrategyId};
    use chrono::NaiveDate;
    use rust_decimal_macros::dec;

    fn reliance() -> Instrument {
        nse_universe().remove(0)
    }

    /// Friday 21 Nov 2025, 11:00 IST.
    fn open_time() -> Timestamp {
        calendar::from_ist(
            NaiveDate::from_ymd_opt(2025, 11, 21)
                .unwrap()
                .and_hms_opt(11, 0, 0)
                .unwrap(),
        )
    }

    fn limits() -> RiskLimits {
        RiskLimits {
            max_position_quantity: 100,
            max_position_value: Money(dec!(200000)),
            max_order_value: Money(dec!(100000)),
            max_daily_trades_per_strategy: 3,
            max_daily_loss: Money(dec!(1000)),
            limit_price_band_pct: dec!(5),
            enforce_market_hours: true,
        }
    }

    fn rules(d: RiskDecision) -> Vec<String> {
        match d {
            RiskDecision::Approved => vec![],
            RiskDecision::Rejected(v) => {
                assert!(v
                    .iter()
                    .all(|x| !x.limit.is_empty() && !x.actual.is_empty() && !x.message.is_empty()));
                v.into_iter().map(|x| x.rule).collect()
            }
        }
    }

    fn check(sig: &TradingSignal, state: &RiskState, inst: Option<&Instrument>) -> Vec<String> {
        rules(evaluate(sig, state, &limits(), inst, open_time()))
    }

    #[test]
    fn a_plain_market_buy_is_approved() {
        let sig = signal(Side::Buy, 10, OrderType::Market, None, dec!(1450));
        assert_eq!(
            evaluate(
                &sig,
                &RiskState::new(),
                &limits(),
                Some(&reliance()),
                open_time()
            ),
            RiskDecision::Approved
        );
    }

    #[test]
    fn unknown_instrument() {
        let sig = signal(Side::Buy, 1, OrderType::Market, None, dec!(1450));
        assert_eq!(
            check(&sig, &RiskState::new(), None),
            vec!["instrument_known"]
        );
    }

    #[test]
    fn lot_size_and_zero_quantity() {
        let mut lot = reliance();
        lot.lot_size = 25;
        let sig = signal(Side::Buy, 30, OrderType::Market, None, dec!(100));
        assert_eq!(check(&sig, &RiskState::new(), Some(&lot)), vec!["lot_size"]);
        let zero = signal(Side::Buy, 0, OrderType::Market, None, dec!(100));
        assert_eq!(
            check(&zero, &RiskState::new(), Some(&reliance())),
            vec!["positive_quantity"]
        );
    }

    #[test]
    fn limit_price_rules() {
        let missing = signal(Side::Buy, 1, OrderType::Limit, None, dec!(1450));
        assert_eq!(
            check(&missing, &RiskState::new(), Some(&reliance())),
            vec!["limit_price_present"]
        );
        let off_tick = signal(
            Side::Buy,
            1,
            OrderType::Limit,
            Some(dec!(1450.03)),
            dec!(1450),
        );
        assert_eq!(
            check(&off_tick, &RiskState::new(), Some(&reliance())),
            vec!["tick_size"]
        );
        let far = signal(Side::Buy, 1, OrderType::Limit, Some(dec!(1530)), dec!(1450));
        assert_eq!(
            check(&far, &RiskState::new(), Some(&reliance())),
            vec!["limit_price_band"]
        );
        let edge = signal(
            Side::Sell,
            1,
            OrderType::Limit,
            Some(dec!(1377.50)),
            dec!(1450),
        );
        assert!(check(&edge, &RiskState::new(), Some(&reliance())).is_empty());
    }

    #[test]
    fn missing_reference_price_falls_back_to_state_then_fails() {
        let sig = signal(Side::Buy, 1, OrderType::Market, None, dec!(0));
        assert_eq!(
            check(&sig, &RiskState::new(), Some(&reliance())),
            vec!["reference_price"]
        );
        let mut state = RiskState::new();
        state.on_tick(InstrumentToken(738561), Price(dec!(1450)));
        assert!(check(&sig, &state, Some(&reliance())).is_empty());
    }

    #[test]
    fn max_order_value_uses_the_limit_price_for_limit_orders() {
        let sig = signal(Side::Buy, 70, OrderType::Market, None, dec!(1450));
        match evaluate(
            &sig,
            &RiskState::new(),
            &limits(),
            Some(&reliance()),
            open_time(),
        ) {
            RiskDecision::Rejected(v) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].rule, "max_order_value");
                assert_eq!(v[0].limit, "100000");
                assert_eq!(v[0].actual, "101500");
            }
            RiskDecision::Approved => panic!("should be rejected"),
        }
        let lim = signal(
            Side::Buy,
            70,
            OrderType::Limit,
            Some(dec!(1420)),
            dec!(1450),
        );
        assert!(check(&lim, &RiskState::new(), Some(&reliance())).is_empty());
    }

    #[test]
    fn position_limits_apply_to_added_exposure_only() {
        let mut state = RiskState::new();
        for _ in 0..3 {
            state.apply_fill(
                EventId::new_root(),
                &fill(Side::Buy, 40, dec!(1000), dec!(0)),
                day(21),
            );
        }
        let add = signal(Side::Buy, 10, OrderType::Market, None, dec!(1000));
        assert_eq!(
            check(&add, &state, Some(&reliance())),
            vec!["max_position_quantity"]
        );
        let reduce = signal(Side::Sell, 10, OrderType::Market, None, dec!(1000));
        assert!(check(&reduce, &state, Some(&reliance())).is_empty());
        let mut rich = RiskState::new();
        rich.apply_fill(
            EventId::new_root(),
            &fill(Side::Buy, 90, dec!(2000), dec!(0)),
            day(21),
        );
        let more = signal(Side::Buy, 10, OrderType::Market, None, dec!(2100));
        assert_eq!(
            check(&more, &rich, Some(&reliance())),
            vec!["max_position_value"]
        );
    }

    #[test]
    fn daily_trade_count_resets_next_day() {
        let mut state = RiskState::new();
        let sid = StrategyId::new("s1").unwrap();
        for _ in 0..3 {
            state.record_approved(&sid, day(21));
        }
        let sig = signal(Side::Buy, 1, OrderType::Market, None, dec!(1450));
        assert_eq!(
            check(&sig, &state, Some(&reliance())),
            vec!["max_daily_trades"]
        );
        let monday = calendar::from_ist(day(24).and_hms_opt(10, 0, 0).unwrap());
        assert_eq!(
            evaluate(&sig, &state, &limits(), Some(&reliance()), monday),
            RiskDecision::Approved
        );
    }

    #[test]
    fn the_daily_trades_violation_reads_as_formatted() {
        let sid = StrategyId::new("ema_cross:nifty").unwrap();
        let days = [
            day(21),
            NaiveDate::from_ymd_opt(2025, 1, 5).unwrap(),
            NaiveDate::from_ymd_opt(987, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(-3, 7, 9).unwrap(),
        ];
        for d in days {
            for (trades, limit) in [(0, 0), (200, 200), (u32::MAX, 7)] {
                let got = max_daily_trades_violation(&sid, trades, d, limit);
                assert_eq!(
                    got,
                    violation(
                        "max_daily_trades",
                        limit.to_string(),
                        (u64::from(trades) + 1).to_string(),
                        format!(
                            "strategy {sid} already has {trades} approved orders on {d}; the limit is {limit}"
                        ),
                    )
                );
            }
        }
    }

    #[test]
    fn kill_switch_blocks_new_exposure_but_not_reducing_sells() {
        let mut state = RiskState::new();
        state.apply_fill(
            EventId::new_root(),
            &fill(Side::Buy, 20, dec!(1000), dec!(0)),
            day(21),
        );
        state.apply_fill(
            EventId::new_root(),
            &fill(Side::Sell, 10, dec!(900), dec!(5)),
            day(21),
        );
        // Realized −1000 − 5 fees ≤ −1000.
        let buy = signal(Side::Buy, 1, OrderType::Market, None, dec!(900));
        assert_eq!(
            check(&buy, &state, Some(&reliance())),
            vec!["daily_loss_kill_switch"]
        );
        let reduce = signal(Side::Sell, 10, OrderType::Market, None, dec!(900));
        assert!(check(&reduce, &state, Some(&reliance())).is_empty());
        let flip = signal(Side::Sell, 11, OrderType::Market, None, dec!(900));
        assert_eq!(
            check(&flip, &state, Some(&reliance())),
            vec!["daily_loss_kill_switch"]
        );
    }

    #[test]
    fn market_hours_are_enforced_for_zerodha_only_by_default() {
        let sig = signal(Side::Buy, 1, OrderType::Market, None, dec!(1450));
        let saturday = calendar::from_ist(day(22).and_hms_opt(11, 0, 0).unwrap());
        let closed = rules(evaluate(
            &sig,
            &RiskState::new(),
            &RiskLimits::default_for(Broker::Zerodha),
            Some(&reliance()),
            saturday,
        ));
        assert_eq!(closed, vec!["market_hours"]);
        let at_close = calendar::from_ist(day(21).and_hms_opt(15, 30, 0).unwrap());
        assert_eq!(
            rules(evaluate(
                &sig,
                &RiskState::new(),
                &limits(),
                Some(&reliance()),
                at_close
            )),
            vec!["market_hours"]
        );
        assert_eq!(
            evaluate(
                &sig,
                &RiskState::new(),
                &RiskLimits::default_for(Broker::Paper),
                Some(&reliance()),
                saturday
            ),
            RiskDecision::Approved
        );
        assert!(rule_names(&RiskLimits::default_for(Broker::Zerodha))
            .contains(&"market_hours".to_string()));
        assert!(!rule_names(&RiskLimits::default_for(Broker::Paper))
            .contains(&"market_hours".to_string()));
    }

    #[test]
    fn a_signal_failing_several_rules_lists_them_all() {
        let mut state = RiskState::new();
        let sid = StrategyId::new("s1").unwrap();
        for _ in 0..3 {
            state.record_approved(&sid, day(21));
        }
        state.apply_fill(
            EventId::new_root(),
            &fill(Side::Buy, 20, dec!(1000), dec!(0)),
            day(21),
        );
        state.apply_fill(
            EventId::new_root(),
            &fill(Side::Sell, 10, dec!(800), dec!(0)),
            day(21),
        );
        let sig = signal(
            Side::Buy,
            200,
            OrderType::Limit,
            Some(dec!(1600.02)),
            dec!(1450),
        );
        let evening = calendar::from_ist(day(21).and_hms_opt(18, 0, 0).unwrap());
        let got = rules(evaluate(
            &sig,
            &state,
            &limits(),
            Some(&reliance()),
            evening,
        ));
        assert_eq!(
            got,
            vec![
                "tick_size",
                "limit_price_band",
                "max_order_value",
                "max_position_quantity",
                "max_position_value",
                "max_daily_trades",
                "daily_loss_kill_switch",
                "market_hours",
            ]
        );
    }
}
