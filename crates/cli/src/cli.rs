//! The command line. Every command returns an exit code or an error; [`main`] alone turns errors
//! into a message on stderr and exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::settings::Settings;

/// Alpha Panda: event-driven algorithmic trading for Indian markets.
#[derive(Debug, Parser)]
#[command(name = "alpha-panda", version, about)]
pub struct Cli {
    /// Settings file (default: ./alpha-panda.toml when it exists).
    #[arg(long, global = true, env = "ALPHA_PANDA_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective settings, secrets redacted, with where each value came from.
    Config(commands::config::ConfigArgs),
    /// Create every topic of the configured brokers (and each `.dlq`) and report drift.
    Bootstrap(commands::bootstrap::BootstrapArgs),
    /// Dead-letter queues: list, replay, purge.
    Dlq(commands::dlq::DlqArgs),
    /// Run the services (all five by default) until stopped.
    Run(commands::run::RunArgs),
    /// Apply SQL migrations (`--check`: only report pending ones).
    Migrate(commands::migrate::MigrateArgs),
    /// Print the run summary read from the log.
    Summary(commands::summary::SummaryArgs),
    /// Backtest strategies over a tick file: the paper services without the log, and a report.
    Backtest(commands::backtest::BacktestArgs),
    /// The backtest's report for a paper or live run, from the ledger and the PnL snapshots.
    Report(commands::report::ReportArgs),
    /// Write the log's `market.ticks` to a file `backtest` reads (Parquet or CSV).
    Record(commands::record::RecordArgs),
    /// Measure the pipeline: ticks per second and tick-to-fill latency on the memory log.
    Bench(commands::bench::BenchArgs),
    /// Zerodha Kite: login, instruments master, ticker message decoding.
    Kite(commands::kite::KiteArgs),
    /// Serve the API and the dashboard alone (the services run in other processes).
    Api(commands::api::ApiArgs),
    /// Operator users of the API and dashboard: add, list, remove, password.
    User(commands::user::UserArgs),
    /// The per-namespace kill switch: engage, release, show.
    KillSwitch(commands::kill_switch::KillSwitchArgs),
    /// Strategy configurations: list, add, set, enable, disable.
    Strategy(commands::strategy::StrategyArgs),
}

/// Parses the process arguments, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command reports; the message says what to do.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let loaded = Settings::load(cli.config.as_deref())?;
    crate::logging::init(&loaded.settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Config(args) => commands::config::run(&loaded, &args),
        Command::Bootstrap(args) => {
            runtime.block_on(commands::bootstrap::run(&loaded.settings, &args))
        }
        Command::Dlq(args) => runtime.block_on(commands::dlq::run(&loaded.settings, &args)),
        Command::Run(args) => runtime.block_on(commands::run::run(&loaded.settings, &args)),
        Command::Migrate(args) => runtime.block_on(commands::migrate::run(&loaded.settings, &args)),
        Command::Summary(args) => runtime.block_on(commands::summary::run(&loaded.settings, &args)),
        Command::Backtest(args) => commands::backtest::run(&loaded.settings, &args, &runtime),
        Command::Report(args) => runtime.block_on(commands::report::run(&loaded.settings, &args)),
        Command::Record(args) => runtime.block_on(commands::record::run(&loaded.settings, &args)),
        Command::Bench(args) => commands::bench::run(&loaded.settings, &args, &runtime),
        Command::Kite(args) => runtime.block_on(commands::kite::run(&loaded.settings, &args)),
        Command::Api(args) => runtime.block_on(commands::api::run(&loaded.settings, &args)),
        Command::User(args) => runtime.block_on(commands::user::run(&loaded.settings, &args)),
        Command::KillSwitch(args) => {
            runtime.block_on(commands::kill_switch::run(&loaded.settings, &args))
        }
        Command::Strategy(args) => {
            runtime.block_on(commands::strategy::run(&loaded.settings, &args))
        }
    }
}
