//! One module per command.

pub mod api;
pub mod backtest;
pub mod bench;
pub mod bootstrap;
pub mod config;
pub mod dlq;
pub mod kill_switch;
pub mod kite;
pub mod migrate;
pub mod record;
pub mod report;
pub mod run;
pub mod strategy;
pub mod summary;
pub mod user;
