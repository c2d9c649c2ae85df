//! One module per command.

pub mod bootstrap;
pub mod config;
pub mod dlq;
