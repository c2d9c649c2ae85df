//! Portfolio accounting: one average-cost portfolio per (broker, strategy), marked to market by ticks,
//! reported as sealed PnL snapshots.

pub mod accounting;
pub mod service;

pub use accounting::{apply_fill_to_position, FillEffect, Portfolio, Position};
