//! Alpha Panda's services: the market feed, the strategy runner and its strategies, the risk
//! manager, the trading engine (paper and Zerodha) and the portfolio manager.
//!
//! The decision logic is pure and synchronous: state and an event in, decisions out. Time arrives as
//! a [`alpha_panda_core::Timestamp`], randomness from explicit seeds, so every function is tested
//! without a log, a database or a clock, and a replay of the same inputs gives the same outputs. Each
//! service's `service.rs` (and `strategy_runner`, `market_feed::feed`) is the thin stream handler that
//! feeds those state machines from the log and makes their state durable through [`durable`].
//!
//! # Layout
//! - [`strategy`]: the [`Strategy`] trait, `ema_cross` (the exact reference strategy),
//!   `mean_reversion`, and building strategies from configuration rows.
//! - [`market_feed`]: the bundled NSE universe, the seeded tick simulator and CSV replay/recording.
//! - [`risk_manager`]: risk limits, the risk state built from fills, and signal evaluation.
//! - [`trading_engine`]: the flat fee model of paper trading, Zerodha's dated charge schedule, the
//!   causal paper trader and the Zerodha live trader (orders placed with market protection,
//!   adopted after a crash, one fill per Kite trade, positions reconciled with Kite's).
//! - [`portfolio_manager`]: average-cost portfolio accounting and sealed PnL snapshots.
//! - [`strategy_runner`]: the handler that runs strategies on ticks and routes signals per broker.
//! - [`durable`]: state checkpointed with its offsets, and the ledger effects written with it.
//! - [`error`]: the crate's error type.
#![deny(unsafe_code)]

pub mod durable;
pub mod error;
pub mod market_feed;
pub mod portfolio_manager;
pub mod risk_manager;
pub mod strategy;
pub mod strategy_runner;
pub mod trading_engine;

pub use error::ServiceError;
pub use market_feed::{
    nse_universe, parse_ticks_csv, ticks_to_csv, BadRow, CsvColumns, CsvReplay, TickSimulator,
    COLUMNS,
};
pub use portfolio_manager::{Portfolio, Position};
pub use risk_manager::{evaluate, rule_names, RiskDecision, RiskLimits, RiskState};
pub use strategy::{
    build_strategy, default_strategy_set, EmaCross, MeanReversion, Strategy, StrategySeed,
};
pub use trading_engine::{FeeModel, OrderEvent, PaperConfig, PaperTrader};
