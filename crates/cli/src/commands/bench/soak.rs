//! `alpha-panda bench soak`: the five services with the feed paced at a steady rate for a long
//! time, on the memory log or on Kafka. Every second each consumer's lag on `market.ticks` (high
//! watermark − committed offset, all partitions together) is sampled; the soak holds when no
//! service ever fell more than `--max-lag` behind, the lag in records converted to time at the
//! feed's rate. It exits non-zero when it does not, so it can gate a release. While it runs it
//! writes the lag on stderr every `--progress` (10 s), and it stops the feed as soon as a service
//! falls further behind than the limit: the soak has failed, and the report says when.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::{percentiles, phase, HopLatency, LagWatch, Percentiles, Shape};
use crate::settings::Settings;

/// Arguments of `bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long the feed runs.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Ticks per second (take 80% of what `bench pipeline` measured).
    #[arg(long)]
    pub rate: u32,
    /// The pipeline.
    #[command(flatten)]
    pub shape: Shape,
    /// The most any service may fall behind the feed.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_lag: Duration,
    /// How often the lag is written on stderr while the soak runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub progress: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `bench soak` reports.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    /// `memory` or `kafka`.
    pub log: &'static str,
    /// Ticks per second the feed was paced at.
    pub rate: u32,
    /// Ticks published.
    pub ticks: u64,
    /// When a service fell further behind than the limit, the feed was stopped this many seconds
    /// after its first tick.
    pub stopped_early_after_seconds: Option<f64>,
    /// Seconds from the first tick until every consumer had read the last.
    pub seconds: f64,
    /// Fills.
    pub fills: u64,
    /// Tick-to-fill latency over the whole soak, microseconds.
    pub tick_to_fill_us: Percentiles,
    /// The same, hop by hop.
    pub hops: Vec<HopLatency>,
    /// Each service's worst lag.
    pub services: Vec<SoakService>,
    /// The worst lag of any service, seconds at the feed's rate.
    pub max_lag_seconds: f64,
    /// The limit it was held to, seconds.
    pub max_lag_limit_seconds: f64,
    /// Whether every service stayed within it.
    pub held: bool,
}

/// One service's lag over the soak.
#[derive(Debug, Serialize)]
pub struct SoakService {
    /// Its consumer group.
    pub group: String,
    /// Records read.
    pub events_in: u64,
    /// The most records it was behind on `market.ticks`.
    pub max_lag_records: i64,
    /// The same in seconds at the feed's rate.
    pub max_lag_seconds: f64,
}

/// Runs the soak.
///
/// # Errors
/// When the pipeline cannot be built.
pub async fn run(settings: &Settings, args: &SoakArgs) -> anyhow::Result<ExitCode> {
    let rate = args.rate.max(1);
    let ticks = u64::from(rate) * args.duration.as_secs().max(1);
    let limit = args.max_lag.as_secs_f64();
    let watch = LagWatch {
        limit_records: (limit * f64::from(rate)).ceil() as i64,
        report_every: args.progress,
        rate,
    };
    let result = phase(settings, &args.shape, rate, Some(ticks), Some(&watch)).await?;
    let services: Vec<SoakService> = result
        .services
        .iter()
        .map(|s| SoakService {
            group: s.group.clone(),
            events_in: s.events_in,
            max_lag_records: s.max_tick_lag_records,
            max_lag_seconds: s.max_tick_lag_records as f64 / f64::from(rate),
        })
        .collect();
    let max_lag_seconds = services
        .iter()
        .map(|s| s.max_lag_seconds)
        .fold(0.0, f64::max);
    let report = SoakReport {
        log: result.log,
        rate,
        ticks: result.published,
        stopped_early_after_seconds: result.stopped_after.map(|at| at.as_secs_f64()),
        seconds: result.elapsed.as_secs_f64(),
        fills: result.fills,
        tick_to_fill_us: percentiles(result.latencies),
        hops: result.hops,
        services,
        max_lag_seconds,
        max_lag_limit_seconds: limit,
        held: max_lag_seconds <= limit && result.stopped_after.is_none(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "soak on {}: {} ticks at {} ticks/s in {:.1} s, {} fills; worst lag {:.3} s (limit {:.3} s): {}",
            report.log,
            report.ticks,
            report.rate,
            report.seconds,
            report.fills,
            report.max_lag_seconds,
            limit,
            if report.held { "held" } else { "NOT held" }
        );
        if let Some(at) = report.stopped_early_after_seconds {
            println!(
                "  the feed was stopped after {at:.1} s, when a service fell behind the limit"
            );
        }
        let p = &report.tick_to_fill_us;
        println!(
            "  tick-to-fill p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            p.p50, p.p99, p.p999, p.max
        );
        for service in &report.services {
            println!(
                "  {}: {} read, at most {} records ({:.3} s) behind on market.ticks",
                service.group, service.events_in, service.max_lag_records, service.max_lag_seconds
            );
        }
    }
    Ok(if report.held {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
