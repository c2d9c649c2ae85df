//! The backtest: the services' decision cores — the strategy runner, the risk desk, the paper
//! trader, the portfolio book — fed one tick at a time, in one thread, with no log and no runtime.
//! The market feed's part (reading the file, the tick guard) is [`crate::tick_file::ReadAhead`]'s,
//! on a thread of its own.
//!
//! Each tick is carried to the end of its causal chain before the next one is read: the paper
//! trader's resting orders and the portfolios see the tick, the strategies answer it, every signal
//! goes to the risk desk, every validated signal to the paper trader, and every fill or failure back
//! to the desk and the book. The steps wait in one queue, first in first out, the way they would
//! wait on the log's topics. Ids are derived as the runtime derives them (the tick's number in its
//! file, then each output's place among its cause's outputs), so a backtest's orders and fills carry
//! the ids `run` gives them, and the two can be diffed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    derive_event_id, Broker, EventId, Instrument, InstrumentToken, MarketTick, Money, OrderId,
    Payload, PortfolioId, Price, Side, Timestamp,
};
use alpha_panda_services::market_feed::feed::{deterministic_ids_of_digest, TickIds};
use alpha_panda_services::market_feed::TickRejection;
use alpha_panda_services::portfolio_manager::service::PortfolioBook;
use alpha_panda_services::risk_manager::RiskDesk;
use alpha_panda_services::strategy_runner::{RunnerStrategy, StrategyRunner};
use alpha_panda_services::trading_engine::service::SERVICE as TRADING_ENGINE;
use alpha_panda_services::{OrderEvent, PaperConfig, PaperTrader, Portfolio, RiskLimits};
use alpha_panda_stream::Output;
use rust_decimal::Decimal;
use tracing::warn;

use crate::history::{
    EquityPoint, FillRecord, OrderRecord, PortfolioStart, PriceSeries, Rejection,
};
use crate::journal::Journal;

/// A backtest's namespace: its orders are paper orders, its portfolios paper portfolios.
const BROKER: Broker = Broker::Paper;

/// The most prices kept per instrument for the trades chart, and fills per side; past it, every
/// other one goes and the stride doubles, so the chart's memory does not grow with the run.
const CHART_POINTS: usize = 1024;
const CHART_FILLS: usize = 512;

/// What a backtest runs, all of it from the settings `run` uses (see the CLI's composition root).
pub struct BacktestSetup {
    /// The strategies.
    pub strategies: Vec<RunnerStrategy>,
    /// The paper namespace's risk limits.
    pub limits: RiskLimits,
    /// The paper fill model: slippage and fees.
    pub paper: PaperConfig,
    /// The instruments master (tick and lot sizes, symbols).
    pub instruments: Arc<HashMap<InstrumentToken, Instrument>>,
    /// Cash each portfolio starts with.
    pub initial_cash: Money,
    /// Exchange time between two points of the equity curve.
    pub equity_every: Duration,
    /// Ticks before this are read (they count for ids) but not traded.
    pub from: Option<Timestamp>,
    /// Ticks after this are read but not traded.
    pub to: Option<Timestamp>,
    /// The instrument of the trades chart (default: the one with the most fills).
    pub chart: Option<InstrumentToken>,
}

/// Counters of a backtest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BacktestCounts {
    /// Ticks read from the file.
    pub ticks: u64,
    /// Ticks the market feed's guard refused (off the tick grid, an impossible jump).
    pub refused_ticks: u64,
    /// Ticks outside `--from`/`--to`.
    pub outside_window: u64,
    /// Ticks earlier than the tick before them (replayed in file order, as `run` does).
    pub out_of_order: u64,
    /// Signals the strategies emitted.
    pub signals: u64,
    /// Signals the risk desk refused.
    pub rejected_signals: u64,
    /// Orders placed.
    pub orders: u64,
    /// Fills.
    pub fills: u64,
    /// Orders that failed.
    pub failed_orders: u64,
}

impl BacktestSetup {
    /// The portfolios the backtest trades: one per strategy, each with the initial cash.
    pub fn portfolios(&self) -> Vec<PortfolioStart> {
        self.strategies
            .iter()
            .map(|s| PortfolioStart {
                portfolio_id: PortfolioId::for_strategy(BROKER, s.strategy.id()),
                strategy_id: s.strategy.id().clone(),
                initial_cash: self.initial_cash,
            })
            .collect()
    }
}

