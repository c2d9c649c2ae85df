//! Alpha Panda's SQL persistence: PostgreSQL (production) and SQLite (the embedded default) behind one
//! API chosen by URL, embedded migrations kept equivalent across both, and the repositories services
//! use — users, Kite sessions, strategy configurations, the instruments master, the order/fill ledger,
//! PnL snapshots and service checkpoints. Money is exact on both backends (NUMERIC / decimal text), and
//! a handler's effects and its checkpoint commit together in one [`StoreTx`].
//!
//! # Layout
//! - `backend`: [`SqlBackend`], URL parsing and redaction, opening the pool (WAL + busy timeout).
//! - `store`: [`Store`], the cloneable handle: migrations, `ping`, `begin`, repository accessors.
//! - `migrations`: embedded migrations per backend, [`apply_policy`], [`SchemaDescription`].
//! - `sql`: the dialect bridge — typed parameters and rows read back the same on both backends.
//! - `tx`: [`StoreTx`], idempotent writes plus the checkpoint in one transaction.
//! - `users`, `trading_sessions`, `strategy_configurations`, `instruments`, `ledger`,
//!   `pnl_snapshots`, `checkpoints`, `leases`, `kill_switches`, `refresh_tokens`: one repository
//!   per table.
//! - `error`: [`StoreError`], each variant knowing its [`alpha_panda_core::ErrorClass`].
//! - [`testing`] (feature `testing`): isolated PostgreSQL schemas and SQLite files for tests.
#![deny(unsafe_code)]

mod backend;
mod checkpoints;
mod error;
mod instruments;
mod kill_switches;
mod leases;
mod ledger;
mod migrations;
mod pnl_snapshots;
mod refresh_tokens;
mod sql;
mod store;
mod strategy_configurations;
mod trading_sessions;
mod tx;
mod users;

#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{redact_url, SqlBackend, ACQUIRE_TIMEOUT, SQLITE_BUSY_TIMEOUT};
pub use checkpoints::{Checkpoint, CheckpointOffset, Checkpoints};
pub use error::StoreError;
pub use instruments::Instruments;
pub use kill_switches::{KillSwitch, KillSwitches};
pub use leases::{LeaseHolder, Leases};
pub use ledger::{Ledger, LedgerFill, LedgerOrder, OrderRecord, OrderStatus};
pub use migrations::{apply_policy, SchemaDescription};
pub use pnl_snapshots::{PnlSnapshots, StoredPnlSnapshot, ValidationStatus};
pub use refresh_tokens::RefreshTokens;
pub use store::{Store, DEFAULT_LEASE_TTL};
pub use strategy_configurations::{StrategyConfiguration, StrategyConfigurations};
pub use trading_sessions::{session_expiry, AccessToken, TradingSession, TradingSessions};
pub use tx::StoreTx;
pub use users::{Role, User, Users, MIN_PASSWORD_LEN};
