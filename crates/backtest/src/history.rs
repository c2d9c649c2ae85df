//! What a backtest (or a run's ledger) leaves behind for the report: the portfolios with their
//! starting cash, every fill, the equity curve, the refused signals and one instrument's prices.
//! Plain data: the host hands each record to a [`Journal`] as it happens, and nothing here
//! decides anything. A backtest's journal writes the tables and folds the report as the records
//! come, so its memory does not grow with the run; a [`History`] keeps them all, for a ledger's
//! report and for tests.

use alpha_panda_core::{
    FeeBreakdown, InstrumentToken, Money, OrderId, OrderType, PortfolioId, Price, Quantity, Side,
    StrategyId, Timestamp,
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

/// Where a run's records go, one at a time, in the order the run makes them (exchange-time order
/// for a file sorted by time).
pub trait Journal {
    /// A fill.
    fn fill(&mut self, fill: FillRecord);
    /// A point of a portfolio's equity curve.
    fn equity(&mut self, point: EquityPoint);
    /// An order, once it has ended (filled or failed), or at the end of the run while open.
    fn order(&mut self, order: OrderRecord);
    /// A refused signal.
    fn rejection(&mut self, rejection: Rejection);
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

/// A record of a run, as a [`Journal`] takes it.
#[derive(Debug)]
enum Record {
    Fill(FillRecord),
    Equity(EquityPoint),
    Order(OrderRecord),
    Rejection(Rejection),
}

/// Records handed to the journal's thread at a time.
const JOURNAL_BATCH: usize = 1024;
/// Batches that may wait for it.
const JOURNAL_BATCHES: usize = 8;

/// A journal on a thread of its own: the decision thread only moves each record into a batch,
/// and the tables' rows and the report's folding run beside it, on the core the tick reader
/// leaves idle. Records reach the journal in the order they were made.
pub struct JournalThread<J> {
    batch: Vec<Record>,
    sender: Option<std::sync::mpsc::SyncSender<Vec<Record>>>,
    thread: Option<std::thread::JoinHandle<J>>,
}

impl<J: Journal + Send + 'static> JournalThread<J> {
    /// Starts `journal`'s thread.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(mut journal: J) -> std::io::Result<Self> {
        let (sender, batches) = std::sync::mpsc::sync_channel::<Vec<Record>>(JOURNAL_BATCHES);
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                for batch in batches {
                    for record in batch {
                        match record {
                            Record::Fill(fill) => journal.fill(fill),
                            Record::Equity(point) => journal.equity(point),
                            Record::Order(order) => journal.order(order),
                            Record::Rejection(rejection) => journal.rejection(rejection),
                        }
                    }
                }
                journal
            })?;
        Ok(Self {
            batch: Vec::with_capacity(JOURNAL_BATCH),
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    fn push(&mut self, record: Record) {
        self.batch.push(record);
        if self.batch.len() >= JOURNAL_BATCH {
            self.send();
        }
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(JOURNAL_BATCH));
        // A closed channel means the thread died; `finish` surfaces why.
        if let Some(sender) = &self.sender {
            let _ = sender.send(batch);
        }
    }

    /// Hands over the last records and waits for the journal to take them all.
    pub fn finish(mut self) -> J {
        self.send();
        self.sender = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(journal)) => journal,
            // The journal only ends by itself; a panic there is a bug to surface.
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("finish takes the thread once"),
        }
    }
}

impl<J: Journal + Send + 'static> Journal for JournalThread<J> {
    fn fill(&mut self, fill: FillRecord) {
        self.push(Record::Fill(fill));
    }

    fn equity(&mut self, point: EquityPoint) {
        self.push(Record::Equity(point));
    }

    fn order(&mut self, order: OrderRecord) {
        self.push(Record::Order(order));
    }

    fn rejection(&mut self, rejection: Rejection) {
        self.push(Record::Rejection(rejection));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_core::InstrumentToken;

    fn rejection(i: i64) -> Rejection {
        Rejection {
            exchange_timestamp: Timestamp::from_unix_micros(i).expect("representable"),
            strategy_id: StrategyId::new("s").expect("an id"),
            instrument_token: InstrumentToken(1),
            rules: vec![format!("rule{i}")],
        }
    }

    #[test]
    fn a_journal_on_its_own_thread_gets_every_record_in_order() {
        let mut journal = JournalThread::start(History::default()).expect("a thread");
        // More than a batch, and a batch's worth more, and a few.
        let records = JOURNAL_BATCH as i64 * 2 + 7;
        for i in 0..records {
            journal.rejection(rejection(i));
            journal.equity(EquityPoint {
                at: Timestamp::from_unix_micros(i).expect("representable"),
                portfolio_id: PortfolioId::new("paper:s").expect("an id"),
                cash: Decimal::ZERO,
                realized_pnl: Decimal::ZERO,
                unrealized_pnl: Decimal::ZERO,
                fees: Decimal::ZERO,
                equity: Decimal::from(i),
            });
        }
        let history = journal.finish();
        assert_eq!(history.rejections.len() as i64, records);
        assert!(history
            .rejections
            .iter()
            .enumerate()
            .all(|(i, r)| *r == rejection(i as i64)));
        let equity: Vec<Decimal> = history.equity.iter().map(|p| p.equity).collect();
        assert_eq!(equity, (0..records).map(Decimal::from).collect::<Vec<_>>());
    }
}
