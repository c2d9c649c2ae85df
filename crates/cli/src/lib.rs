//! The `alpha-panda` binary's library: argument parsing, settings, the composition root and every
//! command. `main.rs` only calls [`cli::main`]; tests drive the same code in process.
//!
//! # Layout
//! - [`cli`]: the command line and the one place that decides exit codes.
//! - [`settings`]: layered settings, provenance, redaction, production guards.
//! - [`logging`]: the tracing subscriber.
//! - [`commands`]: one module per command (`config`, `bootstrap`, `dlq`, …).
#![deny(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod logging;
pub mod settings;

pub use settings::Settings;
