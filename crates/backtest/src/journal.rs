//! Where a run's records go as it makes them: the [`Journal`] a backtest hands each fill, order,
//! equity point and refusal to, and [`JournalThread`], which runs any journal on a thread of its
//! own. A backtest's journal writes the tables and folds the report as the records come, so its
//! memory does not grow with the run.

use crate::history::{EquityPoint, FillRecord, OrderRecord, Rejection};

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
    use crate::history::{EquityPoint, History, Rejection};
    use alpha_panda_core::InstrumentToken;
    use alpha_panda_core::{PortfolioId, StrategyId, Timestamp};
    use rust_decimal::Decimal;

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
