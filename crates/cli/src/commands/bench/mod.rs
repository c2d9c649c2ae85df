//! `alpha-panda bench pipeline`: drives simulated ticks through all five services in this process on
//! the memory log — or on Kafka with `--log-url kafka://…` — (SQLite in a temporary directory,
//! in-memory cache) and reports throughput and tick-to-fill latency.
//!
//! Two phases, because a saturated pipeline measures its queue, not its latency:
//! - **throughput**: ticks published as fast as possible; ticks/s is the count over the time until
//!   every consumer of `market.ticks` has read them all;
//! - **latency**: ticks paced at `--latency-rate`; tick-to-fill is a fill's envelope time minus the
//!   envelope time of the tick that caused it (same correlation id), p50/p99/p99.9, and the same
//!   split by hop (tick → signal → validated signal → fill), following causation ids.
//!
//! On Kafka the broker alone is measured too, with the same client ([`broker`]), and the pipeline's
//! figures are printed as ratios of the broker's.

pub mod backtest;
mod broker;
mod soak;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alpha_panda_cache::Cache;
use alpha_panda_core::{
    Broker, Clock, CorrelationId, DedupStore, Envelope, EventId, Payload, SystemClock, Timestamp,
    TopicMap,
};
use alpha_panda_services::market_feed;
use alpha_panda_services::market_feed::feed::{deterministic_ids, MarketFeed, TickSource};
use alpha_panda_services::strategy_runner::RunnerStrategy;
use alpha_panda_services::{build_strategy, nse_universe, TickSimulator};
use alpha_panda_store::Store;
use alpha_panda_stream::{reconcile_topics, Emitter, Log, Processor, ProcessorStats, RecordValue};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::container;
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
    /// All five services, as fast as they go and then paced: throughput and latency.
    Pipeline(PipelineArgs),
    /// All five services at a steady pace for a long time: does consumer lag stay bounded?
    Soak(soak::SoakArgs),
    /// The whole `alpha-panda backtest` process over a recorded session, CSV and Parquet.
    Backtest(backtest::BacktestBenchArgs),
}

/// The pipeline a bench builds: what it simulates and the log it runs on.
#[derive(Debug, Args)]
pub struct Shape {
    /// Instruments simulated (at most the bundled universe).
    #[arg(long, default_value_t = 50)]
    pub instruments: usize,
    /// Strategies, each over every simulated instrument (alternating ema_cross / mean_reversion).
    #[arg(long, default_value_t = 4)]
    pub strategies: usize,
    /// The log to run on: `memory://` or `kafka://host:port` (topics are created as needed).
    #[arg(long, default_value = "memory://")]
    pub log_url: String,
}

/// Arguments of `bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Ticks in the throughput phase.
    #[arg(long, default_value_t = 500_000)]
    pub ticks: u64,
    /// The pipeline.
    #[command(flatten)]
    pub shape: Shape,
    /// Ticks per second in the latency phase (on Kafka also the broker's one-hop probe's rate).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub latency_rate: u32,
    /// Length of the latency phase.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub latency_duration: Duration,
    /// Records the broker alone is measured with (Kafka only).
    #[arg(long, default_value_t = 100_000)]
    pub broker_records: u64,
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
    /// Ticks per second over each successive million ticks (when every consumer of `market.ticks`
    /// has read it), to show whether the pipeline slows as the run gets longer.
    pub ticks_per_second_by_million: Vec<f64>,
    /// The process's peak resident memory when the throughput phase's last tick had been read,
    /// MiB (Linux only): before the latency phase reads back the ticks it measures, which on
    /// Kafka means every tick the topic holds, the throughput phase's too — the bench's memory,
    /// not the pipeline's.
    pub peak_resident_mib: Option<f64>,
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
    /// The same, hop by hop, in the order a tick becomes a fill.
    pub hops: Vec<HopLatency>,
    /// Time the market feed's task spent running in the throughput phase, seconds.
    pub feed_busy_seconds: f64,
    /// Each service's load in the throughput phase.
    pub services: Vec<ServiceLoad>,
    /// The broker alone, with the same client (Kafka only).
    pub broker: Option<broker::BrokerReport>,
    /// The pipeline's figures as ratios of the broker's (Kafka only).
    pub against_broker: Option<AgainstBroker>,
}

