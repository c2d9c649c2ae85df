//! What a backtest (or a run's ledger) leaves behind for the report: the portfolios with their
//! starting cash, every fill, the equity curve, the refused signals and one instrument's prices.
//! Plain data: the host hands each record to a [`Journal`] as it happens, and nothing here
//! decides anything; a [`History`] keeps them all, for a ledger's report and for tests.

use alpha_panda_core::{
    FeeBreakdown, InstrumentToken, Money, OrderId, OrderType, PortfolioId, Price, Quantity, Side,
    StrategyId, Timestamp,
};
use rust_decimal::Decimal;

use crate::journal::Journal;

/// A portfolio the report covers: one per strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortfolioStart {
    /// `{broker}:{strategy_id}`.
    pub portfolio_id: PortfolioId,
    /// The strategy it belongs to.
    pub strategy_id: StrategyId,
    /// Cash it starts with.
    pub initial_cash: Money,
}

/// One fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRecord {
    /// The exchange time of the tick that caused it (the fill's time).
    pub exchange_timestamp: Timestamp,
    /// The portfolio it moved.
    pub portfolio_id: PortfolioId,
    /// Its strategy.
    pub strategy_id: StrategyId,
    /// Its order.
    pub order_id: OrderId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// The instrument's trading symbol, when the master or the tick knows it.
    pub tradingsymbol: Option<String>,
    /// Buy or sell.
    pub side: Side,
    /// Units.
    pub quantity: Quantity,
    /// Price per unit.
    pub price: Price,
    /// Charges, by component.
    pub fees: FeeBreakdown,
}

/// One order and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// The order.
    pub order_id: OrderId,
    /// Exchange time of the signal's tick.
    pub submitted_at: Timestamp,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Its trading symbol, when known.
    pub tradingsymbol: Option<String>,
    /// Buy or sell.
    pub side: Side,
    /// Units ordered.
    pub quantity: u32,
    /// MARKET or LIMIT.
    pub order_type: OrderType,
    /// The limit of a LIMIT order.
    pub limit_price: Option<Price>,
    /// `open` (a resting LIMIT at the end), `filled` or `failed`.
    pub status: &'static str,
    /// When it filled.
    pub filled_at: Option<Timestamp>,
    /// At what price.
    pub fill_price: Option<Price>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// A portfolio's value at one instant: at a fixed interval of exchange time, and at every fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquityPoint {
    /// Exchange time.
    pub at: Timestamp,
    /// The portfolio.
    pub portfolio_id: PortfolioId,
    /// Cash.
    pub cash: Decimal,
    /// Realized PnL so far (before charges).
    pub realized_pnl: Decimal,
    /// Unrealized PnL of the open positions, marked at their last prices.
    pub unrealized_pnl: Decimal,
    /// Charges paid so far.
    pub fees: Decimal,
    /// Initial cash + realized + unrealized − charges.
    pub equity: Decimal,
}

/// A signal the risk manager refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The exchange time of the signal's tick.
    pub exchange_timestamp: Timestamp,
    /// The strategy whose signal it was.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Every rule it failed.
    pub rules: Vec<String>,
}

/// One instrument's prices over the run and its fills, for the trades chart: the last price of
/// every equity interval, and the fills of each side, both thinned to a bounded number of points
/// however long the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceSeries {
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Its trading symbol, when known.
    pub tradingsymbol: Option<String>,
    /// `(exchange time, last price)`, in time order.
    pub points: Vec<(Timestamp, Price)>,
    /// Buys `(exchange time, price)`, in time order; evenly thinned when there were many.
    pub buys: Vec<(Timestamp, Price)>,
    /// Sells, likewise.
    pub sells: Vec<(Timestamp, Price)>,
    /// Every buy of the instrument, thinned or not.
    pub buy_count: u64,
    /// Every sell.
    pub sell_count: u64,
}

/// Every record of a run, kept in memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// The portfolios, in strategy order.
    pub portfolios: Vec<PortfolioStart>,
    /// Every fill, in time order.
    pub fills: Vec<FillRecord>,
    /// The equity curve of every portfolio, in time order.
    pub equity: Vec<EquityPoint>,
    /// Refused signals, in time order.
    pub rejections: Vec<Rejection>,
    /// Every order, in the order they ended.
    pub orders: Vec<OrderRecord>,
    /// The exchange time of the first tick (None: no tick).
    pub start: Option<Timestamp>,
    /// The exchange time of the last tick.
    pub end: Option<Timestamp>,
    /// The instrument shown on the trades chart.
    pub chart: Option<PriceSeries>,
}

impl Journal for History {
    fn fill(&mut self, fill: FillRecord) {
        self.fills.push(fill);
    }

    fn equity(&mut self, point: EquityPoint) {
        self.equity.push(point);
    }

    fn order(&mut self, order: OrderRecord) {
        self.orders.push(order);
    }

    fn rejection(&mut self, rejection: Rejection) {
        self.rejections.push(rejection);
    }
}
