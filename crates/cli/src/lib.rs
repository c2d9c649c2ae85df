//! The `alpha-panda` binary's library: argument parsing, settings, the composition root and every
//! command. `main.rs` only calls [`cli::main`]; tests drive the same code in process.
//!
//! # Layout
//! - [`cli`]: the command line and the one place that decides exit codes.
//! - [`settings`]: layered settings, provenance, redaction, production guards.
//! - [`logging`]: the tracing subscriber.
//! - [`container`]: the composition root that builds the backends once.
//! - [`api_server`]: the operator surface started over those backends.
//! - [`instruments_refresh`]: the instruments master refreshed from Kite once per trading day.
//! - [`summary`]: the per-broker run summary, read back from the log.
//! - [`commands`]: one module per command (`run`, `config`, `bootstrap`, `migrate`, `dlq`, …).
#![deny(unsafe_code)]

pub mod api_server;
pub mod cli;
pub mod commands;
pub mod container;
pub mod instruments_refresh;
pub mod logging;
pub mod settings;
pub mod summary;

pub use settings::Settings;