/// What a backtest leaves besides its journal's records.
#[derive(Debug)]
pub struct BacktestOutcome<J> {
    /// The journal, every record handed to it.
    pub journal: J,
    /// Counters.
    pub counts: BacktestCounts,
    /// The exchange time of the first tick (None: no tick).
    pub start: Option<Timestamp>,
    /// The exchange time of the last tick.
    pub end: Option<Timestamp>,
    /// The trades chart's instrument: its prices and fills.
    pub chart: Option<PriceSeries>,
}

/// A step of a tick's causal chain, waiting its turn.
enum Step {
    /// A strategy's signal, or a risk desk's answer: an output with the id the runtime gives it.
    Output(Output),
    /// The `ordinal`-th order event the paper trader emitted for `cause`; its id is derived only
    /// where one is needed (a fill's: the risk desk remembers the fills it applied).
    Order(OrderEvent, EventId, u32),
}

/// Points of a chart, thinned evenly as the run grows: every `stride`-th is kept, and when more
/// than `limit` are, every other one goes and the stride doubles.
#[derive(Default)]
struct Thinned {
    stride: u64,
    seen: u64,
    points: Vec<(Timestamp, Price)>,
}

impl Thinned {
    fn push(&mut self, at: Timestamp, price: Price, limit: usize) {
        if self.seen % self.stride.max(1) == 0 {
            self.points.push((at, price));
            if self.points.len() > limit {
                let kept = self.points.iter().step_by(2).copied().collect();
                self.points = kept;
                self.stride = self.stride.max(1) * 2;
            }
        }
        self.seen += 1;
    }
}

/// One instrument's trades chart: its prices at each equity interval, and its fills.
#[derive(Default)]
struct InstrumentChart {
    /// The symbol its first fill knew, for an instrument the master does not.
    tradingsymbol: Option<String>,
    prices: Thinned,
    buys: Thinned,
    sells: Thinned,
}

/// The backtest of one tick file.
pub struct Backtest<J> {
    runner: StrategyRunner,
    desk: RiskDesk,
    trader: PaperTrader,
    book: PortfolioBook,
    instruments: Arc<HashMap<InstrumentToken, Instrument>>,
    initial_cash: Money,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    chart: Option<InstrumentToken>,
    /// The BLAKE3 digest of the file: with the first tick's time, the base of the tick ids.
    identity: [u8; 32],
    ids: Option<TickIds>,
    /// The number of the next tick read.
    sequence: u64,
    equity_every: i64,
    next_sample: Option<i64>,
    last_tick_at: Option<Timestamp>,
    last_prices: rustc_hash::FxHashMap<InstrumentToken, Price>,
    /// Every instrument's chart, or only `chart`'s when it is given.
    charts: BTreeMap<InstrumentToken, InstrumentChart>,
    /// Fills per instrument, to chart the one with the most by default.
    fills_per_instrument: BTreeMap<InstrumentToken, u64>,
    seen_instruments: rustc_hash::FxHashSet<InstrumentToken>,
    unknown_instruments: BTreeSet<InstrumentToken>,
    queue: VecDeque<Step>,
    /// The strategies' answers to the tick at hand: one buffer for the run, not one per tick.
    signals: Vec<Output>,
    portfolios: Vec<PortfolioStart>,
    start: Option<Timestamp>,
    journal: J,
    /// Open orders, with their place in the order they were placed, until they fill or fail.
    open_orders: HashMap<OrderId, (u64, OrderRecord)>,
    counts: BacktestCounts,
}

