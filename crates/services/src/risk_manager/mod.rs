//! The risk manager's decision logic: limits per broker, a state built from fills and ticks, and the
//! evaluation of a signal against every rule.
//!
//! - [`limits`]: [`RiskLimits`] configuration.
//! - [`state`]: [`RiskState`], positions from fills, daily counters, last prices.
//! - [`sizing`]: [`size_order`], the order that reaches a signal's target position.
//! - [`rules`]: [`evaluate`] and [`RiskDecision`].
//! - [`service`]: the handler that answers every raw signal.

pub mod limits;
pub mod rules;
pub mod service;
pub mod sizing;
pub mod state;

pub use limits::RiskLimits;
pub use rules::{evaluate, rule_names, RiskDecision};
pub use sizing::{size_order, Sizing};
pub use state::RiskState;
