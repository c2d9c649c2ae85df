//! The risk manager's decision logic: limits per broker, a state built from fills and ticks, and the
//! evaluation of a signal against every rule.
//!
//! - [`limits`]: [`RiskLimits`] configuration.
//! - [`state`]: [`RiskState`], positions from fills, daily counters, last prices.
//! - [`rules`]: [`evaluate`] and [`RiskDecision`].

pub mod limits;
pub mod rules;
pub mod service;
pub mod state;

pub use limits::RiskLimits;
pub use rules::{evaluate, rule_names, RiskDecision};
pub use state::RiskState;
