//! `alpha-panda bench pipeline`: drives simulated ticks through all five services in this process on
//! the memory log — or on Kafka with `--log-url kafka://…` — (SQLite in a temporary directory,
//! in-memory cache) and reports throughput and tick-to-fill latency.
//!
//! Two phases, because a saturated pipeline measures its queue, not its latency:
//! - **throughput**: ticks published as fast as possible; ticks/s is the count over the time until
//!   every consumer of `market.ticks` has read them all;
//! - **latency**: ticks paced at `--latency-rate`; tick-to-fill is a fill's envelope time minus the
//!   envelope time of the tick that caused it (same correlation id), p50/p99/p99.9.

use std::collections::HashMap;
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alpha_panda_cache::Cache;
use alpha_panda_core::{
    Broker, Clock, CorrelationId, DedupStore, Envelope, Payload, SystemClock, Timestamp, TopicMap,
};
use alpha_panda_services::market_feed::feed::{deterministic_ids, MarketFeed, TickSource};
use alpha_panda_services::market_feed::TickGuard;
use alpha_panda_services::portfolio_manager::service::PortfolioManager;
use alpha_panda_services::risk_manager::service::RiskManager;
use alpha_panda_services::strategy_runner::{RunnerStrategy, StrategyRunner};
use alpha_panda_services::trading_engine::service::TradingEngine;
use alpha_panda_services::{build_strategy, nse_universe, PaperTrader, TickSimulator};
use alpha_panda_store::Store;
use alpha_panda_stream::{reconcile_topics, Emitter, Log, Processor, ProcessorStats, RecordValue};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// All five services on the memory log.
    Pipeline(PipelineArgs),
}

/// Arguments of `bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Ticks in the throughput phase.
    #[arg(long, default_value_t = 500_000)]
    pub ticks: u64,
    /// Instruments simulated (at most the bundled universe).
    #[arg(long, default_value_t = 50)]
    pub instruments: usize,
    /// Strategies, each over every simulated instrument (alternating ema_cross / mean_reversion).
    #[arg(long, default_value_t = 4)]
    pub strategies: usize,
    /// Ticks per second in the latency phase.
    #[arg(long, default_value_t = 2_000)]
    pub latency_rate: u32,
    /// Length of the latency phase.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub latency_duration: Duration,
    /// The log to run on: `memory://` or `kafka://host:port` (topics are created as needed).
    #[arg(long, default_value = "memory://")]
    pub log_url: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `bench pipeline` reports.
#[derive(Debug, Serialize)]
pub struct PipelineReport {
    /// `memory` or `kafka`.
    pub log: &'static str,
    /// Ticks in the throughput phase.
    pub ticks: u64,
    /// Instruments.
    pub instruments: usize,
    /// Strategies.
    pub strategies: usize,
    /// Seconds until every tick was read by every consumer.
    pub seconds: f64,
    /// Ticks per second.
    pub ticks_per_second: f64,
    /// Fills in the throughput phase.
    pub fills: u64,
    /// CPU time the whole process used in the throughput phase, all cores together (Linux only).
    pub cpu_seconds: Option<f64>,
    /// That CPU time per tick, microseconds: what a tick costs, whatever the cores.
    pub cpu_us_per_tick: Option<f64>,
    /// Fills measured in the latency phase.
    pub latency_samples: usize,
    /// Tick-to-fill latency, microseconds.
    pub tick_to_fill_us: Percentiles,
    /// Time the market feed's task spent running in the throughput phase, seconds.
    pub feed_busy_seconds: f64,
    /// Each service's load in the throughput phase.
    pub services: Vec<ServiceLoad>,
}

