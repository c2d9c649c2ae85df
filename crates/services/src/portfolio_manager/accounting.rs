//! Average-cost portfolio accounting with exactly these rules.
//!
//! Position `q` (signed), average price `a`. A fill of side `s` (+1 buy, −1 sell), quantity `n`,
//! price `p`, fees `f`:
//! - if `q = 0` or `sign(q) = s`: `a ← (|q|·a + n·p)/(|q|+n)`, `q ← q + s·n`;
//! - otherwise `closed = min(n, |q|)`, `realized += closed·(p − a)·sign(q)`, `q ← q + s·n`; if the
//!   position flipped, `a ← p`; if flat, `a ← 0`;
//! - always `cash −= s·n·p + f`, `fees += f`.
//!
//! `unrealized = q·(last − a)`; `total_pnl = realized + unrealized − fees`. Internal figures are exact
//! decimals; a snapshot rounds realized, unrealized, fees and cash to the paisa (half away from zero)
//! and average prices to 4 places, and its `total_pnl` is the sum of the rounded parts, so a snapshot
//! always adds up. A position is marked at its last tick; before any tick, at its last fill price.

use std::collections::BTreeMap;

use alpha_panda_core::{
    Broker, InstrumentToken, Money, OrderFilled, PnlSnapshot, PortfolioId, PositionSnapshot, Price,
    SnapshotType, StrategyId, Timestamp,
};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// What a fill does to a position: its new quantity and average price, and the PnL it realized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillEffect {
    /// Signed quantity after the fill.
    pub quantity: i64,
    /// Average price after the fill.
    pub average_price: Decimal,
    /// Realized PnL of this fill (before fees).
    pub realized: Decimal,
}

/// Applies the accounting rules to one position (shared with the risk manager's kill switch).
/// `sign` is +1 for a buy, −1 for a sell; `n` is the filled quantity.
pub fn apply_fill_to_position(q: i64, a: Decimal, sign: i64, n: i64, p: Decimal) -> FillEffect {
    if q == 0 || q.signum() == sign {
        let abs_q = Decimal::from(q.abs());
        let nd = Decimal::from(n);
        FillEffect {
            quantity: q + sign * n,
            average_price: (abs_q * a + nd * p) / (abs_q + nd),
            realized: Decimal::ZERO,
        }
    } else {
        let closed = n.min(q.abs());
        let realized = Decimal::from(closed) * (p - a) * Decimal::from(q.signum());
        let new_q = q + sign * n;
        let average_price = if new_q == 0 {
            Decimal::ZERO
        } else if new_q.signum() != q.signum() {
            p
        } else {
            a
        };
        FillEffect {
            quantity: new_q,
            average_price,
            realized,
        }
    }
}

/// One instrument's position inside a portfolio.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Signed quantity: positive long, negative short.
    pub quantity: i64,
    /// Average entry price of the open quantity (0 when flat).
    pub average_price: Decimal,
    /// Price used to mark (last tick, or last fill before any tick).
    pub last_price: Decimal,
    /// Whether `last_price` came from a tick.
    pub marked: bool,
    /// Realized PnL of this instrument.
    pub realized_pnl: Decimal,
    /// Fees paid on this instrument.
    pub fees: Decimal,
}

impl Position {
    /// `q·(last − a)`.
    pub fn unrealized_pnl(&self) -> Decimal {
        Decimal::from(self.quantity) * (self.last_price - self.average_price)
    }
}

/// A portfolio: one per (broker, strategy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portfolio {
    /// `{broker}:{strategy_id}`.
    pub id: PortfolioId,
    /// The broker namespace.
    pub broker: Broker,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// Cash the portfolio started with.
    pub initial_cash: Decimal,
    /// Cash now.
    pub cash: Decimal,
    /// Realized PnL over all instruments.
    pub realized_pnl: Decimal,
    /// Fees paid.
    pub fees: Decimal,
    /// Positions by instrument (flat positions are kept for their realized PnL).
    pub positions: BTreeMap<InstrumentToken, Position>,
}

