//! One module per command.

pub mod bench;
pub mod bootstrap;
pub mod config;
pub mod dlq;
pub mod kite;
pub mod migrate;
pub mod run;
pub mod summary;
