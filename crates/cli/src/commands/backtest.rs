//! `alpha-panda backtest`: the paper namespace's decision cores run over a tick file, in this
//! thread, with no log (ARCHITECTURE §6a), and the files of [`alpha_panda_backtest::outputs`].
//!
//! The store is read before the first tick (the instruments master, stored strategies) and never
//! during the replay; the async runtime is only used for those reads.

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alpha_panda_backtest::outputs::{self, RunOutputs, Tables};
use alpha_panda_backtest::report::{Report, ReportBuilder};
use alpha_panda_backtest::tick_file::{self, FeedRow, FileScan, ReadAhead};
use alpha_panda_backtest::{html, Backtest, BacktestCounts, JournalThread, TickFile};
use alpha_panda_core::{Instrument, InstrumentToken, Money};
use alpha_panda_services::strategy_runner::RunnerStrategy;
use alpha_panda_services::{build_strategy, BadRow};
use anyhow::{bail, Context};
use clap::Args;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::commands::bench::backtest::{Phases, Timings};
use crate::commands::instant_flag;
use crate::container::{self, Services};
use crate::settings::Settings;

/// Arguments of `backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The tick file: the replay CSV format, or Parquet (`.parquet`) with the same columns.
    #[arg(long)]
    pub ticks: PathBuf,
    /// One strategy type (`ema_cross`, `mean_reversion`) run with `--params`.
    #[arg(long, conflicts_with_all = ["strategies", "strategy_id"])]
    pub strategy: Option<String>,
    /// The strategy's parameters as JSON (`{"fast":10,"slow":30}`); defaults for those left out.
    #[arg(long, requires = "strategy")]
    pub params: Option<String>,
    /// The instruments of `--strategy`: tokens or trading symbols, comma separated, or `all`
    /// (default: every instrument in the file).
    #[arg(long, requires = "strategy")]
    pub instruments: Option<String>,
    /// Several strategies from a TOML file (`[[strategies]]` with id, type, params, instruments).
    #[arg(long, conflicts_with = "strategy_id")]
    pub strategies: Option<PathBuf>,
    /// Stored strategy configurations by id (comma separated); default: every active one.
    #[arg(long, value_delimiter = ',')]
    pub strategy_id: Vec<String>,
    /// Trade only ticks at or after this instant (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Trade only ticks at or before this instant (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Cash each portfolio starts with (default: `portfolio.initial_cash`).
    #[arg(long)]
    pub initial_cash: Option<Decimal>,
    /// Exchange time between two points of the equity curve.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub equity_every: Duration,
    /// The instrument of the report's trades chart, token or symbol (default: the most filled).
    #[arg(long)]
    pub chart: Option<String>,
    /// Where the outputs go (created when missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Print report.json on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the process's wall time, CPU time and peak memory to this file (for `bench
    /// backtest`; kept out of `--out`, whose files are the same on every run).
    #[arg(long, hide = true)]
    pub timings: Option<PathBuf>,
}

/// `report.json`: what was run, the counters, and the report.
#[derive(Debug, Serialize)]
struct ReportFile<'a> {
    input: InputSummary<'a>,
    counts: &'a BacktestCounts,
    #[serde(flatten)]
    report: &'a Report,
}

#[derive(Debug, Serialize)]
struct InputSummary<'a> {
    ticks: String,
    format: &'a str,
    bad_rows: u64,
    /// The first bad rows, with their lines and reasons.
    first_bad_rows: &'a [BadRow],
    strategies: Vec<String>,
}

/// How many bad rows are kept for the report and said in the log.
const BAD_ROWS_KEPT: usize = 20;