impl<J: Journal> Backtest<J> {
    /// A backtest of the file whose BLAKE3 digest is `identity` (tick ids derive from it, as the market
    /// feed derives them for the same file), handing its records to `journal` as they happen.
    pub fn new(setup: BacktestSetup, identity: [u8; 32], journal: J) -> Self {
        let master: Vec<Instrument> = setup.instruments.values().cloned().collect();
        let portfolios = setup.portfolios();
        let equity_every = i64::try_from(setup.equity_every.as_micros())
            .unwrap_or(i64::MAX)
            .max(1);
        Self {
            runner: StrategyRunner::new(setup.strategies, &[BROKER]),
            desk: RiskDesk::new(
                BROKER,
                setup.limits,
                setup.instruments.clone(),
                Default::default(),
            ),
            trader: PaperTrader::new(setup.paper, &master),
            book: PortfolioBook::default(),
            instruments: setup.instruments,
            initial_cash: setup.initial_cash,
            from: setup.from,
            to: setup.to,
            chart: setup.chart,
            identity,
            ids: None,
            sequence: 0,
            equity_every,
            next_sample: None,
            last_tick_at: None,
            last_prices: Default::default(),
            charts: BTreeMap::new(),
            fills_per_instrument: BTreeMap::new(),
            seen_instruments: Default::default(),
            unknown_instruments: BTreeSet::new(),
            queue: VecDeque::new(),
            signals: Vec::new(),
            portfolios,
            start: None,
            journal,
            open_orders: HashMap::new(),
            counts: BacktestCounts::default(),
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> &BacktestCounts {
        &self.counts
    }

    /// A tick of the file the market feed's guard accepted, in file order. Every tick the file
    /// yields comes here or to [`Backtest::on_refused`]: each takes its number, as on the feed.
    pub fn on_tick(&mut self, tick: &MarketTick) {
        let mut ids = self.ids_for(tick);
        self.trade_tick(tick, &mut ids);
        self.ids = Some(ids);
    }

    /// A tick the market feed's guard refused (off its tick grid, an impossible jump): it trades
    /// nothing but takes its number.
    pub fn on_refused(&mut self, tick: &MarketTick, reason: &TickRejection) {
        let ids = self.ids_for(tick);
        self.ids = Some(ids);
        self.counts.ticks += 1;
        self.counts.refused_ticks += 1;
        if self.counts.refused_ticks <= 10 {
            warn!(tick = self.sequence, %reason, "tick refused by the market feed's guard; skipped");
        }
        self.sequence += 1;
    }

    /// The tick ids; the first tick's time is part of their base, as on the market feed.
    fn ids_for(&mut self, tick: &MarketTick) -> TickIds {
        self.ids.take().unwrap_or_else(|| {
            TickIds::new(deterministic_ids_of_digest(
                &self.identity,
                tick.exchange_timestamp,
            ))
        })
    }

    fn trade_tick(&mut self, tick: &MarketTick, ids: &mut TickIds) {
        let sequence = self.sequence;
        self.sequence += 1;
        self.counts.ticks += 1;
        let at = tick.exchange_timestamp;
        if self.from.is_some_and(|from| at < from) || self.to.is_some_and(|to| at > to) {
            self.counts.outside_window += 1;
            return;
        }
        if self.last_tick_at.is_some_and(|last| at < last) {
            self.counts.out_of_order += 1;
        }
        let token = tick.instrument_token;
        // The master is asked once per instrument, not once per tick.
        if self.seen_instruments.insert(token)
            && !self.instruments.contains_key(&token)
            && self.unknown_instruments.insert(token)
        {
            warn!(instrument_token = %token, "instrument not in the instruments master; it trades with tick size 0.05 and lot size 1");
        }
        self.sample_equity(at);
        self.last_tick_at = Some(self.last_tick_at.map_or(at, |last| last.max(at)));
        self.start.get_or_insert(at);
        self.last_prices.insert(token, tick.last_price);

        // The tick id is derived only when something is caused by the tick.
        let mut tick_id = None;
        let mut tick_id_of = |ids: &mut TickIds| *tick_id.get_or_insert_with(|| ids.id(sequence));

        self.desk.on_tick(token, tick.last_price);
        let resting_fills = self.trader.fill_resting(tick);
        if !resting_fills.is_empty() {
            let cause = tick_id_of(ids);
            for (ordinal, event) in resting_fills.into_iter().enumerate() {
                self.queue
                    .push_back(Step::Order(event, cause, ordinal as u32));
            }
        }
        self.book.mark(token, tick.last_price);
        let mut signals = std::mem::take(&mut self.signals);
        self.runner.on_tick(tick, || tick_id_of(ids), &mut signals);
        if !signals.is_empty() {
            self.counts.signals += signals.len() as u64;
            self.queue.extend(signals.drain(..).map(Step::Output));
        }
        self.signals = signals;
        // Resting orders this tick filled wait in the queue too.
        if !self.queue.is_empty() {
            self.drain(at);
        }
    }

    /// Carries every waiting step to the end of its chain.
    fn drain(&mut self, now: Timestamp) {
        while let Some(step) = self.queue.pop_front() {
            match step {
                Step::Output(output) => self.on_output(output, now),
                Step::Order(event, cause, ordinal) => {
                    self.on_order_event(event, cause, ordinal, now)
                }
            }
        }
    }

    fn on_output(&mut self, output: Output, now: Timestamp) {
        // Signals and answers carry their ids: both the runner and the desk name them.
        let Some(id) = output.id else {
            warn!(topic = %output.topic, "an output without an id; skipped");
            return;
        };
        match output.payload {
            Payload::TradingSignal(signal) => {
                let answers = self.desk.on_signal(&signal, id, now);
                self.queue.extend(answers.into_iter().map(Step::Output));
            }
            Payload::ValidatedSignal(validated) => match self.trader.place(&validated, id) {
                Ok(events) => {
                    for (ordinal, event) in events.into_iter().enumerate() {
                        self.queue.push_back(Step::Order(event, id, ordinal as u32));
                    }
                }
                Err(e) => {
                    warn!(event_id = %id, error = %e, "the paper trader refused a validated signal")
                }
            },
            Payload::RejectedSignal(rejected) => {
                self.counts.rejected_signals += 1;
                self.journal.rejection(Rejection {
                    exchange_timestamp: rejected.signal.tick.exchange_timestamp,
                    strategy_id: rejected.signal.strategy_id.clone(),
                    instrument_token: rejected.signal.instrument_token,
                    rules: rejected.violations.into_iter().map(|v| v.rule).collect(),
                });
            }
            // No order was needed: the position is at the signal's target.
            _ => {}
        }
    }

    fn on_order_event(&mut self, event: OrderEvent, cause: EventId, ordinal: u32, now: Timestamp) {
        match event {
            OrderEvent::Submitted(order) => {
                let placed = self.counts.orders;
                self.counts.orders += 1;
                let record = OrderRecord {
                    order_id: order.order_id.clone(),
                    submitted_at: now,
                    strategy_id: order.strategy_id.clone(),
                    instrument_token: order.instrument_token,
                    tradingsymbol: self.symbol(order.instrument_token),
                    side: order.side,
                    quantity: order.quantity.0,
                    order_type: order.order_type,
                    limit_price: order.limit_price,
                    status: "open",
                    filled_at: None,
                    fill_price: None,
                    reason: None,
                };
                self.open_orders
                    .insert(order.order_id.clone(), (placed, record));
            }
            OrderEvent::Acknowledged(_) => {}
            OrderEvent::Filled(fill) => {
                self.counts.fills += 1;
                let id = derive_event_id(cause, TRADING_ENGINE, ordinal);
                if let Some(answers) = self.desk.on_fill(id, &fill, now) {
                    self.queue.extend(answers.into_iter().map(Step::Output));
                }
                self.book.apply_fill(BROKER, self.initial_cash, &fill);
                // A paper order fills once and whole: it ends here.
                if let Some((_, mut order)) = self.open_orders.remove(&fill.order_id) {
                    order.status = "filled";
                    order.filled_at = Some(fill.filled_at);
                    order.fill_price = Some(fill.fill_price);
                    self.journal.order(order);
                }
                let portfolio_id = PortfolioId::for_strategy(BROKER, &fill.strategy_id);
                let tradingsymbol = fill
                    .tradingsymbol
                    .clone()
                    .or_else(|| self.symbol(fill.instrument_token));
                if let Some(portfolio) = self.book.portfolio(&fill.strategy_id) {
                    self.journal.equity(equity_point(portfolio, fill.filled_at));
                }
                *self
                    .fills_per_instrument
                    .entry(fill.instrument_token)
                    .or_default() += 1;
                if self
                    .chart
                    .is_none_or(|chart| chart == fill.instrument_token)
                {
                    let chart = self.charts.entry(fill.instrument_token).or_default();
                    if chart.tradingsymbol.is_none() {
                        chart.tradingsymbol.clone_from(&tradingsymbol);
                    }
                    let side = match fill.side {
                        Side::Buy => &mut chart.buys,
                        Side::Sell => &mut chart.sells,
                    };
                    side.push(fill.filled_at, fill.fill_price, CHART_FILLS);
                }
                self.journal.fill(FillRecord {
                    exchange_timestamp: fill.filled_at,
                    portfolio_id,
                    strategy_id: fill.strategy_id,
                    order_id: fill.order_id,
                    instrument_token: fill.instrument_token,
                    tradingsymbol,
                    side: fill.side,
                    quantity: fill.quantity,
                    price: fill.fill_price,
                    fees: fill.fees,
                });
            }
            OrderEvent::Failed(failure) => {
                self.counts.failed_orders += 1;
                let answers = self.desk.on_failed(&failure, now);
                self.queue.extend(answers.into_iter().map(Step::Output));
                if let Some((_, mut order)) = self.open_orders.remove(&failure.order_id) {
                    order.status = "failed";
                    order.reason = Some(failure.reason);
                    self.journal.order(order);
                }
            }
        }
    }

    fn symbol(&self, token: InstrumentToken) -> Option<String> {
        self.instruments
            .get(&token)
            .map(|i| i.tradingsymbol.to_string())
    }

    /// A point of every portfolio's equity curve (and of every instrument's chart) at each
    /// interval boundary the exchange clock passes, valued before the tick that passed it.
    fn sample_equity(&mut self, at: Timestamp) {
        let micros = at.unix_micros();
        let next = *self
            .next_sample
            .get_or_insert_with(|| micros.div_euclid(self.equity_every) * self.equity_every);
        if micros < next {
            return;
        }
        let boundary = micros.div_euclid(self.equity_every) * self.equity_every;
        self.next_sample = Some(boundary + self.equity_every);
        // The first boundary has no tick before it: the curve starts at the initial cash.
        let sampled_at = Timestamp::from_unix_micros(boundary).unwrap_or(at);
        self.push_equity(sampled_at);
        self.chart_prices(sampled_at);
    }

    fn chart_prices(&mut self, at: Timestamp) {
        for (token, price) in &self.last_prices {
            if self.chart.is_none_or(|chart| chart == *token) {
                self.charts
                    .entry(*token)
                    .or_default()
                    .prices
                    .push(at, *price, CHART_POINTS);
            }
        }
    }

    fn push_equity(&mut self, at: Timestamp) {
        for start in &self.portfolios {
            let point = match self.book.portfolio(&start.strategy_id) {
                Some(portfolio) => equity_point(portfolio, at),
                None => EquityPoint {
                    at,
                    portfolio_id: start.portfolio_id.clone(),
                    cash: start.initial_cash.0,
                    realized_pnl: Decimal::ZERO,
                    unrealized_pnl: Decimal::ZERO,
                    fees: Decimal::ZERO,
                    equity: start.initial_cash.0,
                },
            };
            self.journal.equity(point);
        }
    }

    /// Ends the backtest: the last point of every curve, the orders still resting (in the order
    /// placed), the chart.
    pub fn finish(mut self) -> BacktestOutcome<J> {
        if let Some(end) = self.last_tick_at {
            self.push_equity(end);
            self.chart_prices(end);
        }
        let mut open: Vec<(u64, OrderRecord)> = self.open_orders.drain().map(|(_, o)| o).collect();
        open.sort_by_key(|(placed, _)| *placed);
        for (_, order) in open {
            self.journal.order(order);
        }
        if self.counts.out_of_order > 0 {
            warn!(
                out_of_order = self.counts.out_of_order,
                "ticks earlier than the tick before them were replayed in file order, as `run` \
                 replays them; sort the file by exchange_timestamp for exchange-time order"
            );
        }
        let chart = self.chart.or_else(|| {
            // The most fills; among equals, the lowest token.
            let most = self.fills_per_instrument.values().copied().max()?;
            self.fills_per_instrument
                .iter()
                .find(|(_, n)| **n == most)
                .map(|(t, _)| *t)
        });
        let chart = chart.map(|token| {
            let drawn = self.charts.remove(&token).unwrap_or_default();
            PriceSeries {
                instrument_token: token,
                tradingsymbol: self.symbol(token).or(drawn.tradingsymbol),
                points: drawn.prices.points,
                buy_count: drawn.buys.seen,
                sell_count: drawn.sells.seen,
                buys: drawn.buys.points,
                sells: drawn.sells.points,
            }
        });
        BacktestOutcome {
            journal: self.journal,
            counts: self.counts,
            start: self.start,
            end: self.last_tick_at,
            chart,
        }
    }
}

fn equity_point(portfolio: &Portfolio, at: Timestamp) -> EquityPoint {
    // Flat positions (kept for their realized PnL) add nothing: at every fill, most are flat.
    let unrealized: Decimal = portfolio
        .positions
        .values()
        .filter(|p| p.quantity != 0)
        .map(|p| p.unrealized_pnl())
        .sum();
    EquityPoint {
        at,
        portfolio_id: portfolio.id.clone(),
        cash: portfolio.cash,
        realized_pnl: portfolio.realized_pnl,
        unrealized_pnl: unrealized,
        fees: portfolio.fees,
        equity: portfolio.initial_cash + portfolio.realized_pnl + unrealized - portfolio.fees,
    }
}
