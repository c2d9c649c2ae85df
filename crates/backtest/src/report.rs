//! The backtest report's statistics, per portfolio and for all portfolios together: PnL and
//! charges, round-trip trades, return ratios, drawdown, exposure, best and worst days and refused
//! signals, folded one record at a time by a [`ReportBuilder`] while the run goes (or from a
//! [`History`] kept in memory), with the thinned curves of its page. Pure: no I/O and no clock,
//! so the same records always yield the same report (and the same `report.json`).
//!
//! Money stays exact (`Decimal`) through every sum and is rounded to the paisa (half away from
//! zero) only where a [`Money`] field of the report is filled in; ratios are `f64` rounded to
//! six decimal places, so that the serialised report does not carry float noise.

use std::collections::{BTreeMap, HashMap};

use alpha_panda_core::{
    calendar, FeeBreakdown, InstrumentToken, Money, PortfolioId, Side, StrategyId, Timestamp,
};
use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::history::{EquityPoint, FillRecord, History, PortfolioStart, PriceSeries, Rejection};

/// Trading days in a year, to annualise daily Sharpe and Sortino ratios.
const TRADING_DAYS_PER_YEAR: f64 = 252.0;
/// Calendar days in a year, to annualise the growth rate over the run's calendar span.
const DAYS_PER_YEAR: f64 = 365.25;
/// Microseconds in a calendar day.
const MICROS_PER_DAY: f64 = 86_400_000_000.0;
/// A standard deviation at or below this is float noise from identical returns, not risk: a
/// ratio divided by it would be a meaningless huge number, so the ratio is left undefined.
const DEVIATION_EPSILON: f64 = 1e-12;

/// The whole report: every portfolio, and all of them together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The start of the run: the first tick (or the earliest point or fill when no tick is known).
    pub start: Option<Timestamp>,
    /// The end of the run: the last tick (or the latest point or fill).
    pub end: Option<Timestamp>,
    /// One per portfolio of the history, in the same order.
    pub portfolios: Vec<PortfolioReport>,
    /// All portfolios together (fills of portfolios the history does not list are left out, so
    /// that the total is the sum of its parts).
    pub total: PortfolioReport,
    /// Refused signals per rule, over every refusal of the run; a signal that failed several
    /// rules counts once under each.
    pub rejections_by_rule: BTreeMap<String, u64>,
}

/// The statistics of one portfolio (or of all of them, for [`Report::total`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortfolioReport {
    /// The portfolio; `None` for the total.
    pub portfolio_id: Option<PortfolioId>,
    /// Its strategy; `None` for the total.
    pub strategy_id: Option<StrategyId>,
    /// Cash at the start.
    pub initial_cash: Money,
    /// Equity at the last point of the curve (the initial cash when there is none).
    pub final_equity: Money,
    /// Final equity − initial cash: after charges, open positions marked at their last prices.
    pub net_pnl: Money,
    /// Net PnL + charges.
    pub gross_pnl: Money,
    /// Charges by component, summed over the fills.
    pub fees: FeeTotals,
    /// Number of fills.
    pub fills: u64,
    /// Closed round trips.
    pub trades: u64,
    /// Round trips still open at the end (not in any win/loss statistic).
    pub open_trades: u64,
    /// Closed trades with a positive net PnL.
    pub wins: u64,
    /// Closed trades with a negative net PnL.
    pub losses: u64,
    /// Wins / trades; `None` without trades.
    pub win_rate: Option<f64>,
    /// Mean net PnL of the winning trades.
    pub average_win: Option<Money>,
    /// Mean net PnL of the losing trades (negative).
    pub average_loss: Option<Money>,
    /// Best trade.
    pub largest_win: Option<Money>,
    /// Worst trade (negative).
    pub largest_loss: Option<Money>,
    /// Sum of wins / |sum of losses|; `None` without a losing trade.
    pub profit_factor: Option<f64>,
    /// Mean net PnL per closed trade.
    pub expectancy: Option<Money>,
    /// Net PnL / initial cash; `None` without initial cash.
    pub total_return: Option<f64>,
    /// Compound annual growth over the run's calendar span (days / 365.25); `None` when the span
    /// is zero or the final equity is negative.
    pub cagr: Option<f64>,
    /// Annualised Sharpe ratio of the daily returns: mean / sample standard deviation × √252.
    pub sharpe: Option<f64>,
    /// Annualised Sortino ratio: mean daily return / downside deviation × √252, the downside
    /// deviation being √(mean over all days of min(r, 0)²).
    pub sortino: Option<f64>,
    /// CAGR / maximum drawdown fraction; `None` without a drawdown.
    pub calmar: Option<f64>,
    /// The deepest fall of the equity curve below a running peak, by fraction of the peak.
    pub max_drawdown: Option<Drawdown>,
    /// Fraction of the run's span during which any position was open; `None` for a zero span.
    pub exposure: Option<f64>,
    /// IST trading days that have at least one equity point.
    pub trading_days: u64,
    /// The day with the largest change of end-of-day equity.
    pub best_day: Option<DayPnl>,
    /// The day with the smallest (most negative) change of end-of-day equity.
    pub worst_day: Option<DayPnl>,
    /// Per instrument, by token.
    pub per_instrument: Vec<InstrumentReport>,
    /// Trades opened by a buy.
    pub long: SideReport,
    /// Trades opened by a sell.
    pub short: SideReport,
    /// Refused signals of this strategy (of every strategy, for the total), per rule.
    pub rejections: BTreeMap<String, u64>,
}

/// Charges by component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FeeTotals {
    /// Brokerage.
    pub brokerage: Money,
    /// Securities transaction tax.
    pub stt: Money,
    /// Exchange transaction charges.
    pub exchange: Money,
    /// SEBI turnover fees.
    pub sebi: Money,
    /// GST.
    pub gst: Money,
    /// Stamp duty.
    pub stamp: Money,
    /// Depository charges.
    pub dp: Money,
    /// All charges.
    pub total: Money,
}

/// A drawdown of the equity curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drawdown {
    /// Peak − trough, in rupees.
    pub value: Money,
    /// (Peak − trough) / peak; `None` when the peak is not positive.
    pub pct: Option<f64>,
    /// When the curve stood at the peak (the last point at it before the fall).
    pub start: Timestamp,
    /// When it reached the trough (the first point at it).
    pub trough: Timestamp,
    /// The first time after the trough that equity was back at or above the peak.
    pub recovery: Option<Timestamp>,
    /// Seconds from the peak to the recovery, or to the end of the run when not recovered.
    pub duration_seconds: i64,
}

/// The change of end-of-day equity on one IST trading day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayPnl {
    /// The IST date.
    pub date: NaiveDate,
    /// End-of-day equity − the previous day's (the initial cash for the first day).
    pub pnl: Money,
}

/// One row of the per-instrument table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstrumentReport {
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Its trading symbol, as the first fill that knew it wrote it.
    pub tradingsymbol: Option<String>,
    /// Fills in it.
    pub fills: u64,
    /// Closed round trips in it.
    pub trades: u64,
    /// Of which won.
    pub wins: u64,
    /// Net PnL of its closed trades (after their charges).
    pub net_pnl: Money,
    /// Charges of all its fills (closed and open trades).
    pub fees: Money,
}

/// Closed trades of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SideReport {
    /// Closed round trips.
    pub trades: u64,
    /// Of which won.
    pub wins: u64,
    /// Their net PnL.
    pub net_pnl: Money,
}

/// Computes the report of a run kept in memory. The records are folded in time order (stably: the
/// records of one instant keep their order), as a backtest folds them while it runs.
pub fn build_report(history: &History) -> Report {
    report_of(history).0
}