/// The pipeline measured against the broker alone, in the same run.
#[derive(Debug, Serialize)]
pub struct AgainstBroker {
    /// Pipeline ticks/s ÷ the broker's produce rate (the floor: 0.4).
    pub throughput: f64,
    /// Tick-to-fill p99 ÷ (4 × one hop's p99 alone) (the ceiling: 1.5).
    pub tick_to_fill_p99: f64,
}

/// One hop of the way from a tick to its fill.
#[derive(Debug, Serialize)]
pub struct HopLatency {
    /// From which event to which.
    pub hop: &'static str,
    /// Which service's handling and which topic the hop crosses.
    pub through: &'static str,
    /// Latency, microseconds.
    pub us: Percentiles,
    /// Where the hop's time goes: the crossing service's own handling against waiting on the
    /// log, from what the service did in the same phase (see [`why_the_hop_takes`]).
    pub why: String,
}

/// The hops from a tick to its fill, in order: what each is, what it crosses, and the service
/// (by the name in its consumer group) whose handling it includes.
const HOPS: [(&str, &str, &str); 3] = [
    (
        "tick → signal",
        "market.ticks, strategy_runner",
        "strategy_runner",
    ),
    (
        "signal → validated",
        "signals.raw, risk_manager",
        "risk_manager",
    ),
    (
        "validated → fill",
        "signals.validated, trading_engine",
        "trading_engine",
    ),
];

