//! Alpha Panda's backtest host (ARCHITECTURE §6a): the very decision code of `run` — strategies,
//! risk desk, paper fill model and fees, portfolio accounting — driven from a tick file in one
//! thread, event by event in file order, with no log and no async runtime, and the report people
//! read afterwards (`report.json`, `report.html`). The market feed's part — reading, parsing and
//! guarding the ticks — runs a few batches ahead on a thread of its own, and the journal (the
//! tables and the report's folding) a few batches behind on another; the decisions stay in one.
//!
//! - [`backtest`]: [`Backtest`], the host: one tick at a time through the decision cores.
//! - [`tick_file`]: the input, CSV or Parquet, read as a stream; [`csv_ticks`] and
//!   [`parquet_ticks`] read each format.
//! - [`history`]: a run's records (fills, orders, equity points, refusals); a [`History`] keeps
//!   them all.
//! - [`journal`]: the [`Journal`] that takes them as they happen, and [`JournalThread`].
//! - [`outputs`]: `fills.csv`, `orders.csv`, `equity.csv`, written a row at a time.
//! - [`report`]: the statistics, per portfolio and in total, folded one record at a time.
//! - [`html`]: the self-contained `report.html`.
#![deny(unsafe_code)]

pub mod backtest;
pub mod csv_ticks;
pub mod history;
pub mod html;
pub mod journal;
pub mod outputs;
pub mod parquet_ticks;
pub mod report;
pub mod tick_file;

pub use backtest::{Backtest, BacktestCounts, BacktestOutcome, BacktestSetup};
pub use tick_file::{TickFile, TickFileError};

pub use history::{
    EquityPoint, FillRecord, History, OrderRecord, PortfolioStart, PriceSeries, Rejection,
};
pub use journal::{Journal, JournalThread};