/// The report of a run kept in memory, and the charts of its page.
pub fn report_of(history: &History) -> (Report, Charts) {
    let mut builder = ReportBuilder::new(&history.portfolios);
    let mut equity: Vec<&EquityPoint> = history.equity.iter().collect();
    equity.sort_by_key(|point| point.at);
    for point in equity {
        builder.equity(point);
    }
    let mut fills: Vec<&FillRecord> = history.fills.iter().collect();
    fills.sort_by_key(|fill| fill.exchange_timestamp);
    for fill in fills {
        builder.fill(fill);
    }
    for rejection in &history.rejections {
        builder.rejection(rejection);
    }
    builder.finish(history.start, history.end, history.chart.clone())
}

/// The charts of the report's page: every equity curve, thinned to a bounded number of points,
/// and the trades chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Charts {
    /// The start of the run, where every curve begins at its initial cash (`None`: no run).
    pub start: Option<Timestamp>,
    /// The total first, then each portfolio when there are several.
    pub equity: Vec<EquityCurve>,
    /// One instrument's prices and fills.
    pub trades: Option<PriceSeries>,
}

/// One equity curve of the charts.
#[derive(Debug, Clone, PartialEq)]
pub struct EquityCurve {
    /// `Total` or the strategy.
    pub name: String,
    /// Cash at the start.
    pub initial_cash: Decimal,
    /// `(exchange time, equity)`, in time order, each bucket of neighbours reduced to its lowest
    /// and highest point once the curve is long.
    pub points: Vec<(Timestamp, Decimal)>,
}

/// The report, folded one record at a time: every statistic keeps only what the next record
/// needs (open round trips, the running peak, one close per day), so the report of a run of any
/// length takes the memory of its instruments and days, not of its ticks or fills.
///
/// Records arrive in the order the run made them; for a run in time order that is the order
/// [`build_report`] sorts a [`History`] into, and both give the same report.
pub struct ReportBuilder {
    portfolios: Vec<Tally>,
    /// Each portfolio's place, by id (the first, should two share an id).
    by_portfolio: HashMap<PortfolioId, usize>,
    by_strategy: HashMap<StrategyId, usize>,
    total: Tally,
    total_curve: TotalCurve,
    rejections_by_rule: BTreeMap<String, u64>,
    /// The first and last instant of any record.
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

impl ReportBuilder {
    /// A report over `portfolios`, in that order.
    pub fn new(portfolios: &[PortfolioStart]) -> Self {
        let mut by_portfolio = HashMap::new();
        let mut by_strategy = HashMap::new();
        for (i, portfolio) in portfolios.iter().enumerate() {
            by_portfolio
                .entry(portfolio.portfolio_id.clone())
                .or_insert(i);
            by_strategy
                .entry(portfolio.strategy_id.clone())
                .or_insert(i);
        }
        let initial: Vec<Decimal> = portfolios.iter().map(|p| p.initial_cash.0).collect();
        Self {
            portfolios: portfolios
                .iter()
                .map(|p| {
                    Tally::new(
                        Some(p.portfolio_id.clone()),
                        Some(p.strategy_id.clone()),
                        p.initial_cash.0,
                        p.strategy_id.to_string(),
                    )
                })
                .collect(),
            by_portfolio,
            by_strategy,
            total: Tally::new(None, None, initial.iter().copied().sum(), "Total".into()),
            total_curve: TotalCurve::new(initial),
            rejections_by_rule: BTreeMap::new(),
            first: None,
            last: None,
        }
    }

    fn saw(&mut self, at: Timestamp) {
        self.first = Some(self.first.map_or(at, |first| first.min(at)));
        self.last = Some(self.last.map_or(at, |last| last.max(at)));
    }

    /// A fill; one of a portfolio the report does not list counts nowhere.
    pub fn fill(&mut self, fill: &FillRecord) {
        self.saw(fill.exchange_timestamp);
        let Some(&i) = self.by_portfolio.get(&fill.portfolio_id) else {
            return;
        };
        self.portfolios[i].fill(i, fill);
        if self.total_has_figures() {
            self.total.fill(i, fill);
        }
    }

    /// Whether the total is folded on its own: one portfolio is its own total (the same figures,
    /// taken from it at the end), and only the total's curve is kept for its chart.
    fn total_has_figures(&self) -> bool {
        self.portfolios.len() != 1
    }

    /// The total's curve at one completed instant.
    fn total_equity(&mut self, at: Timestamp, equity: Decimal) {
        if self.total_has_figures() {
            self.total.equity(at, equity);
        } else {
            self.total.chart.push(at, equity);
        }
    }

    /// A point of a portfolio's equity curve.
    pub fn equity(&mut self, point: &EquityPoint) {
        self.saw(point.at);
        let Some(&i) = self.by_portfolio.get(&point.portfolio_id) else {
            return;
        };
        self.portfolios[i].equity(point.at, point.equity);
        if let Some((at, equity)) = self.total_curve.push(point.at, i, point.equity) {
            self.total_equity(at, equity);
        }
    }

    /// A refused signal: under its strategy's portfolio, and in the run's count per rule.
    pub fn rejection(&mut self, rejection: &Rejection) {
        self.saw(rejection.exchange_timestamp);
        let portfolio = self.by_strategy.get(&rejection.strategy_id).copied();
        for rule in &rejection.rules {
            *self.rejections_by_rule.entry(rule.clone()).or_insert(0) += 1;
            if let Some(i) = portfolio {
                *self.portfolios[i]
                    .rejections
                    .entry(rule.clone())
                    .or_insert(0) += 1;
            }
        }
    }

    /// The report over the run from `start` to `end` (the first and last tick; widened to every
    /// record's instant), and its charts with `trades` as the trades chart.
    pub fn finish(
        mut self,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        trades: Option<PriceSeries>,
    ) -> (Report, Charts) {
        if let Some((at, equity)) = self.total_curve.flush() {
            self.total_equity(at, equity);
        }
        let instants = || {
            start
                .into_iter()
                .chain(end)
                .chain(self.first)
                .chain(self.last)
        };
        let span = instants().min().map(|first| Span {
            start: first,
            end: instants().max().unwrap_or(first),
        });
        let several = self.portfolios.len() > 1;
        let mut curves = vec![self.total.curve_for_chart()];
        if several {
            curves.extend(self.portfolios.iter().map(Tally::curve_for_chart));
        }
        let portfolios: Vec<PortfolioReport> = self
            .portfolios
            .into_iter()
            .map(|tally| tally.report(span))
            .collect();
        let mut total = match portfolios.as_slice() {
            // One portfolio is its own total: its figures, not folded twice.
            [only] => {
                let mut total = only.clone();
                total.portfolio_id = None;
                total.strategy_id = None;
                total
            }
            _ => self.total.report(span),
        };
        total.rejections = self.rejections_by_rule.clone();
        let report = Report {
            start: span.map(|s| s.start),
            end: span.map(|s| s.end),
            portfolios,
            total,
            rejections_by_rule: self.rejections_by_rule,
        };
        let charts = Charts {
            start: span.map(|s| s.start),
            equity: curves,
            trades,
        };
        (report, charts)
    }
}

/// The run's time span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// First instant.
    start: Timestamp,
    /// Last instant (never before `start`).
    end: Timestamp,
}

impl Span {
    fn micros(self) -> i64 {
        self.end.unix_micros() - self.start.unix_micros()
    }
}

/// The equity of all portfolios together, at every instant any of them has a point: each
/// portfolio at its latest point so far, or at its initial cash before its first point. Points
/// of one instant are summed after all of them, so an instant is known complete only when the
/// next one starts (or at the end).
struct TotalCurve {
    latest: Vec<Decimal>,
    sum: Decimal,
    pending: Option<(Timestamp, Decimal)>,
}

