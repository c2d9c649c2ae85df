//! Structured logging with `tracing`: human lines in development, JSON in production.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, Settings};

/// Installs the global subscriber once. Logs go to stderr so that `--json` output on stdout stays
/// machine-readable.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.logging.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests that run several commands in one process) keeps the first subscriber.
    let _ = match settings.log_format() {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.compact().try_init(),
    };
}
