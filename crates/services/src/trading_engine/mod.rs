//! The trading engine's pure parts: the fee model and the causal paper trader.

pub mod fees;
pub mod paper;
pub mod service;

pub use fees::FeeModel;
pub use paper::{PaperConfig, PaperEvent, PaperTrader};