impl TotalCurve {
    fn new(initial: Vec<Decimal>) -> Self {
        Self {
            sum: initial.iter().copied().sum(),
            latest: initial,
            pending: None,
        }
    }

    /// Portfolio `i` at `equity` from `at`; returns the total of the instant this one completes.
    fn push(&mut self, at: Timestamp, i: usize, equity: Decimal) -> Option<(Timestamp, Decimal)> {
        self.sum += equity - self.latest[i];
        self.latest[i] = equity;
        match &mut self.pending {
            Some((instant, total)) if *instant == at => {
                *total = self.sum;
                None
            }
            pending => pending.replace((at, self.sum)),
        }
    }

    fn flush(&mut self) -> Option<(Timestamp, Decimal)> {
        self.pending.take()
    }
}

/// The most buckets a chart's curve keeps; past it, neighbours merge. Each keeps two points.
const CHART_BUCKETS: usize = 4096;

/// A curve kept to a bounded size: consecutive points form buckets of `width` points, each
/// keeping its lowest and highest point (the earliest of equals), so spikes and drawdowns
/// survive; when the buckets are too many, neighbours merge and the width doubles. Until then,
/// every point is kept as it came.
#[derive(Debug, Default)]
struct ThinnedCurve {
    width: u64,
    buckets: Vec<Bucket>,
    seen: u64,
}

/// `(sequence, at, value)` of a kept point.
type Kept = (u64, Timestamp, Decimal);

#[derive(Debug)]
struct Bucket {
    points: u64,
    low: Kept,
    high: Kept,
}

impl ThinnedCurve {
    fn push(&mut self, at: Timestamp, value: Decimal) {
        let point = (self.seen, at, value);
        self.seen += 1;
        let width = self.width.max(1);
        match self.buckets.last_mut() {
            Some(bucket) if bucket.points < width => {
                bucket.points += 1;
                if value < bucket.low.2 {
                    bucket.low = point;
                }
                if value > bucket.high.2 {
                    bucket.high = point;
                }
            }
            _ => self.buckets.push(Bucket {
                points: 1,
                low: point,
                high: point,
            }),
        }
        if self.buckets.len() > CHART_BUCKETS {
            let merged = self
                .buckets
                .chunks(2)
                .map(|pair| {
                    let mut bucket = Bucket {
                        points: 0,
                        low: pair[0].low,
                        high: pair[0].high,
                    };
                    for b in pair {
                        bucket.points += b.points;
                        if b.low.2 < bucket.low.2 {
                            bucket.low = b.low;
                        }
                        if b.high.2 > bucket.high.2 {
                            bucket.high = b.high;
                        }
                    }
                    bucket
                })
                .collect();
            self.buckets = merged;
            self.width = width * 2;
        }
    }

    fn points(&self) -> Vec<(Timestamp, Decimal)> {
        let mut points = Vec::with_capacity(self.buckets.len() * 2);
        for bucket in &self.buckets {
            let (first, second) = if bucket.low.0 <= bucket.high.0 {
                (bucket.low, bucket.high)
            } else {
                (bucket.high, bucket.low)
            };
            points.push((first.1, first.2));
            if second.0 != first.0 {
                points.push((second.1, second.2));
            }
        }
        points
    }
}

/// The statistics of one subject (a portfolio, or all of them), as far as the records so far go.
struct Tally {
    portfolio_id: Option<PortfolioId>,
    strategy_id: Option<StrategyId>,
    name: String,
    initial_cash: Decimal,
    final_equity: Option<Decimal>,
    fees: FeeSums,
    fills: u64,
    /// Round trips in progress, per (portfolio, instrument).
    open: BTreeMap<(usize, InstrumentToken), OpenTrade>,
    stats: TradeStats,
    long: SideTally,
    short: SideTally,
    instruments: BTreeMap<InstrumentToken, InstrumentTally>,
    drawdown: DrawdownTracker,
    /// The last equity of every IST trading day so far.
    closes: Vec<(NaiveDate, Decimal)>,
    exposure: ExposureTracker,
    rejections: BTreeMap<String, u64>,
    chart: ThinnedCurve,
}

impl Tally {
    fn new(
        portfolio_id: Option<PortfolioId>,
        strategy_id: Option<StrategyId>,
        initial_cash: Decimal,
        name: String,
    ) -> Self {
        Self {
            portfolio_id,
            strategy_id,
            name,
            initial_cash,
            final_equity: None,
            fees: FeeSums::default(),
            fills: 0,
            open: BTreeMap::new(),
            stats: TradeStats::default(),
            long: SideTally::default(),
            short: SideTally::default(),
            instruments: BTreeMap::new(),
            drawdown: DrawdownTracker::new(initial_cash),
            closes: Vec::new(),
            exposure: ExposureTracker::default(),
            rejections: BTreeMap::new(),
            chart: ThinnedCurve::default(),
        }
    }

    fn equity(&mut self, at: Timestamp, equity: Decimal) {
        self.final_equity = Some(equity);
        self.drawdown.push(at, equity);
        let date = calendar::trading_day(at);
        match self.closes.last_mut() {
            Some(last) if last.0 == date => last.1 = equity,
            _ => self.closes.push((date, equity)),
        }
        self.chart.push(at, equity);
    }

    /// A fill of portfolio `portfolio`.
    fn fill(&mut self, portfolio: usize, fill: &FillRecord) {
        self.fills += 1;
        self.fees.add(&fill.fees);
        let row = self
            .instruments
            .entry(fill.instrument_token)
            .or_insert_with(|| InstrumentTally {
                tradingsymbol: None,
                fills: 0,
                trades: 0,
                wins: 0,
                net: Decimal::ZERO,
                fees: Decimal::ZERO,
            });
        if row.tradingsymbol.is_none() {
            row.tradingsymbol.clone_from(&fill.tradingsymbol);
        }
        row.fills += 1;
        row.fees += fill.fees.total.0;
        self.exposure.fill(portfolio, fill);
        if let Some((direction, pnl)) = self.round_trip(portfolio, fill) {
            self.stats.add(pnl);
            match direction {
                Direction::Long => self.long.add(pnl),
                Direction::Short => self.short.add(pnl),
            }
            // The fill's own row: it exists, it was just counted.
            if let Some(row) = self.instruments.get_mut(&fill.instrument_token) {
                row.trades += 1;
                if pnl > Decimal::ZERO {
                    row.wins += 1;
                }
                row.net += pnl;
            }
        }
    }

    /// Moves the fill's round trip on, with average-cost accounting; returns the trade it closed
    /// (its direction and net PnL: realized PnL of its closing quantity − the charges of its
    /// fills), if it closed one.
    fn round_trip(&mut self, portfolio: usize, fill: &FillRecord) -> Option<(Direction, Decimal)> {
        let key = (portfolio, fill.instrument_token);
        let quantity = fill.quantity.as_i64();
        let price = fill.price.0;
        let fee = fill.fees.total.0;
        let direction = Direction::of(fill.side);
        match self.open.remove(&key) {
            None => {
                // A fill of nothing cannot open a trade; its charges still count in the totals.
                if quantity > 0 {
                    self.open
                        .insert(key, OpenTrade::new(direction, quantity, price, fee));
                }
                None
            }
            Some(mut trade) if trade.direction == direction => {
                trade.cost += price * Decimal::from(quantity);
                trade.quantity += quantity;
                trade.fees += fee;
                self.open.insert(key, trade);
                None
            }
            Some(mut trade) => {
                let closing = quantity.min(trade.quantity);
                // A flip pays its charges pro rata: the closing part to the old trade, the rest
                // (as a difference, so nothing is lost to rounding) to the new one.
                let closing_fee = if closing == quantity {
                    fee
                } else {
                    fee * Decimal::from(closing) / Decimal::from(quantity)
                };
                trade.reduce(closing, price);
                trade.fees += closing_fee;
                if trade.quantity > 0 {
                    self.open.insert(key, trade);
                    return None;
                }
                let rest = quantity - closing;
                if rest > 0 {
                    self.open.insert(
                        key,
                        OpenTrade::new(direction, rest, price, fee - closing_fee),
                    );
                }
                Some((trade.direction, trade.realized - trade.fees))
            }
        }
    }