/// Why a hop takes what it takes, said from the phase's own figures: the time the service it
/// crosses spent handling each record it read (its busy time over its records) against the hop's
/// median. A hop runs from its input's creation to its output's, so one whose service is mostly
/// idle is waiting on the log — the input's produce, then the fetch that brings it — and the
/// topics a service reads tell how many partitions each of its fetches covers.
fn why_the_hop_takes(us: &Percentiles, service: &ServiceLoad, phase: Duration) -> String {
    let busy_share = service.busy_seconds / phase.as_secs_f64().max(1e-9);
    let per_record_us = service.busy_seconds * 1e6 / service.events_in.max(1) as f64;
    let topics: BTreeSet<&str> = service.lag.iter().map(|l| l.topic.as_str()).collect();
    let read = if topics.is_empty() {
        format!("{} records", service.events_in)
    } else {
        format!(
            "{} records from {} topic{}",
            service.events_in,
            topics.len(),
            if topics.len() == 1 { "" } else { "s" }
        )
    };
    let own_share = per_record_us / us.p50.max(1) as f64;
    if busy_share < 0.5 {
        format!(
            "{} was busy {:.1}% of the phase, {:.0} µs per record ({read}): its own handling \
             is {:.1}% of the hop's p50 of {} µs, the rest is waiting on the log (the input's \
             produce, then the fetch that brings it here)",
            service.group,
            busy_share * 100.0,
            per_record_us,
            own_share * 100.0,
            us.p50
        )
    } else {
        format!(
            "{} was busy {:.1}% of the phase, {:.0} µs per record ({read}): records queue \
             behind its own handling",
            service.group,
            busy_share * 100.0,
            per_record_us
        )
    }
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
    /// The most ticks it was behind the feed, sampled every millisecond.
    pub max_lag_ticks: u64,
    /// The most records it was behind on `market.ticks` (all partitions together), as its
    /// consumer measured it (committed offsets), sampled every second.
    pub max_tick_lag_records: i64,
    /// Its lag per partition at the end of the phase, as its consumer last measured it.
    pub lag: Vec<alpha_panda_stream::PartitionLag>,
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
pub fn run(
    settings: &Settings,
    args: &BenchArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match &args.target {
        BenchTarget::Pipeline(args) => runtime.block_on(pipeline(settings, args)),
        BenchTarget::Soak(args) => runtime.block_on(soak::run(settings, args)),
        // Processes and files, one after the other: nothing to await.
        BenchTarget::Backtest(args) => backtest::run(args),
    }
}

async fn pipeline(settings: &Settings, args: &PipelineArgs) -> anyhow::Result<ExitCode> {
    // The broker alone first, while it holds nothing of the pipeline's.
    let broker = if args.shape.log_url.starts_with("kafka") {
        let log = Log::connect(&args.shape.log_url, &settings.log.kafka)?;
        // The pipeline's topics, so that the broker's records spread over as many partitions.
        let overlay = settings.topic_overlay(log.broker_count().await?);
        reconcile_topics(&log, &[Broker::Paper], &overlay, true).await?;
        Some(
            broker::measure(
                &log,
                args.broker_records,
                args.latency_rate,
                args.latency_duration,
            )
            .await
            .context("measuring the broker alone")?,
        )
    } else {
        None
    };
    let throughput = phase(settings, &args.shape, 0, Some(args.ticks), None).await?;
    let rate_ticks = u64::from(args.latency_rate) * args.latency_duration.as_secs().max(1);
    let latency = phase(
        settings,
        &args.shape,
        args.latency_rate,
        Some(rate_ticks),
        None,
    )
    .await?;
    let ticks_per_second = args.ticks as f64 / throughput.elapsed.as_secs_f64().max(1e-9);
    let tick_to_fill_us = percentiles(latency.latencies);
    let against_broker = broker.as_ref().map(|b| AgainstBroker {
        throughput: ticks_per_second / b.produce_per_second.max(1e-9),
        tick_to_fill_p99: tick_to_fill_us.p99 as f64 / (4.0 * b.hop_us.p99.max(1) as f64),
    });
    let report = PipelineReport {
        log: throughput.log,
        ticks: args.ticks,
        instruments: throughput.instruments,
        strategies: args.shape.strategies,
        seconds: throughput.elapsed.as_secs_f64(),
        ticks_per_second,
        ticks_per_second_by_million: throughput.by_million,
        peak_resident_mib: throughput.peak_resident_mib,
        fills: throughput.fills,
        cpu_seconds: throughput.cpu_seconds,
        cpu_us_per_tick: throughput
            .cpu_seconds
            .map(|cpu| cpu * 1e6 / args.ticks.max(1) as f64),
        latency_samples: latency.samples,
        tick_to_fill_us,
        hops: latency.hops,
        services: throughput.services,
        feed_busy_seconds: throughput.feed_busy_seconds,
        broker,
        against_broker,
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
        if report.ticks_per_second_by_million.len() > 1 {
            let by_million: Vec<String> = report
                .ticks_per_second_by_million
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect();
            println!("  ticks/s by million: {}", by_million.join(", "));
        }
        if let Some(peak) = report.peak_resident_mib {
            println!("  peak resident memory {peak:.0} MiB");
        }
        let p = &report.tick_to_fill_us;
        println!(
            "tick-to-fill at {} ticks/s ({} fills): p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            args.latency_rate, report.latency_samples, p.p50, p.p99, p.p999, p.max
        );
        for hop in &report.hops {
            println!(
                "  {} ({}): p50 {} µs, p99 {} µs",
                hop.hop, hop.through, hop.us.p50, hop.us.p99
            );
        }
        if let Some(slowest) = report.hops.iter().max_by_key(|h| h.us.p99) {
            println!(
                "  slowest hop at p99: {} ({})",
                slowest.hop, slowest.through
            );
            println!("    why: {}", slowest.why);
        }
        println!("  market_feed: busy {:.2} s", report.feed_busy_seconds);
        for service in &report.services {
            println!(
                "  {}: busy {:.2} s, {} read, {} conflated, {} published, at most {} ticks behind the feed",
                service.group,
                service.busy_seconds,
                service.events_in,
                service.conflated,
                service.events_out,
                service.max_lag_ticks
            );
        }
        if let (Some(b), Some(ratio)) = (&report.broker, &report.against_broker) {
            println!(
                "broker alone ({} records of {} bytes): produce {:.0}/s, consume {:.0}/s; one hop at {}/s: p50 {} µs, p99 {} µs",
                b.records,
                b.record_bytes,
                b.produce_per_second,
                b.consume_per_second,
                b.hop_rate,
                b.hop_us.p50,
                b.hop_us.p99
            );
            println!(
                "  pipeline throughput {:.2} × the broker's produce rate; tick-to-fill p99 {:.2} × 4 hops' p99",
                ratio.throughput, ratio.tick_to_fill_p99
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct PhaseResult {
    services: Vec<ServiceLoad>,
    /// Ticks the feed published (fewer than asked when a [`LagWatch`] stopped it).
    published: u64,
    /// When a [`LagWatch`] stopped the feed, how long after the first tick.
    stopped_after: Option<Duration>,
    feed_busy_seconds: f64,
    cpu_seconds: Option<f64>,
    /// The process's peak resident memory when the phase's last tick had been read, before
    /// anything was read back to measure it.
    peak_resident_mib: Option<f64>,
    log: &'static str,
    elapsed: Duration,
    fills: u64,
    instruments: usize,
    latencies: Vec<i64>,
    samples: usize,
    hops: Vec<HopLatency>,
    by_million: Vec<f64>,
}

/// What a long phase watches while it runs: every consumer's lag on `market.ticks`, told on
/// stderr every `report_every`, and the feed stopped as soon as one is more than `limit_records`
/// behind (the run has failed; going on would only say so later).
pub struct LagWatch {
    /// The most records any consumer may be behind.
    pub limit_records: i64,
    /// How often a progress line is written.
    pub report_every: Duration,
    /// The feed's rate, to tell lag in seconds.
    pub rate: u32,
}

impl LagWatch {
    /// A progress line: how far the run is and the lag now and at worst.
    fn progress(&self, elapsed: Duration, published: u64, now: i64, worst: i64) -> String {
        let seconds = |records: i64| records as f64 / f64::from(self.rate.max(1));
        format!(
            "soak: {:.0} s, {published} ticks; lag now {:.3} s, worst {:.3} s (limit {:.3} s)",
            elapsed.as_secs_f64(),
            seconds(now),
            seconds(worst),
            seconds(self.limit_records)
        )
    }
}

/// One pipeline, fresh backends, `max_ticks` at `rate` (0: as fast as possible), watched by
/// `watch` if given.
async fn phase(
    settings: &Settings,
    shape: &Shape,
    rate: u32,
    max_ticks: Option<u64>,
    watch: Option<&LagWatch>,
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
        &shape.log_url,
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
    let mut config = settings.runtime.processor_config();
    // Lag is sampled every second below.
    config.lag_interval = config.lag_interval.min(Duration::from_secs(1));

    let universe: Vec<_> = nse_universe()
        .into_iter()
        .take(shape.instruments.max(1))
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
    for n in 0..shape.strategies {
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
    let built = container::Services::new(settings, store.clone(), Some(cache.clone()), instruments);
    spawn!(built.strategy_runner(strategies, &[Broker::Paper]).await?);
    spawn!(built.risk_manager(Broker::Paper).await?);
    spawn!(built.paper_trading_engine().await?);
    spawn!(built.portfolio_manager(Broker::Paper).await?);
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
        Emitter::new(log.clone(), market_feed::feed::SERVICE, clock.clone()),
        source,
    )
    .with_guard(built.tick_guard());
    let feed_stats = feed.stats();
    let cpu_before = process_cpu_seconds().await;
    let started = Instant::now();
    let feed_busy = Arc::new(BusyTime::default());
    let feed_stop = CancellationToken::new();
    let feed_task = tokio::spawn(feed_busy.measure(feed.run(feed_stop.clone())));
    let mut stopped_after = None;
    let mut reported = started;
    let total = max_ticks.unwrap_or(0);
    // Every service reads every tick: strategy runner, risk manager, trading engine, portfolio.
    let mut max_lag = vec![0u64; tick_readers.len()];
    let mut by_million = Vec::new();
    let mut million_started = started;
    let mut max_tick_lag = vec![0i64; tick_readers.len()];
    let mut lag_sampled = started;
    loop {
        let published = feed_stats.published.load(Ordering::Relaxed);
        if lag_sampled.elapsed() >= Duration::from_secs(1) {
            lag_sampled = Instant::now();
            let mut lag_now = 0;
            for ((_, stats, _), max) in tick_readers.iter().zip(max_tick_lag.iter_mut()) {
                let lag = tick_lag(&stats.lag());
                lag_now = lag_now.max(lag);
                *max = (*max).max(lag);
            }
            if let Some(watch) = watch {
                let worst = max_tick_lag.iter().copied().max().unwrap_or(0);
                if worst > watch.limit_records {
                    eprintln!(
                        "{}; over the limit: stopping the feed",
                        watch.progress(started.elapsed(), published, lag_now, worst)
                    );
                    stopped_after = Some(started.elapsed());
                    feed_stop.cancel();
                    break;
                }
                if reported.elapsed() >= watch.report_every {
                    reported = Instant::now();
                    eprintln!(
                        "{}",
                        watch.progress(started.elapsed(), published, lag_now, worst)
                    );
                }
            }
        }
        let read_by_all = tick_readers
            .iter()
            .map(|(_, s, _)| ProcessorStats::get(&s.events_in))
            .min()
            .unwrap_or(0);
        if read_by_all >= (by_million.len() as u64 + 1) * 1_000_000 {
            by_million.push(1e6 / million_started.elapsed().as_secs_f64().max(1e-9));
            million_started = Instant::now();
        }
        for ((_, stats, _), max) in tick_readers.iter().zip(max_lag.iter_mut()) {
            // Inputs other than ticks count too, so this is a floor of the ticks behind.
            let behind = published.saturating_sub(ProcessorStats::get(&stats.events_in));
            *max = (*max).max(behind);
        }
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
    let peak_resident_mib = peak_resident_mib().await;
    let feed_busy_seconds = feed_busy.seconds();
    let services: Vec<ServiceLoad> = tick_readers
        .iter()
        .zip(max_lag.into_iter().zip(max_tick_lag))
        .map(
            |((group, stats, busy), (max_lag_ticks, max_tick_lag_records))| ServiceLoad {
                group: group.clone(),
                busy_seconds: busy.seconds(),
                events_in: ProcessorStats::get(&stats.events_in),
                conflated: ProcessorStats::get(&stats.conflated),
                events_out: ProcessorStats::get(&stats.events_out),
                max_lag_ticks,
                max_tick_lag_records,
                lag: stats.lag(),
            },
        )
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
    let topics = TopicMap::new(Broker::Paper);
    let events_of = |topic: String| {
        let log = log.clone();
        async move {
            let records = log.read_all(&topic).await?;
            Ok::<_, anyhow::Error>(
                records
                    .into_iter()
                    .filter_map(|r| decode(r.value))
                    .filter(|e| e.ts >= start_at)
                    .collect::<Vec<_>>(),
            )
        }
    };
    // Latencies are the latency phase's; the throughput phase's ticks (millions, perhaps) are
    // not read back.
    let ticks = if rate > 0 {
        events_of(TopicMap::market_ticks()).await?
    } else {
        Vec::new()
    };
    let tick_times: HashMap<CorrelationId, Timestamp> = ticks
        .iter()
        .map(|e| (e.correlation_id.clone(), e.ts))
        .collect();
    let by_id = |events: Vec<Arc<Envelope>>| -> HashMap<EventId, Arc<Envelope>> {
        events.into_iter().map(|e| (e.id, e)).collect()
    };
    let ticks = by_id(ticks);
    let (raw, validated) = if rate > 0 {
        (
            by_id(events_of(topics.signals_raw()).await?),
            by_id(events_of(topics.signals_validated()).await?),
        )
    } else {
        Default::default()
    };
    let mut latencies = Vec::new();
    let mut hop_samples: [Vec<i64>; 3] = Default::default();
    let fills = events_of(topics.orders_filled()).await?;
    let fill_count = fills.len() as u64;
    for fill in &fills {
        if !matches!(fill.payload, Payload::OrderFilled(_)) {
            continue;
        }
        if let Some(tick_at) = tick_times.get(&fill.correlation_id) {
            latencies.push(fill.ts.unix_micros() - tick_at.unix_micros());
        }
        // The chain back to the tick, by causation: fill ← validated ← raw ← tick.
        let cause = |events: &HashMap<EventId, Arc<Envelope>>, of: &Envelope| {
            of.causation_id.and_then(|id| events.get(&id).cloned())
        };
        let Some(v) = cause(&validated, fill) else {
            continue;
        };
        let Some(r) = cause(&raw, &v) else { continue };
        let Some(t) = cause(&ticks, &r) else { continue };
        let chain = [&t, &r, &v];
        let next = [&r, &v, fill];
        for (samples, (from, to)) in hop_samples.iter_mut().zip(chain.iter().zip(next)) {
            samples.push(to.ts.unix_micros() - from.ts.unix_micros());
        }
    }
    let hops = HOPS
        .iter()
        .zip(hop_samples)
        .map(|(&(hop, through, service), samples)| {
            let us = percentiles(samples);
            let why = services
                .iter()
                .find(|s: &&ServiceLoad| s.group.split('.').nth(1) == Some(service))
                .map(|s| why_the_hop_takes(&us, s, elapsed))
                .unwrap_or_default();
            HopLatency {
                hop,
                through,
                us,
                why,
            }
        })
        .collect();
    store.close().await;
    log.flush().await;
    Ok(PhaseResult {
        published: feed_stats.published.load(Ordering::Relaxed),
        stopped_after,
        log: if is_kafka { "kafka" } else { "memory" },
        elapsed,
        fills: fill_count,
        instruments: universe.len(),
        samples: latencies.len(),
        by_million,
        latencies,
        hops,
        services,
        feed_busy_seconds,
        cpu_seconds,
        peak_resident_mib,
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

/// Records behind on `market.ticks`, all partitions together.
fn tick_lag(lag: &[alpha_panda_stream::PartitionLag]) -> i64 {
    lag.iter()
        .filter(|l| l.topic == TopicMap::market_ticks_str())
        .map(|l| l.lag)
        .sum()
}

/// This process's peak resident set (`VmHWM` in `/proc/self/status`), MiB; `None` where there is
/// no such file.
async fn peak_resident_mib() -> Option<f64> {
    let status = tokio::fs::read_to_string("/proc/self/status").await.ok()?;
    peak_resident_of_status(&status)
}

fn peak_resident_of_status(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
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
    fn peak_resident_memory_is_read_from_vm_hwm() {
        let status =
            "Name:\talpha-panda\nVmPeak:\t 900000 kB\nVmHWM:\t  409600 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(peak_resident_of_status(status), Some(400.0));
        assert_eq!(peak_resident_of_status("Name: x"), None);
    }

    fn service(busy_seconds: f64, events_in: u64, topics: &[&str]) -> ServiceLoad {
        let lag = topics
            .iter()
            .flat_map(|topic| {
                (0..2).map(|partition| alpha_panda_stream::PartitionLag {
                    topic: topic.to_string(),
                    partition,
                    high_watermark: 10,
                    committed: 10,
                    lag: 0,
                })
            })
            .collect();
        ServiceLoad {
            group: "alpha-panda.risk_manager.paper".into(),
            events_in,
            conflated: 0,
            events_out: 0,
            busy_seconds,
            max_lag_ticks: 0,
            max_tick_lag_records: 0,
            lag,
        }
    }

    #[test]
    fn a_hop_whose_service_is_mostly_idle_is_said_to_wait_on_the_log() {
        let hop = Percentiles {
            p50: 20_000,
            p99: 90_000,
            p999: 100_000,
            max: 120_000,
        };
        let topics = ["market.ticks", "paper.signals.raw", "paper.orders.filled"];
        let why = why_the_hop_takes(&hop, &service(0.02, 1_000, &topics), Duration::from_secs(1));
        assert_eq!(
            why,
            "alpha-panda.risk_manager.paper was busy 2.0% of the phase, 20 µs per record \
             (1000 records from 3 topics): its own handling is 0.1% of the hop's p50 of 20000 µs, \
             the rest is waiting on the log (the input's produce, then the fetch that brings it \
             here)"
        );

        let busy = why_the_hop_takes(&hop, &service(0.8, 1_000, &[]), Duration::from_secs(1));
        assert_eq!(
            busy,
            "alpha-panda.risk_manager.paper was busy 80.0% of the phase, 800 µs per record \
             (1000 records): records queue behind its own handling"
        );
    }

    #[test]
    fn percentiles_pick_ranks() {
        let p = percentiles((1..=1000).collect());
        assert_eq!((p.p50, p.p99, p.p999, p.max), (501, 990, 999, 1000));
        assert_eq!(percentiles(Vec::new()).max, 0);
    }
}