impl Portfolio {
    /// An empty portfolio holding `initial_cash`.
    pub fn new(broker: Broker, strategy_id: StrategyId, initial_cash: Money) -> Self {
        Self {
            id: PortfolioId::for_strategy(broker, &strategy_id),
            broker,
            strategy_id,
            initial_cash: initial_cash.0,
            cash: initial_cash.0,
            realized_pnl: Decimal::ZERO,
            fees: Decimal::ZERO,
            positions: BTreeMap::new(),
        }
    }

    /// Applies a fill. Fills of another strategy are the caller's routing error and are applied
    /// regardless; the caller keys portfolios by the fill's strategy.
    pub fn apply_fill(&mut self, fill: &OrderFilled) {
        let sign = fill.side.sign();
        let n = fill.quantity.as_i64();
        let p = fill.fill_price.0;
        let f = fill.fees.total.0;
        let position = self.positions.entry(fill.instrument_token).or_default();
        let effect = apply_fill_to_position(position.quantity, position.average_price, sign, n, p);
        position.quantity = effect.quantity;
        position.average_price = effect.average_price;
        position.realized_pnl += effect.realized;
        position.fees += f;
        if !position.marked {
            position.last_price = p;
        }
        self.realized_pnl += effect.realized;
        self.cash -= Decimal::from(sign * n) * p + f;
        self.fees += f;
    }

    /// Marks `token` at `price` (a tick). Unknown instruments are ignored.
    pub fn mark(&mut self, token: InstrumentToken, price: Price) {
        if let Some(position) = self.positions.get_mut(&token) {
            position.last_price = price.0;
            position.marked = true;
        }
    }

    /// Σ unrealized over positions.
    pub fn unrealized_pnl(&self) -> Decimal {
        self.positions.values().map(Position::unrealized_pnl).sum()
    }

    /// realized + unrealized − fees (exact).
    pub fn total_pnl(&self) -> Decimal {
        self.realized_pnl + self.unrealized_pnl() - self.fees
    }

    /// A sealed snapshot of the portfolio at `as_of`.
    pub fn snapshot(&self, as_of: Timestamp, snapshot_type: SnapshotType) -> PnlSnapshot {
        let paisa =
            |d: Decimal| Money(d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero));
        let positions: Vec<PositionSnapshot> = self
            .positions
            .iter()
            .map(|(token, p)| PositionSnapshot {
                instrument_token: *token,
                quantity: p.quantity,
                average_price: Price(
                    p.average_price
                        .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
                        .normalize(),
                ),
                last_price: Price(p.last_price),
                realized_pnl: paisa(p.realized_pnl),
                unrealized_pnl: paisa(p.unrealized_pnl()),
            })
            .collect();
        let realized = paisa(self.realized_pnl);
        let unrealized = paisa(self.unrealized_pnl());
        let fees = paisa(self.fees);
        PnlSnapshot {
            portfolio_id: self.id.clone(),
            strategy_id: self.strategy_id.clone(),
            broker: self.broker,
            as_of,
            realized_pnl: realized,
            unrealized_pnl: unrealized,
            fees,
            total_pnl: realized + unrealized - fees,
            cash: paisa(self.cash),
            positions,
            snapshot_type,
            checksum: String::new(),
        }
        .seal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_core::{ExecutionMode, FeeBreakdown, OrderId, Quantity, Side};
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    const T: InstrumentToken = InstrumentToken(738561);

    fn fill(side: Side, n: u32, price: Decimal, fee: Decimal) -> OrderFilled {
        fill_on(T, side, n, price, fee)
    }