    fn curve_for_chart(&self) -> EquityCurve {
        EquityCurve {
            name: self.name.clone(),
            initial_cash: self.initial_cash,
            points: self.chart.points(),
        }
    }

    fn report(self, span: Option<Span>) -> PortfolioReport {
        let initial_cash = self.initial_cash;
        let final_equity = self.final_equity.unwrap_or(initial_cash);
        let net_pnl = final_equity - initial_cash;
        let stats = &self.stats;

        let cagr = span.and_then(|span| cagr(initial_cash, final_equity, span));
        let max_drawdown = span.and_then(|span| self.drawdown.deepest(span));
        let calmar = match (cagr, &max_drawdown) {
            (Some(cagr), Some(drawdown)) => drawdown
                .pct
                .and_then(|pct| pct.to_f64())
                .filter(|pct| *pct > 0.0)
                .and_then(|pct| ratio(cagr / pct)),
            _ => None,
        };

        let days = daily_changes(initial_cash, &self.closes);
        let returns = daily_returns(&days);
        let best_day = days
            .iter()
            .fold(None::<&DayChange>, |best, day| match best {
                Some(best) if best.pnl() >= day.pnl() => Some(best),
                _ => Some(day),
            })
            .map(DayChange::report);
        let worst_day = days
            .iter()
            .fold(None::<&DayChange>, |worst, day| match worst {
                Some(worst) if worst.pnl() <= day.pnl() => Some(worst),
                _ => Some(day),
            })
            .map(DayChange::report);

        PortfolioReport {
            portfolio_id: self.portfolio_id,
            strategy_id: self.strategy_id,
            initial_cash: money(initial_cash),
            final_equity: money(final_equity),
            net_pnl: money(net_pnl),
            gross_pnl: money(net_pnl + self.fees.total.0),
            fees: self.fees.rounded(),
            fills: self.fills,
            trades: stats.trades,
            open_trades: count(self.open.len()),
            wins: stats.wins,
            losses: stats.losses,
            win_rate: decimal_ratio(Decimal::from(stats.wins), Decimal::from(stats.trades)),
            average_win: mean(stats.gross_wins, stats.wins).map(money),
            average_loss: mean(stats.gross_losses, stats.losses).map(money),
            largest_win: stats.largest_win.map(money),
            largest_loss: stats.largest_loss.map(money),
            profit_factor: if stats.losses == 0 {
                None
            } else {
                decimal_ratio(stats.gross_wins, stats.gross_losses.abs())
            },
            expectancy: mean(stats.net, stats.trades).map(money),
            total_return: decimal_ratio(net_pnl, initial_cash),
            cagr: cagr.and_then(ratio),
            sharpe: returns.as_deref().and_then(sharpe),
            sortino: returns.as_deref().and_then(sortino),
            calmar,
            max_drawdown: max_drawdown.map(DrawdownCalc::report),
            exposure: span.and_then(|span| self.exposure.fraction(span)),
            trading_days: count(days.len()),
            best_day,
            worst_day,
            per_instrument: self
                .instruments
                .into_iter()
                .map(|(instrument_token, row)| InstrumentReport {
                    instrument_token,
                    tradingsymbol: row.tradingsymbol,
                    fills: row.fills,
                    trades: row.trades,
                    wins: row.wins,
                    net_pnl: money(row.net),
                    fees: money(row.fees),
                })
                .collect(),
            long: self.long.report(),
            short: self.short.report(),
            rejections: self.rejections,
        }
    }
}

/// The paisa-rounded amount the report shows, always written with two decimals.
fn money(value: Decimal) -> Money {
    let mut rounded = Money(value).round_to_paisa();
    rounded.0.rescale(2);
    rounded
}

/// A ratio as the report shows it: finite, rounded to 6 decimal places.
fn ratio(value: f64) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    let rounded = (value * 1e6).round() / 1e6;
    // A ratio too large to scale keeps its digits rather than turning into infinity.
    Some(if rounded.is_finite() { rounded } else { value })
}

/// `numerator / denominator` as a report ratio; `None` for a zero denominator.
fn decimal_ratio(numerator: Decimal, denominator: Decimal) -> Option<f64> {
    if denominator.is_zero() {
        return None;
    }
    numerator
        .checked_div(denominator)
        .and_then(|quotient| quotient.to_f64())
        .and_then(ratio)
}

