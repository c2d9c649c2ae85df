//! Alpha Panda cache: the dedup store (ARCHITECTURE §4 rule 3), the risk manager's state, the
//! portfolio read model and service metrics, over Redis or in memory, chosen by URL.
//!
//! Build one [`Cache`] from settings (`memory://` or `redis://…`, plus a key prefix) and take the
//! typed caches from it; they share its connection. Every key is formatted in one private module
//! (its documentation holds the key scheme) and carries the broker namespace. Failures are one
//! [`CacheError`], always of class infrastructure; Redis being down never falls back to memory.
//!
//! # Layout
//! - `cache`: [`Cache`], the handle built once and cloned.
//! - `dedup`: [`Dedup`], the `DedupStore` port.
//! - `risk`: [`RiskStateCache`] (positions, daily trade counts, daily PnL) and [`ist_trading_day_end`].
//! - `portfolio`: [`PortfolioCache`], the latest `PnlSnapshot` per portfolio.
//! - `metrics`: [`MetricsCache`] and [`ServiceMetrics`].
//! - `keys`: the key scheme table and the only key formatting.
//! - `backend`: Redis commands and their in-memory mirror behind one enum.
//! - `memory`: the in-memory store with clock-driven expiry.
//! - `error`: [`CacheError`], the crate's one error type, each variant knowing its class.
#![deny(unsafe_code)]

mod backend;
mod cache;
mod dedup;
mod error;
mod keys;
mod memory;
mod metrics;
mod portfolio;
mod risk;

pub use cache::Cache;
pub use dedup::{Dedup, DEFAULT_PREFIX};
pub use error::CacheError;
pub use metrics::{
    LatencyBuckets, MetricsCache, PartitionLagEntry, ServiceMetrics, ServiceMetricsEntry,
};
pub use portfolio::{PortfolioCache, PutOutcome};
pub use risk::{ist_trading_day_end, PositionEntry, RiskStateCache};