/// Runs a backtest.
///
/// # Errors
/// A tick file that cannot be read, a strategy that cannot be built, an output that cannot be
/// written; each message says which.
pub fn run(
    settings: &Settings,
    args: &BacktestArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cpu_started = process_cpu_seconds();
    let from = instant_flag(args.from.as_deref(), "--from")?;
    let to = instant_flag(args.to.as_deref(), "--to")?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            bail!("--from {from} is after --to {to}");
        }
    }
    let every_instrument = args.strategy.is_some()
        && args
            .instruments
            .as_deref()
            .is_none_or(|i| i.eq_ignore_ascii_case("all"));
    if args.equity_every.is_zero() {
        bail!("--equity-every must be longer than zero");
    }
    let money = args.initial_cash.map(Money);
    if money.is_some_and(|m| m.0 <= Decimal::ZERO) {
        bail!("--initial-cash must be positive");
    }
    // Both cores from the start: one pass hashes the file (the ids' base) while the feed's thread
    // already reads, parses and checks its first batches; the decisions wait for the digest only.
    let file = TickFile::open(&args.ticks)?;
    let format = file.format();
    let scanning = std::thread::Builder::new()
        .name("tick-scan".into())
        .spawn({
            let path = args.ticks.clone();
            let instruments = every_instrument || args.strategies.is_some();
            move || tick_file::scan(&path, instruments)
        })
        .context("could not start the tick scan")?;
    let (store, instruments) = runtime.block_on(async {
        let store = container::store(settings).await?;
        let instruments = container::instruments(&store).await?;
        anyhow::Ok((store, instruments))
    })?;
    let services = Services::new(settings, store.clone(), None, instruments.clone());
    let rows =
        ReadAhead::start(file, services.tick_guard()).context("could not start the tick reader")?;
    let scan = scanning
        .join()
        .map_err(|_| anyhow::anyhow!("the scan of the tick file failed unexpectedly"))??;
    let scanned = started.elapsed();
    let strategies = runtime.block_on(strategies(args, &store, &instruments, &scan))?;
    if strategies.is_empty() {
        bail!(
            "no strategy to backtest: give --strategy TYPE, --strategies FILE.toml or \
             --strategy-id ID, or enable a stored one with `alpha-panda strategy enable`"
        );
    }
    let strategy_ids: Vec<String> = strategies
        .iter()
        .map(|s| s.strategy.id().to_string())
        .collect();
    let mut setup = services.backtest(strategies, money);
    setup.equity_every = args.equity_every;
    setup.from = from;
    setup.to = to;
    setup.chart = match &args.chart {
        Some(chart) => Some(resolve_instrument(chart, &instruments, "--chart")?),
        None => None,
    };
    // The tables are written and the report folded as the run goes: memory does not grow with it.
    // On a thread of its own: the other core has time the tick reader leaves.
    let journal = JournalThread::start(RunOutputs {
        tables: Tables::create(&args.out)?,
        report: ReportBuilder::new(&setup.portfolios()),
    })
    .context("could not start the journal's thread")?;
    let set_up = started.elapsed();
    let mut backtest = Backtest::new(setup, scan.digest, journal);
    let progress = progress_bar(scan.rows);
    let mut bad_rows: Vec<BadRow> = Vec::new();
    let mut bad_row_count = 0u64;
    let mut read = 0u64;
    for row in rows {
        match row {
            FeedRow::Tick(tick) => backtest.on_tick(&tick),
            FeedRow::Refused(tick, reason) => backtest.on_refused(&tick, &reason),
            FeedRow::Bad(bad) => {
                bad_row_count += 1;
                if bad_rows.len() < BAD_ROWS_KEPT {
                    warn!(line = bad.line, reason = %bad.reason, "tick row skipped");
                    bad_rows.push(bad);
                }
            }
        }
        read += 1;
        // A power of two: the bar is moved every 65,536 rows at the cost of a mask.
        if read & 0xFFFF == 0 {
            if let Some(bar) = &progress {
                bar.set_position(read);
            }
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if bad_row_count > BAD_ROWS_KEPT as u64 {
        warn!(
            bad_rows = bad_row_count,
            "more tick rows were skipped than shown; report.json counts them all"
        );
    }
    let replayed = started.elapsed();
    let outcome = backtest.finish();
    let RunOutputs { tables, report } = outcome.journal.finish();
    let mut written = tables.finish()?;
    let finished = started.elapsed();
    let (report, charts) = report.finish(outcome.start, outcome.end, outcome.chart);
    let report_file = ReportFile {
        input: InputSummary {
            ticks: args.ticks.display().to_string(),
            format,
            bad_rows: bad_row_count,
            first_bad_rows: &bad_rows,
            strategies: strategy_ids,
        },
        counts: &outcome.counts,
        report: &report,
    };
    let json = serde_json::to_string_pretty(&report_file).context("report.json")?;
    let page = html::render_html(&report, &charts);
    let reported = started.elapsed();
    written.extend(outputs::write_report(&args.out, &json, &page)?);
    let elapsed = started.elapsed();
    if args.json {
        println!("{json}");
    } else {
        print_summary(&report, &outcome.counts, &written);
    }
    let ticks = outcome.counts.ticks;
    let cpu = process_cpu_seconds()
        .zip(cpu_started)
        .map(|(end, start)| end - start);
    let peak = peak_resident_bytes();
    eprintln!(
        "{ticks} ticks in {:.3} s ({:.0} ticks/s; replay {:.3} s){}{}",
        elapsed.as_secs_f64(),
        ticks as f64 / elapsed.as_secs_f64().max(1e-9),
        replayed.as_secs_f64(),
        cpu.map(|c| format!("; CPU {:.0} ns per tick", c * 1e9 / ticks.max(1) as f64))
            .unwrap_or_default(),
        peak.map(|p| format!("; peak memory {} MiB", p / (1024 * 1024)))
            .unwrap_or_default(),
    );
    if let Some(path) = &args.timings {
        let timings = Timings {
            ticks,
            wall_seconds: elapsed.as_secs_f64(),
            cpu_seconds: process_cpu_seconds().unwrap_or_default(),
            peak_resident_bytes: peak.unwrap_or_default(),
            fills: outcome.counts.fills,
            phases: Phases {
                scan: scanned.as_secs_f64(),
                setup: (set_up - scanned).as_secs_f64(),
                replay: (finished - set_up).as_secs_f64(),
                report: (reported - finished).as_secs_f64(),
                write: (elapsed - reported).as_secs_f64(),
            },
        };
        std::fs::write(path, serde_json::to_vec(&timings)?)
            .with_context(|| format!("--timings {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(report: &Report, counts: &BacktestCounts, written: &[PathBuf]) {
    let total = &report.total;
    let ratio = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.2}"));
    let pct = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{:.2}%", r * 100.0));
    println!(
        "backtest: {} ticks, {} signals ({} rejected), {} orders, {} fills",
        counts.ticks, counts.signals, counts.rejected_signals, counts.orders, counts.fills
    );
    println!(
        "net PnL {} after charges of {} (gross {}); return {}, CAGR {}",
        total.net_pnl.0,
        total.fees.total.0,
        total.gross_pnl.0,
        pct(total.total_return),
        pct(total.cagr)
    );
    println!(
        "trades {} (win rate {}), profit factor {}, Sharpe {}, Sortino {}, max drawdown {}",
        total.trades,
        pct(total.win_rate),
        ratio(total.profit_factor),
        ratio(total.sharpe),
        ratio(total.sortino),
        total
            .max_drawdown
            .as_ref()
            .map_or("none".to_string(), |d| format!(
                "{} ({})",
                d.value.0,
                pct(d.pct)
            ))
    );
    for path in written {
        println!("wrote {}", path.display());
    }
}

/// A progress bar on stderr when it is a terminal.
fn progress_bar(rows: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(rows);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:40} {human_pos}/{human_len} ticks  {per_sec}  ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// A token (`738561`) or a trading symbol of the master (`RELIANCE`).
fn resolve_instrument(
    text: &str,
    instruments: &HashMap<InstrumentToken, Instrument>,
    flag: &str,
) -> anyhow::Result<InstrumentToken> {
    let text = text.trim();
    if let Ok(token) = text.parse::<u32>() {
        return Ok(InstrumentToken(token));
    }
    let mut matches: Vec<&Instrument> = instruments
        .values()
        .filter(|i| i.tradingsymbol.eq_ignore_ascii_case(text))
        .collect();
    matches.sort_by_key(|i| (i.exchange != "NSE", i.instrument_token));
    match matches.first() {
        Some(instrument) => Ok(instrument.instrument_token),
        None => bail!(
            "{flag}: {text:?} is neither an instrument token nor a trading symbol of the \
             instruments master"
        ),
    }
}

/// The instruments a strategy of the command line or the TOML file trades.
fn resolve_instruments(
    list: Option<&InstrumentList>,
    instruments: &HashMap<InstrumentToken, Instrument>,
    scan: &FileScan,
    flag: &str,
) -> anyhow::Result<Vec<u32>> {
    match list {
        None | Some(InstrumentList::All(_)) => {
            if let Some(InstrumentList::All(word)) = list {
                if !word.eq_ignore_ascii_case("all") {
                    bail!("{flag}: {word:?} is not `all`; give a list of tokens or symbols");
                }
            }
            if scan.instruments.is_empty() {
                bail!("{flag}: the tick file has no instrument to trade");
            }
            Ok(scan.instruments.iter().copied().collect())
        }
        Some(InstrumentList::Each(items)) => {
            let mut tokens = BTreeSet::new();
            for item in items {
                let text = match item {
                    TokenOrSymbol::Token(token) => token.to_string(),
                    TokenOrSymbol::Symbol(symbol) => symbol.clone(),
                };
                tokens.insert(resolve_instrument(&text, instruments, flag)?.0);
            }
            Ok(tokens.into_iter().collect())
        }
    }
}

/// `instruments = "all"` or a list of tokens and symbols.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum InstrumentList {
    All(String),
    Each(Vec<TokenOrSymbol>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenOrSymbol {
    Token(u32),
    Symbol(String),
}

/// `--strategies FILE.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategiesFile {
    strategies: Vec<StrategyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyEntry {
    id: String,
    #[serde(rename = "type")]
    strategy_type: String,
    #[serde(default)]
    params: Option<toml::Value>,
    #[serde(default)]
    instruments: Option<InstrumentList>,
}

async fn strategies(
    args: &BacktestArgs,
    store: &alpha_panda_store::Store,
    instruments: &Arc<HashMap<InstrumentToken, Instrument>>,
    scan: &FileScan,
) -> anyhow::Result<Vec<RunnerStrategy>> {
    let build = |id: &str, kind: &str, tokens: &[u32], params: &serde_json::Value, what: &str| {
        build_strategy(id, kind, tokens, params)
            .map(|strategy| RunnerStrategy {
                strategy,
                zerodha_trading_enabled: false,
                configuration: format!("{kind}:{params}"),
            })
            .with_context(|| format!("{what}: strategy {id:?} cannot be built"))
    };
    if let Some(kind) = &args.strategy {
        let params: serde_json::Value = match &args.params {
            Some(text) => serde_json::from_str(text)
                .with_context(|| format!("--params {text:?} is not JSON"))?,
            None => serde_json::json!({}),
        };
        let list = match args.instruments.as_deref() {
            None => None,
            Some(text) if text.eq_ignore_ascii_case("all") => {
                Some(InstrumentList::All(text.to_string()))
            }
            Some(text) => Some(InstrumentList::Each(
                text.split(',')
                    .map(|s| TokenOrSymbol::Symbol(s.trim().to_string()))
                    .collect(),
            )),
        };
        let tokens = resolve_instruments(list.as_ref(), instruments, scan, "--instruments")?;
        return Ok(vec![build(kind, kind, &tokens, &params, "--strategy")?]);
    }
    if let Some(path) = &args.strategies {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --strategies {}", path.display()))?;
        let file: StrategiesFile =
            toml::from_str(&text).with_context(|| format!("--strategies {}", path.display()))?;
        let mut built = Vec::new();
        let mut ids = BTreeSet::new();
        for entry in &file.strategies {
            if !ids.insert(entry.id.clone()) {
                bail!(
                    "--strategies {}: id {:?} is given twice",
                    path.display(),
                    entry.id
                );
            }
            let what = format!("--strategies {}", path.display());
            let params = match &entry.params {
                Some(value) => serde_json::to_value(value).context("params")?,
                None => serde_json::json!({}),
            };
            let tokens = resolve_instruments(entry.instruments.as_ref(), instruments, scan, &what)?;
            built.push(build(
                &entry.id,
                &entry.strategy_type,
                &tokens,
                &params,
                &what,
            )?);
        }
        return Ok(built);
    }
    let repository = store.strategy_configurations();
    let configurations = if args.strategy_id.is_empty() {
        repository.list_active().await?
    } else {
        let all = repository.list().await?;
        let mut chosen = Vec::new();
        for id in &args.strategy_id {
            match all.iter().find(|c| &c.id == id) {
                Some(config) => chosen.push(config.clone()),
                None => bail!(
                    "--strategy-id {id:?} is not a stored strategy configuration; \
                     `alpha-panda strategy list` shows them"
                ),
            }
        }
        chosen
    };
    configurations
        .iter()
        .map(|c| {
            build(
                &c.id,
                &c.strategy_type,
                &c.instruments,
                &c.parameters,
                "strategy_configurations",
            )
        })
        .collect()
}

/// The process's peak resident memory (VmHWM), from `/proc/self/status`.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The CPU seconds this process has used (user + system), from `/proc/self/stat`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