fn mean(sum: Decimal, n: u64) -> Option<Decimal> {
    if n == 0 {
        None
    } else {
        sum.checked_div(Decimal::from(n))
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Exact (unrounded) charges by component.
#[derive(Debug, Clone, Copy, Default)]
struct FeeSums {
    brokerage: Money,
    stt: Money,
    exchange: Money,
    sebi: Money,
    gst: Money,
    stamp: Money,
    dp: Money,
    total: Money,
}

impl FeeSums {
    fn add(&mut self, fees: &FeeBreakdown) {
        self.brokerage += fees.brokerage;
        self.stt += fees.stt;
        self.exchange += fees.exchange_charges;
        self.sebi += fees.sebi_charges;
        self.gst += fees.gst;
        self.stamp += fees.stamp_duty;
        self.dp += fees.dp_charges;
        self.total += fees.total;
    }

    fn rounded(self) -> FeeTotals {
        FeeTotals {
            brokerage: money(self.brokerage.0),
            stt: money(self.stt.0),
            exchange: money(self.exchange.0),
            sebi: money(self.sebi.0),
            gst: money(self.gst.0),
            stamp: money(self.stamp.0),
            dp: money(self.dp.0),
            total: money(self.total.0),
        }
    }
}

/// Which way a round trip went: opened by a buy (long) or by a sell (short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Long,
    Short,
}

impl Direction {
    fn of(side: Side) -> Self {
        match side {
            Side::Buy => Direction::Long,
            Side::Sell => Direction::Short,
        }
    }

    /// +1 long, −1 short: the sign of the PnL per unit the price rises.
    fn sign(self) -> Decimal {
        match self {
            Direction::Long => Decimal::ONE,
            Direction::Short => Decimal::NEGATIVE_ONE,
        }
    }
}

/// A round trip in progress, with average-cost accounting.
#[derive(Debug, Clone)]
struct OpenTrade {
    direction: Direction,
    /// Units held (always positive while the trade is open).
    quantity: i64,
    /// What the units held cost (long) or brought in (short), at their average price.
    cost: Decimal,
    realized: Decimal,
    fees: Decimal,
}

impl OpenTrade {
    fn new(direction: Direction, quantity: i64, price: Decimal, fees: Decimal) -> Self {
        Self {
            direction,
            quantity,
            cost: price * Decimal::from(quantity),
            realized: Decimal::ZERO,
            fees,
        }
    }

    /// Takes `closing` units (at most the quantity held) off at `price`, realizing their PnL
    /// against the average cost.
    fn reduce(&mut self, closing: i64, price: Decimal) {
        // Closing everything takes the whole cost, so a full close is exact whatever the
        // average price's digits.
        let removed = if closing == self.quantity {
            self.cost
        } else {
            self.cost * Decimal::from(closing) / Decimal::from(self.quantity)
        };
        self.realized += self.direction.sign() * (price * Decimal::from(closing) - removed);
        self.cost -= removed;
        self.quantity -= closing;
    }
}

/// Win/loss figures over closed trades (exact).
#[derive(Debug, Default)]
struct TradeStats {
    trades: u64,
    wins: u64,
    losses: u64,
    gross_wins: Decimal,
    gross_losses: Decimal,
    net: Decimal,
    largest_win: Option<Decimal>,
    largest_loss: Option<Decimal>,
}

impl TradeStats {
    fn add(&mut self, pnl: Decimal) {
        self.trades += 1;
        self.net += pnl;
        if pnl > Decimal::ZERO {
            self.wins += 1;
            self.gross_wins += pnl;
            self.largest_win = Some(self.largest_win.map_or(pnl, |w| w.max(pnl)));
        } else if pnl < Decimal::ZERO {
            self.losses += 1;
            self.gross_losses += pnl;
            self.largest_loss = Some(self.largest_loss.map_or(pnl, |l| l.min(pnl)));
        }
    }
}

/// Closed trades of one direction (exact).
#[derive(Debug, Default)]
struct SideTally {
    trades: u64,
    wins: u64,
    net: Decimal,
}

impl SideTally {
    fn add(&mut self, pnl: Decimal) {
        self.trades += 1;
        if pnl > Decimal::ZERO {
            self.wins += 1;
        }
        self.net += pnl;
    }

    fn report(&self) -> SideReport {
        SideReport {
            trades: self.trades,
            wins: self.wins,
            net_pnl: money(self.net),
        }
    }
}

/// One instrument's row so far (exact).
struct InstrumentTally {
    tradingsymbol: Option<String>,
    fills: u64,
    trades: u64,
    wins: u64,
    net: Decimal,
    fees: Decimal,
}

/// `(final / initial)^(1 / years) − 1` over the span in calendar years.
fn cagr(initial: Decimal, final_equity: Decimal, span: Span) -> Option<f64> {
    let years = span.micros() as f64 / MICROS_PER_DAY / DAYS_PER_YEAR;
    if years <= 0.0 || initial <= Decimal::ZERO || final_equity < Decimal::ZERO {
        return None;
    }
    let growth = final_equity.checked_div(initial)?.to_f64()?;
    let cagr = growth.powf(1.0 / years) - 1.0;
    cagr.is_finite().then_some(cagr)
}

/// The deepest drawdown, exact.
#[derive(Debug, Clone)]
struct DrawdownCalc {
    value: Decimal,
    pct: Option<Decimal>,
    start: Timestamp,
    trough: Timestamp,
    recovery: Option<Timestamp>,
    end: Timestamp,
}

impl DrawdownCalc {
    fn report(self) -> Drawdown {
        let until = self.recovery.unwrap_or(self.end);
        Drawdown {
            value: money(self.value),
            pct: self.pct.and_then(|pct| pct.to_f64()).and_then(ratio),
            start: self.start,
            trough: self.trough,
            recovery: self.recovery,
            duration_seconds: (until.unix_micros() - self.start.unix_micros()) / 1_000_000,
        }
    }
}

/// The deepest fall below a running peak, the initial cash at the run's start being the first
/// peak. Falls are ranked by fraction of their peak (what Calmar divides by); a peak that is not
/// positive has no fraction, and such falls rank by rupees below any with one.
#[derive(Debug)]
struct DrawdownTracker {
    peak: Decimal,
    /// When the curve stood at the peak; `None`: the initial cash, at the run's start.
    peak_at: Option<Timestamp>,
    deepest: Option<Fall>,
}

/// A fall below a peak.
#[derive(Debug)]
struct Fall {
    value: Decimal,
    pct: Option<Decimal>,
    start: Option<Timestamp>,
    trough: Timestamp,
    recovery: Option<Timestamp>,
}

impl DrawdownTracker {
    fn new(initial: Decimal) -> Self {
        Self {
            peak: initial,
            peak_at: None,
            deepest: None,
        }
    }

    fn push(&mut self, at: Timestamp, equity: Decimal) {
        if equity >= self.peak {
            // Back at the peak: the deepest fall, if it is the one still open, has recovered.
            if let Some(deepest) = self.deepest.as_mut() {
                if deepest.recovery.is_none() {
                    deepest.recovery = Some(at);
                }
            }
            self.peak = equity;
            self.peak_at = Some(at);
            return;
        }
        let value = self.peak - equity;
        let pct = if self.peak > Decimal::ZERO {
            value.checked_div(self.peak)
        } else {
            None
        };
        let deeper = match &self.deepest {
            None => true,
            Some(d) => {
                (pct.unwrap_or(Decimal::ZERO), value) > (d.pct.unwrap_or(Decimal::ZERO), d.value)
            }
        };
        if deeper {
            self.deepest = Some(Fall {
                value,
                pct,
                start: self.peak_at,
                trough: at,
                recovery: None,
            });
        }
    }

    fn deepest(&self, span: Span) -> Option<DrawdownCalc> {
        self.deepest.as_ref().map(|fall| DrawdownCalc {
            value: fall.value,
            pct: fall.pct,
            start: fall.start.unwrap_or(span.start),
            trough: fall.trough,
            recovery: fall.recovery,
            end: span.end.max(fall.trough),
        })
    }
}

/// One IST trading day's end-of-day equity against the previous day's.
#[derive(Debug, Clone)]
struct DayChange {
    date: NaiveDate,
    previous: Decimal,
    close: Decimal,
}

impl DayChange {
    fn pnl(&self) -> Decimal {
        self.close - self.previous
    }

    fn report(&self) -> DayPnl {
        DayPnl {
            date: self.date,
            pnl: money(self.pnl()),
        }
    }
}

/// Every day's close against the day before (the first against the initial cash).
fn daily_changes(initial: Decimal, closes: &[(NaiveDate, Decimal)]) -> Vec<DayChange> {
    let mut previous = initial;
    closes
        .iter()
        .map(|&(date, close)| {
            let day = DayChange {
                date,
                previous,
                close,
            };
            previous = close;
            day
        })
        .collect()
}

/// Simple daily returns; `None` when a day starts from no positive equity (no return defined).
fn daily_returns(days: &[DayChange]) -> Option<Vec<f64>> {
    days.iter()
        .map(|day| {
            if day.previous <= Decimal::ZERO {
                return None;
            }
            day.pnl().checked_div(day.previous)?.to_f64()
        })
        .collect()
}

fn sharpe(returns: &[f64]) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let variance = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let deviation = variance.sqrt();
    if deviation.is_nan() || deviation <= DEVIATION_EPSILON {
        return None;
    }
    ratio(mean / deviation * TRADING_DAYS_PER_YEAR.sqrt())
}

fn sortino(returns: &[f64]) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let downside = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    if downside.is_nan() || downside <= DEVIATION_EPSILON {
        return None;
    }
    ratio(mean / downside * TRADING_DAYS_PER_YEAR.sqrt())
}

/// How long the fills left any position open (in any instrument of any portfolio among them);
/// a position still open at the end counts until the end.
#[derive(Debug, Default)]
struct ExposureTracker {
    positions: HashMap<(usize, InstrumentToken), i64>,
    open: usize,
    held_since: i64,
    held: i64,
}

