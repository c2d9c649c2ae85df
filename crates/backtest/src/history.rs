//! What a backtest (or a run's ledger) leaves behind for the report: the portfolios with their
//! starting cash, every fill, the equity curve, the refused signals and one instrument's prices.
//! Plain data: the host appends to it, `report` reads it, and nothing here decides anything.

use alpha_panda_core::{
    FeeBreakdown, InstrumentToken, Money, OrderId, PortfolioId, Price, Quantity, Side, StrategyId,
    Timestamp,
};
use rust_decimal::Decimal;

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

/// One instrument's prices over the run, for the trades chart: the last price of every equity
/// interval, so its size follows the run's length, not its ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceSeries {
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Its trading symbol, when known.
    pub tradingsymbol: Option<String>,
    /// `(exchange time, last price)`, in time order.
    pub points: Vec<(Timestamp, Price)>,
}

/// Everything the report is computed from.
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
    /// The exchange time of the first tick (None: no tick).
    pub start: Option<Timestamp>,
    /// The exchange time of the last tick.
    pub end: Option<Timestamp>,
    /// The instrument shown on the trades chart.
    pub chart: Option<PriceSeries>,
}