/// What one service did in the throughput phase, when the last tick had been read.
#[derive(Debug, Serialize)]
pub struct ServiceLoad {
    /// Its consumer group.
    pub group: String,
    /// Records read.
    pub events_in: u64,
    /// Ticks skipped as superseded by a later tick of the same instrument already fetched.
    pub conflated: u64,
    /// Events it published.
    pub events_out: u64,
    /// Time its task spent running (being polled), seconds: its share of the cores.
    pub busy_seconds: f64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
    /// 99.9th percentile.
    pub p999: i64,
    /// Largest.
    pub max: i64,
}

/// Runs a benchmark.
///
/// # Errors
/// When the pipeline cannot be built.
pub async fn run(settings: &Settings, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let BenchTarget::Pipeline(args) = &args.target;
    let throughput = phase(settings, args, 0, Some(args.ticks)).await?;
    let rate_ticks = u64::from(args.latency_rate) * args.latency_duration.as_secs().max(1);
    let latency = phase(settings, args, args.latency_rate, Some(rate_ticks)).await?;
    let report = PipelineReport {
        log: throughput.log,
        ticks: args.ticks,
        instruments: throughput.instruments,
        strategies: args.strategies,
        seconds: throughput.elapsed.as_secs_f64(),
        ticks_per_second: args.ticks as f64 / throughput.elapsed.as_secs_f64().max(1e-9),
        fills: throughput.fills,
        cpu_seconds: throughput.cpu_seconds,
        cpu_us_per_tick: throughput
            .cpu_seconds
            .map(|cpu| cpu * 1e6 / args.ticks.max(1) as f64),
        latency_samples: latency.latencies.len(),
        tick_to_fill_us: percentiles(latency.latencies),
        services: throughput.services,
        feed_busy_seconds: throughput.feed_busy_seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "pipeline on {}: {} ticks over {} instruments, {} strategies: {:.2} s, {:.0} ticks/s, {} fills",
            report.log,
            report.ticks,
            report.instruments,
            report.strategies,
            report.seconds,
            report.ticks_per_second,
            report.fills
        );
        if let (Some(cpu), Some(per_tick)) = (report.cpu_seconds, report.cpu_us_per_tick) {
            println!("  CPU {cpu:.2} s over all cores: {per_tick:.2} µs per tick");
        }
        let p = &report.tick_to_fill_us;
        println!(
            "tick-to-fill at {} ticks/s ({} fills): p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            args.latency_rate, report.latency_samples, p.p50, p.p99, p.p999, p.max
        );
        println!("  market_feed: busy {:.2} s", report.feed_busy_seconds);
        for service in &report.services {
            println!(
                "  {}: busy {:.2} s, {} read, {} conflated, {} published",
                service.group,
                service.busy_seconds,
                service.events_in,
                service.conflated,
                service.events_out
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct PhaseResult {
    services: Vec<ServiceLoad>,
    feed_busy_seconds: f64,
    cpu_seconds: Option<f64>,
    log: &'static str,
    elapsed: Duration,
    fills: u64,
    instruments: usize,
    latencies: Vec<i64>,
}

/// One pipeline, fresh backends, `max_ticks` at `rate` (0: as fast as possible).
async fn phase(
    settings: &Settings,
    args: &PipelineArgs,
    rate: u32,
    max_ticks: Option<u64>,
) -> anyhow::Result<PhaseResult> {
    let dir = tempfile::tempdir().context("no temporary directory for the bench database")?;
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await?;
    store.migrate().await?;
    let cache = Cache::connect("memory://", "bench:").await?;
    let log = Log::connect_with(
        &args.log_url,
        &settings.log.kafka,
        settings.log.memory_config(),
    )?;
    let is_kafka = log.backend_name() == "kafka";
    if is_kafka {
        let overlay = settings.topic_overlay(log.broker_count().await?);
        reconcile_topics(&log, &[Broker::Paper], &overlay, true).await?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dedup: Arc<dyn DedupStore> = Arc::new(cache.dedup());
    let config = settings.runtime.processor_config();

    let universe: Vec<_> = nse_universe()
        .into_iter()
        .take(args.instruments.max(1))
        .collect();
    store.instruments().upsert_many(&universe).await?;
    let instruments: Arc<HashMap<_, _>> = Arc::new(
        universe
            .iter()
            .map(|i| (i.instrument_token, i.clone()))
            .collect(),
    );
    let tokens: Vec<u32> = universe.iter().map(|i| i.instrument_token.0).collect();
    let mut strategies = Vec::new();
    for n in 0..args.strategies {
        let (kind, parameters) = if n % 2 == 0 {
            (
                "ema_cross",
                serde_json::json!({"fast": 5 + n, "slow": 20 + n}),
            )
        } else {
            (
                "mean_reversion",
                serde_json::json!({"window": 20 + n, "entry_z": 1.5}),
            )
        };
        strategies.push(RunnerStrategy {
            strategy: build_strategy(&format!("bench_{n}"), kind, &tokens, &parameters)?,
            zerodha_trading_enabled: false,
            configuration: format!("{kind}:{parameters}"),
        });
    }

    let shutdown = CancellationToken::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut tick_readers: Vec<(String, Arc<ProcessorStats>, Arc<BusyTime>)> = Vec::new();
    macro_rules! spawn {
        ($handler:expr) => {{
            let processor = Processor::new(
                $handler,
                log.clone(),
                dedup.clone(),
                clock.clone(),
                config.clone(),
            );
            let busy = Arc::new(BusyTime::default());
            tick_readers.push((processor.group().to_string(), processor.stats(), busy.clone()));
            let token = shutdown.clone();
            tasks.spawn(busy.measure(async move {
                if let Err(e) = processor.run(token).await {
                    tracing::error!(error = %e, "bench processor failed");
                }
            }));
        }};
    }
    spawn!(StrategyRunner::open(strategies, &[Broker::Paper], store.clone()).await?);
    spawn!(
        RiskManager::open(
            Broker::Paper,
            settings.risk.paper.clone(),
            instruments.clone(),
            store.clone(),
            None,
        )
        .await?
    );
    let trader = PaperTrader::new(settings.paper.clone(), &universe);
    spawn!(TradingEngine::open_paper(trader, store.clone()).await?);
    spawn!(
        PortfolioManager::open(
            Broker::Paper,
            settings.portfolio.clone(),
            store.clone(),
            Some(cache.portfolios()),
        )
        .await?
    );
    // Give the consumers their first poll (on Kafka: their group join) before the ticks flow.
    let join = if is_kafka {
        Duration::from_secs(8)
    } else {
        Duration::from_millis(200)
    };
    tokio::time::sleep(join).await;

    let start_at = Timestamp::from_datetime(chrono::Utc::now());
    let source = TickSource::Simulated {
        simulator: Box::new(TickSimulator::new(7, universe.clone())?),
        start: start_at,
        step: Duration::from_millis(1),
        ticks_per_second: rate,
        max_ticks,
        ids: Some(deterministic_ids(b"bench", start_at)),
    };
    let feed = MarketFeed::new(
        Emitter::new(log.clone(), "market_feed", clock.clone()),
        source,
    )
    .with_guard(TickGuard::new(
        &universe,
        settings.market_feed.max_price_jump_pct,
    ));
    let feed_stats = feed.stats();
    let cpu_before = process_cpu_seconds().await;
    let started = Instant::now();
    let feed_busy = Arc::new(BusyTime::default());
    let feed_task = tokio::spawn(feed_busy.measure(feed.run(CancellationToken::new())));
    let total = max_ticks.unwrap_or(0);
    // Every service reads every tick: strategy runner, risk manager, trading engine, portfolio.
    loop {
        let published = feed_stats.published.load(Ordering::Relaxed);
        let done = published >= total
            && tick_readers
                .iter()
                .all(|(_, s, _)| ProcessorStats::get(&s.events_in) >= total);
        if done {
            break;
        }

        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let cpu_seconds = match (cpu_before, process_cpu_seconds().await) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let feed_busy_seconds = feed_busy.seconds();
    let services = tick_readers
        .iter()
        .map(|(group, stats, busy)| ServiceLoad {
            group: group.clone(),
            busy_seconds: busy.seconds(),
            events_in: ProcessorStats::get(&stats.events_in),
            conflated: ProcessorStats::get(&stats.conflated),
            events_out: ProcessorStats::get(&stats.events_out),
        })
        .collect();
    feed_task.await??;
    // Let the last signals become fills, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}

    let decode = |value: RecordValue| match value {
        RecordValue::Event(e) => Some(e),
        RecordValue::Bytes(b) => Envelope::from_json(&b).ok().map(Arc::new),
    };
    // On Kafka the topics outlive a phase: only this phase's events count.
    let tick_times: HashMap<CorrelationId, Timestamp> = log
        .read_all(&TopicMap::market_ticks())
        .await?
        .into_iter()
        .filter_map(|r| decode(r.value))
        .filter(|e| e.ts >= start_at)
        .map(|e| (e.correlation_id.clone(), e.ts))
        .collect();
    let mut latencies = Vec::new();
    let mut fill_count = 0u64;
    for record in log
        .read_all(&TopicMap::new(Broker::Paper).orders_filled())
        .await?
    {
        let Some(e) = decode(record.value) else {
            continue;
        };
        if e.ts < start_at {
            continue;
        }
        fill_count += 1;
        if let (Payload::OrderFilled(_), Some(tick_at)) =
            (&e.payload, tick_times.get(&e.correlation_id))
        {
            latencies.push(e.ts.unix_micros() - tick_at.unix_micros());
        }
    }
    store.close().await;
    log.flush().await;
    Ok(PhaseResult {
        log: if is_kafka { "kafka" } else { "memory" },
        elapsed,
        fills: fill_count,
        instruments: universe.len(),
        latencies,
        services,
        feed_busy_seconds,
        cpu_seconds,
    })
}

/// Time a task spends being polled: on a busy runtime, the CPU it takes (its share of the cores),
/// which tells which service a tick's cost goes to.
#[derive(Debug, Default)]
struct BusyTime {
    nanos: AtomicU64,
}

impl BusyTime {
    /// `task`, adding every poll's duration to this counter.
    fn measure<F: Future + Send + 'static>(
        self: &Arc<Self>,
        task: F,
    ) -> impl Future<Output = F::Output> + Send + 'static {
        let busy = self.clone();
        let mut task = Box::pin(task);
        std::future::poll_fn(move |cx| {
            let started = Instant::now();
            let polled = task.as_mut().poll(cx);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            busy.nanos.fetch_add(nanos, Ordering::Relaxed);
            polled
        })
    }

    fn seconds(&self) -> f64 {
        self.nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// CPU time (user and system) this process has used so far, from `/proc/self/stat`; `None` where
/// there is no such file.
async fn process_cpu_seconds() -> Option<f64> {
    let stat = tokio::fs::read_to_string("/proc/self/stat").await.ok()?;
    cpu_seconds_of_stat(&stat)
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds. The fields are counted after the
/// command name, which is in parentheses and may itself hold spaces.
fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    // Linux reports these in USER_HZ clock ticks: 100 on x86-64 and arm64.
    const USER_HZ: f64 = 100.0;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

fn percentiles(mut samples: Vec<i64>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index.min(samples.len() - 1)]
    };
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: samples[samples.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (alpha panda) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(cpu_seconds_of_stat(stat), Some(3.25));
        assert_eq!(cpu_seconds_of_stat("garbage"), None);
    }

    #[test]
    fn percentiles_pick_ranks() {
        let p = percentiles((1..=1000).collect());
        assert_eq!((p.p50, p.p99, p.p999, p.max), (501, 990, 999, 1000));
        assert_eq!(percentiles(Vec::new()).max, 0);
    }
}