impl ExposureTracker {
    fn fill(&mut self, portfolio: usize, fill: &FillRecord) {
        let position = self
            .positions
            .entry((portfolio, fill.instrument_token))
            .or_insert(0);
        let was_open = *position != 0;
        *position += fill.side.sign() * fill.quantity.as_i64();
        let is_open = *position != 0;
        let at = fill.exchange_timestamp.unix_micros();
        match (was_open, is_open) {
            (false, true) => {
                if self.open == 0 {
                    self.held_since = at;
                }
                self.open += 1;
            }
            (true, false) => {
                self.open -= 1;
                if self.open == 0 {
                    self.held += at - self.held_since;
                }
            }
            _ => {}
        }
    }

    /// The fraction of the span held; `None` for a zero span. Every fill lies inside the span.
    fn fraction(&self, span: Span) -> Option<f64> {
        let length = span.micros();
        if length <= 0 {
            return None;
        }
        let mut held = self.held;
        if self.open > 0 {
            held += span.end.unix_micros() - self.held_since;
        }
        ratio(held as f64 / length as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EquityPoint, PortfolioStart};
    use alpha_panda_core::{FeeBreakdown, OrderId, Price, Quantity};
    use chrono::{TimeZone, Utc};
    use rust_decimal_macros::dec;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
        Timestamp::from_datetime(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap())
    }

