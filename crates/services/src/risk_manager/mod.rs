//! The risk manager's decision logic: limits per broker, a state built from fills and ticks, and the
//! evaluation of a signal against every rule.
//!
//! - [`limits`]: [`RiskLimits`] configuration.
//! - [`state`]: [`RiskState`], positions from fills, daily counters, last prices.
//! - [`sizing`]: [`size_order`], the order that reaches a signal's target position.
//! - [`rules`]: [`evaluate`] and [`RiskDecision`].
//! - [`desk`]: [`RiskDesk`], the decisions of one namespace: every raw signal answered, fills and
//!   failures applied, without the log.
//! - [`service`]: the handler that feeds the desk from the log and makes its state durable.

pub mod desk;
pub mod limits;
pub mod rules;
pub mod service;
pub mod sizing;
pub mod state;

pub use desk::RiskDesk;
pub use limits::RiskLimits;
pub use rules::{evaluate, rule_names, RiskDecision};
pub use sizing::{size_order, Sizing};
pub use state::RiskState;