    fn fill_on(
        token: InstrumentToken,
        side: Side,
        n: u32,
        price: Decimal,
        fee: Decimal,
    ) -> OrderFilled {
        OrderFilled {
            order_id: OrderId::new("o1").unwrap(),
            broker_order_id: None,
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: token,
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

    fn portfolio() -> Portfolio {
        Portfolio::new(
            Broker::Paper,
            StrategyId::new("s1").unwrap(),
            Money(dec!(100000)),
        )
    }

    fn pos(p: &Portfolio) -> &Position {
        &p.positions[&T]
    }

    #[test]
    fn open_add_reduce_close() {
        let mut p = portfolio();
        p.apply_fill(&fill(Side::Buy, 10, dec!(100), dec!(1)));
        assert_eq!((pos(&p).quantity, pos(&p).average_price), (10, dec!(100)));
        assert_eq!(p.cash, dec!(100000) - dec!(1000) - dec!(1));
        p.apply_fill(&fill(Side::Buy, 10, dec!(110), dec!(1)));
        assert_eq!((pos(&p).quantity, pos(&p).average_price), (20, dec!(105)));
        p.apply_fill(&fill(Side::Sell, 5, dec!(120), dec!(1)));
        assert_eq!((pos(&p).quantity, pos(&p).average_price), (15, dec!(105)));
        assert_eq!(p.realized_pnl, dec!(75));
        p.mark(T, Price(dec!(100)));
        assert_eq!(p.unrealized_pnl(), dec!(-75));
        p.apply_fill(&fill(Side::Sell, 15, dec!(101), dec!(1)));
        assert_eq!(
            (pos(&p).quantity, pos(&p).average_price),
            (0, Decimal::ZERO)
        );
        assert_eq!(p.realized_pnl, dec!(75) - dec!(60));
        assert_eq!(p.fees, dec!(4));
        assert_eq!(p.unrealized_pnl(), Decimal::ZERO);
        assert_eq!(p.total_pnl(), dec!(15) - dec!(4));
        // cash = initial + realized − fees when flat.
        assert_eq!(p.cash, dec!(100000) + dec!(15) - dec!(4));
    }

    #[test]
    fn flip_long_to_short_resets_average_to_fill_price() {
        let mut p = portfolio();
        p.apply_fill(&fill(Side::Buy, 10, dec!(100), dec!(0)));
        p.apply_fill(&fill(Side::Sell, 15, dec!(90), dec!(0)));
        assert_eq!((pos(&p).quantity, pos(&p).average_price), (-5, dec!(90)));
        assert_eq!(p.realized_pnl, dec!(-100));
        p.mark(T, Price(dec!(80)));
        assert_eq!(p.unrealized_pnl(), dec!(50));
    }

    #[test]
    fn short_add_and_cover() {
        let mut p = portfolio();
        p.apply_fill(&fill(Side::Sell, 10, dec!(200), dec!(2)));
        assert_eq!((pos(&p).quantity, pos(&p).average_price), (-10, dec!(200)));
        assert_eq!(p.cash, dec!(100000) + dec!(2000) - dec!(2));
        p.apply_fill(&fill(Side::Sell, 10, dec!(190), dec!(2)));
        assert_eq!((pos(&p).quantity, pos(&p).average_price), (-20, dec!(195)));
        p.apply_fill(&fill(Side::Buy, 20, dec!(180), dec!(2)));
        assert_eq!(pos(&p).quantity, 0);
        assert_eq!(p.realized_pnl, dec!(300));
        assert_eq!(p.total_pnl(), dec!(294));
        // Flip short to long.
        p.apply_fill(&fill(Side::Sell, 1, dec!(100), dec!(0)));
        p.apply_fill(&fill(Side::Buy, 3, dec!(95), dec!(0)));
        assert_eq!((pos(&p).quantity, pos(&p).average_price), (2, dec!(95)));
        assert_eq!(p.realized_pnl, dec!(305));
    }

    #[test]
    fn unmarked_positions_use_the_last_fill_and_ticks_win_after() {
        let mut p = portfolio();
        p.apply_fill(&fill(Side::Buy, 2, dec!(100), dec!(0)));
        p.apply_fill(&fill(Side::Buy, 2, dec!(110), dec!(0)));
        assert_eq!(pos(&p).last_price, dec!(110));
        p.mark(T, Price(dec!(120)));
        p.apply_fill(&fill(Side::Buy, 1, dec!(90), dec!(0)));
        assert_eq!(pos(&p).last_price, dec!(120));
        p.mark(InstrumentToken(1), Price(dec!(5)));
        assert!(!p.positions.contains_key(&InstrumentToken(1)));
    }

    #[test]
    fn snapshot_is_rounded_consistent_and_sealed() {
        let mut p = portfolio();
        p.apply_fill(&fill(Side::Buy, 3, dec!(100.05), dec!(0.333)));
        p.apply_fill(&fill(Side::Buy, 3, dec!(100.10), dec!(0.333)));
        p.mark(T, Price(dec!(101)));
        let s = p.snapshot(
            Timestamp::from_unix_micros(1_763_700_000_000_000).unwrap(),
            SnapshotType::Periodic,
        );
        assert!(s.checksum_is_valid());
        assert_eq!(s.portfolio_id.as_str(), "paper:s1");
        assert_eq!(s.fees, Money(dec!(0.67)));
        assert_eq!(s.unrealized_pnl, Money(dec!(5.55)));
        assert_eq!(s.total_pnl, s.realized_pnl + s.unrealized_pnl - s.fees);
        assert_eq!(s.positions[0].average_price, Price(dec!(100.075)));
        assert_eq!(s.positions[0].quantity, 6);
    }

    #[test]
    fn portfolio_round_trips_through_serde() {
        let mut p = portfolio();
        p.apply_fill(&fill(Side::Buy, 3, dec!(100.05), dec!(0.5)));
        let back: Portfolio = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    /// Independent re-computation from the fill list: cash and fees by summation, quantity by
    /// summation, and realized by an average-cost ledger that tracks total open cost instead of an
    /// average price.
    fn replay(
        fills: &[(bool, u32, i64, i64)],
        last: Decimal,
    ) -> (i64, Decimal, Decimal, Decimal, Decimal) {
        let mut q: i64 = 0;
        let mut cost = Decimal::ZERO; // signed open cost basis: Σ of entry notional of open units
        let mut realized = Decimal::ZERO;
        let mut cash = dec!(100000);
        let mut fees = Decimal::ZERO;
        for &(buy, n, paise, fee_paise) in fills {
            let s: i64 = if buy { 1 } else { -1 };
            let p = Decimal::new(paise, 2);
            let f = Decimal::new(fee_paise, 2);
            cash -= Decimal::from(s * i64::from(n)) * p + f;
            fees += f;
            let mut remaining = i64::from(n);
            if q != 0 && q.signum() != s {
                let closed = remaining.min(q.abs());
                // Cost of the closed units at the current average.
                let closed_cost = cost * Decimal::from(closed) / Decimal::from(q.abs());
                // Long: proceeds − cost; short: cost − buyback.
                realized += (Decimal::from(closed) * p - closed_cost) * Decimal::from(q.signum());
                cost -= closed_cost;
                q += s * closed;
                remaining -= closed;
                if q == 0 {
                    cost = Decimal::ZERO;
                }
            }
            if remaining > 0 {
                cost += Decimal::from(remaining) * p;
                q += s * remaining;
            }
        }
        let unrealized = if q == 0 {
            Decimal::ZERO
        } else {
            Decimal::from(q) * last - cost * Decimal::from(q.signum())
        };
        (q, realized, unrealized, cash, fees)
    }

    fn close(a: Decimal, b: Decimal) -> bool {
        (a - b).abs() < dec!(0.000000001)
    }

    proptest! {
        #[test]
        fn matches_an_independent_replay(
            fills in prop::collection::vec((any::<bool>(), 1u32..50, 1i64..500_000, 0i64..2_000), 1..40),
            last_paise in 1i64..500_000,
        ) {
            let mut p = portfolio();
            for &(buy, n, paise, fee) in &fills {
                let side = if buy { Side::Buy } else { Side::Sell };
                p.apply_fill(&fill(side, n, Decimal::new(paise, 2), Decimal::new(fee, 2)));
            }
            let last = Decimal::new(last_paise, 2);
            p.mark(T, Price(last));
            let (q, realized, unrealized, cash, fees) = replay(&fills, last);
            prop_assert_eq!(pos(&p).quantity, q);
            prop_assert_eq!(p.cash, cash);
            prop_assert_eq!(p.fees, fees);
            prop_assert!(close(p.realized_pnl, realized), "realized {} vs {}", p.realized_pnl, realized);
            prop_assert!(close(p.unrealized_pnl(), unrealized), "unrealized {} vs {}", p.unrealized_pnl(), unrealized);
            // Conservation: equity change equals total PnL.
            let equity = p.cash + Decimal::from(q) * last;
            prop_assert!(close(equity - dec!(100000), p.total_pnl()));
            let snap = p.snapshot(Timestamp::from_unix_micros(0).unwrap(), SnapshotType::Reconciliation);
            prop_assert!(snap.checksum_is_valid());
        }
    }
}