    /// Seconds after 2025-01-06T03:45:00Z (09:15 IST, a Monday).
    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(at(2025, 1, 6, 3, 45).unix_micros() + seconds * 1_000_000)
            .unwrap()
    }

    fn pid(name: &str) -> PortfolioId {
        PortfolioId::new(format!("paper:{name}")).unwrap()
    }

    fn portfolio(name: &str, cash: Decimal) -> PortfolioStart {
        PortfolioStart {
            portfolio_id: pid(name),
            strategy_id: StrategyId::new(name).unwrap(),
            initial_cash: Money(cash),
        }
    }

    fn point(name: &str, when: Timestamp, equity: Decimal) -> EquityPoint {
        EquityPoint {
            at: when,
            portfolio_id: pid(name),
            cash: equity,
            realized_pnl: Decimal::ZERO,
            unrealized_pnl: Decimal::ZERO,
            fees: Decimal::ZERO,
            equity,
        }
    }

    fn fees(brokerage: Decimal) -> FeeBreakdown {
        FeeBreakdown {
            brokerage: Money(brokerage),
            total: Money(brokerage),
            ..FeeBreakdown::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        name: &str,
        when: Timestamp,
        token: u32,
        side: Side,
        quantity: u32,
        price: Decimal,
        fee: Decimal,
    ) -> FillRecord {
        FillRecord {
            exchange_timestamp: when,
            portfolio_id: pid(name),
            strategy_id: StrategyId::new(name).unwrap(),
            order_id: OrderId::new(format!("o{}", when.unix_micros())).unwrap(),
            instrument_token: InstrumentToken(token),
            tradingsymbol: Some(format!("SYM{token}")),
            side,
            quantity: Quantity(quantity),
            price: Price(price),
            fees: fees(fee),
        }
    }

    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("ratio defined");
        assert!(
            (actual - expected).abs() < 1e-6,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn max_drawdown_has_its_peak_trough_and_recovery() {
        let history = History {
            portfolios: vec![portfolio("a", dec!(100000))],
            equity: vec![
                point("a", t(60), dec!(105000)), // new peak
                point("a", t(120), dec!(99750)), // −5 250 = 5 % of 105 000
                point("a", t(180), dec!(102000)),
                point("a", t(240), dec!(94500)), // −10 500 = 10 % of 105 000: the deepest
                point("a", t(300), dec!(104000)), // still below the peak
                point("a", t(360), dec!(106000)), // recovered (≥ 105 000), new peak
                point("a", t(420), dec!(100700)), // −5 300 = 5 % of 106 000: shallower
            ],
            start: Some(t(0)),
            end: Some(t(600)),
            ..History::default()
        };
        let report = build_report(&history);
        let drawdown = report.portfolios[0].max_drawdown.clone().unwrap();
        assert_eq!(drawdown.value, Money(dec!(10500)));
        close(drawdown.pct, 0.1);
        assert_eq!(drawdown.start, t(60));
        assert_eq!(drawdown.trough, t(240));
        assert_eq!(drawdown.recovery, Some(t(360)));
        // Peak at 60 s, recovery at 360 s.
        assert_eq!(drawdown.duration_seconds, 300);
        // Single portfolio: the total is the same curve.
        assert_eq!(report.total.max_drawdown, Some(drawdown));

        // Never recovered: the duration runs to the end of the run.
        let mut unrecovered = history.clone();
        unrecovered.equity.truncate(5);
        let drawdown = build_report(&unrecovered).portfolios[0]
            .max_drawdown
            .clone()
            .unwrap();
        assert_eq!(drawdown.trough, t(240));
        assert_eq!(drawdown.recovery, None);
        assert_eq!(drawdown.duration_seconds, 600 - 60);

        // The initial cash is the first peak: a curve that only falls draws down from the start.
        let falling = History {
            portfolios: vec![portfolio("a", dec!(1000))],
            equity: vec![point("a", t(10), dec!(900)), point("a", t(20), dec!(950))],
            start: Some(t(0)),
            end: Some(t(30)),
            ..History::default()
        };
        let drawdown = build_report(&falling).portfolios[0]
            .max_drawdown
            .clone()
            .unwrap();
        assert_eq!(drawdown.value, Money(dec!(100)));
        close(drawdown.pct, 0.1);
        assert_eq!((drawdown.start, drawdown.trough), (t(0), t(10)));

        // A rising curve has none, and no Calmar.
        let rising = History {
            portfolios: vec![portfolio("a", dec!(1000))],
            equity: vec![point("a", t(10), dec!(1000)), point("a", t(20), dec!(1100))],
            start: Some(t(0)),
            end: Some(t(30)),
            ..History::default()
        };
        let report = build_report(&rising);
        assert_eq!(report.portfolios[0].max_drawdown, None);
        assert_eq!(report.portfolios[0].calmar, None);
    }

    #[test]
    fn sharpe_and_sortino_from_end_of_day_equity_in_ist() {
        // Days (IST) and their closes, from 100 000:
        //   Mon 6 Jan: 101 000      r1 = +0.01
        //   Tue 7 Jan:  99 990      r2 = −1 010 / 101 000 = −0.01
        //   Wed 8 Jan: 101 989.8    r3 = +1 999.8 / 99 990 = +0.02
        //   Thu 9 Jan: 101 989.8    r4 = 0
        // mean = 0.02 / 4 = 0.005
        // deviations 0.005, −0.015, 0.015, −0.005 → squares sum 0.0005; sample variance
        //   0.0005 / 3 = 0.000166667; sd = 0.0129099445
        // Sharpe = 0.005 / 0.0129099445 × √252 (15.8745079) = 6.1481705
        // downside: only r2 → 0.0001 / 4 = 0.000025; dd = 0.005
        // Sortino = 0.005 / 0.005 × √252 = 15.8745079
        let history = History {
            portfolios: vec![portfolio("a", dec!(100000))],
            equity: vec![
                point("a", at(2025, 1, 6, 4, 0), dec!(150000)), // intraday, not a close
                point("a", at(2025, 1, 6, 10, 0), dec!(101000)),
                // 19:00 UTC on the 6th is 00:30 IST on the 7th: Tuesday's first point, not
                // Monday's close.
                point("a", at(2025, 1, 6, 19, 0), dec!(90000)),
                point("a", at(2025, 1, 7, 10, 0), dec!(99990)),
                point("a", at(2025, 1, 8, 10, 0), dec!(101989.8)),
                point("a", at(2025, 1, 9, 10, 0), dec!(101989.8)),
            ],
            start: Some(at(2025, 1, 6, 3, 45)),
            end: Some(at(2025, 1, 9, 10, 0)),
            ..History::default()
        };
        let report = &build_report(&history).portfolios[0];
        assert_eq!(report.trading_days, 4);
        close(report.sharpe, 6.148_170_5);
        close(report.sortino, 15.874_507_9);
        let day = |d| NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        assert_eq!(
            report.best_day,
            Some(DayPnl {
                date: day(8),
                pnl: Money(dec!(1999.80))
            })
        );
        assert_eq!(
            report.worst_day,
            Some(DayPnl {
                date: day(7),
                pnl: Money(dec!(-1010))
            })
        );

        // One day is not enough for a deviation.
        let mut one_day = history.clone();
        one_day.equity.truncate(2);
        let report = &build_report(&one_day).portfolios[0];
        assert_eq!((report.sharpe, report.sortino), (None, None));

        // Never down: no downside deviation, but a Sharpe ratio.
        let mut never_down = history;
        never_down.equity = vec![
            point("a", at(2025, 1, 6, 10, 0), dec!(101000)),
            point("a", at(2025, 1, 7, 10, 0), dec!(103020)), // +2 %
        ];
        let report = &build_report(&never_down).portfolios[0];
        // r = 0.01, 0.02: mean 0.015, sd = √((0.005² × 2) / 1) = 0.0070710678
        // Sharpe = 0.015 / 0.0070710678 × 15.8745079 = 33.6749165
        close(report.sharpe, 33.674_916_5);
        assert_eq!(report.sortino, None);
    }

    #[test]
    fn round_trips_with_a_flip_give_win_rate_profit_factor_and_expectancy() {
        use Side::{Buy, Sell};
        let fills = vec![
            // Instrument 1, trade 1 (long): 10 @ 100 → 10 @ 110: realized +100, fees 10 + 10,
            // PnL +80.
            fill("a", t(1), 1, Buy, 10, dec!(100), dec!(10)),
            fill("a", t(2), 1, Sell, 10, dec!(110), dec!(10)),
            // Trade 2 (long): 5 @ 200 + 5 @ 220 → average 210.
            fill("a", t(3), 1, Buy, 5, dec!(200), dec!(5)),
            fill("a", t(4), 1, Buy, 5, dec!(220), dec!(5)),
            // Sell 15 @ 205 flips: 10 close trade 2 at (205 − 210) × 10 = −50, with 10/15 of the
            // fee 15 = 10; trade 2 PnL = −50 − (5 + 5 + 10) = −70. The other 5 open trade 3
            // (short @ 205) with the remaining fee 5.
            fill("a", t(5), 1, Sell, 15, dec!(205), dec!(15)),
            // Trade 3 closes: (205 − 195) × 5 = +50, fees 5 + 5 → PnL +40.
            fill("a", t(6), 1, Buy, 5, dec!(195), dec!(5)),
            // Instrument 2: a short still open at the end.
            fill("a", t(7), 2, Sell, 4, dec!(50), dec!(2)),
            // Instrument 3, trade 4 (long) with a partial close: 10 @ 100; sell 4 @ 90
            // (−40); sell 6 @ 130 (+180) → realized 140, fees 3 → PnL +137.
            fill("a", t(8), 3, Buy, 10, dec!(100), dec!(1)),
            fill("a", t(9), 3, Sell, 4, dec!(90), dec!(1)),
            fill("a", t(10), 3, Sell, 6, dec!(130), dec!(1)),
        ];
        let history = History {
            portfolios: vec![portfolio("a", dec!(100000))],
            fills,
            start: Some(t(0)),
            end: Some(t(20)),
            ..History::default()
        };
        let report = &build_report(&history).portfolios[0];
        // Trades: +80, −70, +40, +137.
        assert_eq!(report.trades, 4);
        assert_eq!(report.open_trades, 1);
        assert_eq!((report.wins, report.losses), (3, 1));
        close(report.win_rate, 0.75);
        // Wins 80 + 40 + 137 = 257 over |−70| = 3.6714286.
        close(report.profit_factor, 3.671_428_6);
        // (80 − 70 + 40 + 137) / 4 = 187 / 4 = 46.75.
        assert_eq!(report.expectancy, Some(Money(dec!(46.75))));
        // 257 / 3 = 85.666… → 85.67.
        assert_eq!(report.average_win, Some(Money(dec!(85.67))));
        assert_eq!(report.average_loss, Some(Money(dec!(-70))));
        assert_eq!(report.largest_win, Some(Money(dec!(137))));
        assert_eq!(report.largest_loss, Some(Money(dec!(-70))));
        // Long: trades 1, 2 and 4 (80 − 70 + 137 = 147); short: trade 3.
        assert_eq!(
            report.long,
            SideReport {
                trades: 3,
                wins: 2,
                net_pnl: Money(dec!(147))
            }
        );
        assert_eq!(
            report.short,
            SideReport {
                trades: 1,
                wins: 1,
                net_pnl: Money(dec!(40))
            }
        );
        // Fees: 10 + 10 + 5 + 5 + 15 + 5 + 2 + 1 + 1 + 1 = 55.
        assert_eq!(report.fees.total, Money(dec!(55)));
        assert_eq!(report.fees.brokerage, Money(dec!(55)));
        assert_eq!(report.fees.stt, Money::ZERO);
        let rows: Vec<(u32, u64, u64, Money, Money)> = report
            .per_instrument
            .iter()
            .map(|row| {
                (
                    row.instrument_token.0,
                    row.trades,
                    row.wins,
                    row.net_pnl,
                    row.fees,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                // 80 − 70 + 40 = 50; fees 10 + 10 + 5 + 5 + 15 + 5 = 50.
                (1, 3, 2, Money(dec!(50)), Money(dec!(50))),
                (2, 0, 0, Money::ZERO, Money(dec!(2))),
                (3, 1, 1, Money(dec!(137)), Money(dec!(3))),
            ]
        );
        assert_eq!(
            report.per_instrument[0].tradingsymbol.as_deref(),
            Some("SYM1")
        );

        // An uneven flip: long 3 @ 10, sell 5 @ 12 with fee 1 → 3/5 of it (0.6) closes the
        // long: (12 − 10) × 3 − 0.6 = 5.4; the short of 2 keeps 0.4.
        let flip = History {
            portfolios: vec![portfolio("a", dec!(1000))],
            fills: vec![
                fill("a", t(1), 1, Buy, 3, dec!(10), dec!(0)),
                fill("a", t(2), 1, Sell, 5, dec!(12), dec!(1)),
                // Covers the short of 2 @ 12 at 13: −2 − 0.4 − 0 = −2.4.
                fill("a", t(3), 1, Buy, 2, dec!(13), dec!(0)),
            ],
            start: Some(t(0)),
            end: Some(t(4)),
            ..History::default()
        };
        let report = &build_report(&flip).portfolios[0];
        assert_eq!(report.largest_win, Some(Money(dec!(5.4))));
        assert_eq!(report.largest_loss, Some(Money(dec!(-2.4))));
        assert_eq!(report.open_trades, 0);
        // 5.4 / 2.4 = 2.25.
        close(report.profit_factor, 2.25);
    }

    #[test]
    fn total_sums_portfolios_at_every_instant() {
        // a starts with 100 000, b with 50 000.
        //   t1: a → 101 000             total 101 000 + 50 000 = 151 000 (peak)
        //   t2: b →  49 000             total 101 000 + 49 000 = 150 000 (−1 000)
        //   t3: a → 99 000, b → 52 000  total 151 000 (recovered)
        let history = History {
            portfolios: vec![portfolio("a", dec!(100000)), portfolio("b", dec!(50000))],
            equity: vec![
                point("a", t(10), dec!(101000)),
                point("b", t(20), dec!(49000)),
                point("a", t(30), dec!(99000)),
                point("b", t(30), dec!(52000)),
                // Not a listed portfolio: left out of the total.
                point("ghost", t(30), dec!(1)),
            ],
            fills: vec![
                fill("a", t(10), 1, Side::Buy, 1, dec!(100), dec!(1.25)),
                fill("b", t(20), 1, Side::Buy, 1, dec!(100), dec!(0.75)),
            ],
            rejections: vec![
                Rejection {
                    exchange_timestamp: t(5),
                    strategy_id: StrategyId::new("a").unwrap(),
                    instrument_token: InstrumentToken(1),
                    rules: vec!["max_position".into(), "daily_loss".into()],
                },
                Rejection {
                    exchange_timestamp: t(6),
                    strategy_id: StrategyId::new("a").unwrap(),
                    instrument_token: InstrumentToken(1),
                    rules: vec!["max_position".into()],
                },
                Rejection {
                    exchange_timestamp: t(7),
                    strategy_id: StrategyId::new("b").unwrap(),
                    instrument_token: InstrumentToken(1),
                    rules: vec!["max_position".into()],
                },
            ],
            start: Some(t(0)),
            end: Some(t(40)),
            ..History::default()
        };
        assert_eq!(
            report_of(&history).1.equity[0].points,
            vec![
                (t(10), dec!(151000)),
                (t(20), dec!(150000)),
                (t(30), dec!(151000))
            ]
        );
        let report = build_report(&history);
        let total = &report.total;
        assert_eq!(total.portfolio_id, None);
        assert_eq!(total.initial_cash, Money(dec!(150000)));
        assert_eq!(total.final_equity, Money(dec!(151000)));
        assert_eq!(total.net_pnl, Money(dec!(1000)));
        // Charges 1.25 + 0.75 = 2; gross = 1 000 + 2.
        assert_eq!(total.fees.total, Money(dec!(2)));
        assert_eq!(total.gross_pnl, Money(dec!(1002)));
        close(total.total_return, 1000.0 / 150000.0);
        let drawdown = total.max_drawdown.clone().unwrap();
        assert_eq!(drawdown.value, Money(dec!(1000)));
        close(drawdown.pct, 1000.0 / 151000.0);
        assert_eq!(
            (drawdown.start, drawdown.trough, drawdown.recovery),
            (t(10), t(20), Some(t(30)))
        );
        // Both hold instrument 1 from t10 to the end (t40): 30 of 40 s.
        close(total.exposure, 0.75);
        assert_eq!(total.open_trades, 2);

        let (a, b) = (&report.portfolios[0], &report.portfolios[1]);
        assert_eq!(a.portfolio_id, Some(pid("a")));
        assert_eq!(a.final_equity, Money(dec!(99000)));
        assert_eq!(b.final_equity, Money(dec!(52000)));
        assert_eq!(a.fees.total, Money(dec!(1.25)));
        // b: held from t20 to t40 → 20 / 40.
        close(b.exposure, 0.5);
        let rules = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        assert_eq!(
            report.rejections_by_rule,
            rules(&[("daily_loss", 1), ("max_position", 3)])
        );
        assert_eq!(
            a.rejections,
            rules(&[("daily_loss", 1), ("max_position", 2)])
        );
        assert_eq!(b.rejections, rules(&[("max_position", 1)]));
        assert_eq!(total.rejections, report.rejections_by_rule);
    }

    #[test]
    fn cagr_calmar_and_exposure_over_the_calendar_span() {
        let start = t(0);
        let end =
            Timestamp::from_unix_micros(start.unix_micros() + (365.25 * MICROS_PER_DAY) as i64)
                .unwrap();
        let mid = Timestamp::from_unix_micros(start.unix_micros() + 86_400_000_000).unwrap();
        let history = History {
            portfolios: vec![portfolio("a", dec!(100000))],
            // Down 5 % (of the 100 000 peak) on day 1, up to +10 % at the end of a year.
            equity: vec![point("a", mid, dec!(95000)), point("a", end, dec!(110000))],
            fills: vec![
                // Held for the first quarter of the span: open at 0, closed at a quarter.
                fill("a", start, 7, Side::Buy, 1, dec!(10), dec!(0)),
                fill(
                    "a",
                    Timestamp::from_unix_micros(
                        start.unix_micros() + (365.25 * MICROS_PER_DAY / 4.0) as i64,
                    )
                    .unwrap(),
                    7,
                    Side::Sell,
                    1,
                    dec!(10),
                    dec!(0),
                ),
            ],
            start: Some(start),
            end: Some(end),
            ..History::default()
        };
        let report = &build_report(&history).portfolios[0];
        // One year: (110 000 / 100 000)^1 − 1 = 0.1.
        close(report.cagr, 0.1);
        close(report.total_return, 0.1);
        // Calmar = 0.1 / 0.05 = 2.
        close(report.calmar, 2.0);
        close(report.exposure, 0.25);

        // A zero span has no growth rate.
        let instant = History {
            portfolios: vec![portfolio("a", dec!(100))],
            start: Some(start),
            end: Some(start),
            ..History::default()
        };
        let report = &build_report(&instant).portfolios[0];
        assert_eq!((report.cagr, report.exposure), (None, None));
        assert_eq!(report.final_equity, Money(dec!(100)));
    }

    #[test]
    fn a_long_curve_is_kept_bounded_with_its_extremes() {
        let mut curve = ThinnedCurve::default();
        // Every point kept while the buckets are few.
        for i in 0..100 {
            curve.push(t(i), Decimal::from(i));
        }
        assert_eq!(curve.points().len(), 100);
        // A million points: a bounded number, the lowest and highest among them, in time order.
        let mut curve = ThinnedCurve::default();
        for i in 0..1_000_000i64 {
            let value = match i {
                333_333 => dec!(-5),
                777_777 => dec!(5000),
                _ => Decimal::from(i % 100),
            };
            curve.push(t(i), value);
        }
        let points = curve.points();
        assert!(points.len() <= 2 * CHART_BUCKETS, "{} points", points.len());
        assert!(points.contains(&(t(333_333), dec!(-5))));
        assert!(points.contains(&(t(777_777), dec!(5000))));
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn records_folded_as_they_come_give_the_report_of_the_sorted_history() {
        // The same records, fed one at a time in time order, interleaved as a run makes them.
        let history = History {
            portfolios: vec![portfolio("a", dec!(100000)), portfolio("b", dec!(50000))],
            equity: vec![
                point("a", t(10), dec!(100990)),
                point("b", t(20), dec!(49000)),
                point("a", t(30), dec!(99000)),
                point("b", t(30), dec!(52000)),
            ],
            fills: vec![
                fill("a", t(10), 1, Side::Buy, 2, dec!(100), dec!(1.25)),
                fill("b", t(20), 1, Side::Sell, 1, dec!(100), dec!(0.75)),
                fill("a", t(30), 1, Side::Sell, 2, dec!(104), dec!(1.5)),
            ],
            start: Some(t(0)),
            end: Some(t(40)),
            ..History::default()
        };
        let mut builder = ReportBuilder::new(&history.portfolios);
        builder.fill(&history.fills[0]);
        builder.equity(&history.equity[0]);
        builder.fill(&history.fills[1]);
        builder.equity(&history.equity[1]);
        builder.fill(&history.fills[2]);
        builder.equity(&history.equity[2]);
        builder.equity(&history.equity[3]);
        let (streamed, _) = builder.finish(history.start, history.end, None);
        assert_eq!(streamed, build_report(&history));
        assert_eq!(streamed.portfolios[0].trades, 1);
        assert_eq!(streamed.total.open_trades, 1);
    }
}
