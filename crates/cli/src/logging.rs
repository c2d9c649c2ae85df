//! Structured logging with `tracing`: human lines in development, JSON in production, on stderr;
//! and every line also to the API's log stream ([`log_hub`]).

use std::io::IsTerminal;
use std::sync::OnceLock;

use alpha_panda_api::LogHub;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, Settings};

static HUB: OnceLock<LogHub> = OnceLock::new();

/// The hub the process's log lines go to (`GET /api/v1/logs`).
pub fn log_hub() -> LogHub {
    HUB.get_or_init(LogHub::default).clone()
}

/// Installs the global subscriber once. Logs go to stderr so that `--json` output on stdout stays
/// machine-readable.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.logging.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = match settings.log_format() {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Human => fmt.compact().boxed(),
    };
    // A second init (tests that run several commands in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(log_hub())
        .try_init();
}
