//! `alpha-panda run`: every service (or a subset, for several processes on Kafka) in this process,
//! a status line every few seconds, and a summary per broker at the end.
//!
//! Stopping is ordered so nothing is lost: the market feed stops first, the pipeline drains (no
//! service has handled an input for a moment), then every processor finishes its record in flight,
//! publishes its last words, checkpoints and commits, and leaves its group.

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_cache::{LatencyBuckets, MetricsCache, PartitionLagEntry, ServiceMetrics};
use alpha_panda_core::{
    Broker, Clock, DedupStore, EventBroker, InstrumentToken, SystemClock, Timestamp,
};
use alpha_panda_kite::{InstrumentRegistry, KiteTicker, TickMode, TickerConfig};
use alpha_panda_services::market_feed::feed::{
    deterministic_ids, FeedStats, MarketFeed, TickSource,
};
use alpha_panda_services::{parse_ticks_csv, TickSimulator};
use alpha_panda_store::Store;
use alpha_panda_stream::{Emitter, Handler, Processor, ProcessorStats};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::container::{self, Backends};
use crate::instruments_refresh::{self, DailyInstrumentsRefresh};
use crate::settings::Settings;
use crate::summary;

/// The services `run` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ServiceName {
    /// Publishes ticks.
    MarketFeed,
    /// Runs the strategies.
    StrategyRunner,
    /// Checks signals against the risk rules.
    RiskManager,
    /// Places orders.
    TradingEngine,
    /// Keeps portfolios and PnL.
    PortfolioManager,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only these services (comma separated); default: all five.
    #[arg(long, value_delimiter = ',')]
    pub services: Vec<ServiceName>,
    /// Stop cleanly after this long (`30s`, `5m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop once no service has handled an input for this long (after the feed, if any, ended).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub stop_when_idle: Option<Duration>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seconds between status lines.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub status_every: Duration,
}

/// A processor's name and counters, for the status line and idle detection.
struct Running {
    name: String,
    service: String,
    broker: EventBroker,
    stats: Arc<ProcessorStats>,
}

/// Why a service's task ended: its error, its panic, or an end nobody asked for.
fn service_ended(
    joined: Result<anyhow::Result<()>, tokio::task::JoinError>,
    names: &HashMap<tokio::task::Id, String>,
) -> anyhow::Error {
    match joined {
        Ok(Err(e)) => e,
        Ok(Ok(())) => anyhow::anyhow!("a service stopped before it was told to"),
        Err(e) => {
            let name = names.get(&e.id()).map_or("a service", String::as_str);
            anyhow::anyhow!(
                "{name} panicked ({e}); the run stopped so that no half pipeline trades on; the \
                 log above says what it was handling"
            )
        }
    }
}

/// Runs the pipeline.
///
/// # Errors
/// When a backend cannot be reached or a service cannot start; the message says what to fix.
pub async fn run(settings: &Settings, args: &RunArgs) -> anyhow::Result<ExitCode> {
    // From here on SIGTERM stops the run in order; before, it would end the process at once.
    let mut termination = Termination::listen();
    let services: BTreeSet<ServiceName> = if args.services.is_empty() {
        ServiceName::value_variants().iter().copied().collect()
    } else {
        args.services.iter().copied().collect()
    };
    let backends = Backends::connect(settings).await?;
    if settings.api.enabled {
        settings.guard_api()?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dedup: Arc<dyn DedupStore> = Arc::new(backends.cache.dedup());
    let processor_config = settings.runtime.processor_config();

    // Zerodha: a validated Kite session before anything starts, and one ticker for both the
    // market feed (source = "kite") and the live trader's order updates.
    let kite_feed =
        services.contains(&ServiceName::MarketFeed) && settings.market_feed.source == "kite";
    let kite = if settings.brokers.contains(&Broker::Zerodha) || kite_feed {
        Some(container::zerodha_session(settings, &backends.store, clock.now()).await?)
    } else {
        None
    };
    // With Kite active, today's instruments master comes from Kite before the registry is built;
    // a failure falls back to the stored master and is retried by the daily refresh task.
    let mut instruments_refresh = kite.as_ref().map(|client| {
        DailyInstrumentsRefresh::new(client.clone(), backends.store.clone(), clock.clone())
    });
    if let Some(refresh) = instruments_refresh.as_mut() {
        if let Err(e) = refresh.refresh_if_new_day().await {
            warn!(
                error = format!("{e:#}"),
                "could not refresh the instruments master from Kite at start-up; using the \
                 stored one and retrying every {:?}",
                instruments_refresh::CHECK_EVERY
            );
        }
    }
    let instruments = container::instruments(&backends.store).await?;
    let registry = container::instrument_registry(&instruments);
    let ticker = match &kite {
        Some(client) => {
            let access_token = client
                .access_token()
                .context("the Kite client has no access token; run `alpha-panda kite login`")?;
            // The ticker follows the client's session: a new login the trader takes up is the
            // one the ticker reconnects with.
            let config = TickerConfig::from_settings(&settings.zerodha, access_token)
                .with_shared_token(client.shared_access_token());
            Some(Arc::new(
                KiteTicker::start(config).context("zerodha.ws_url")?,
            ))
        }
        None => None,
    };

    let shutdown = CancellationToken::new();
    let mut processors: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let mut running: Vec<Running> = Vec::new();
    let mut task_names: HashMap<tokio::task::Id, String> = HashMap::new();

    macro_rules! spawn {
        ($handler:expr) => {{
            let handler = $handler;
            let handler_name = handler.name().to_string();
            let handler_broker = handler.broker();
            let name = match handler.broker().namespace() {
                Some(broker) => format!("{}.{broker}", handler.name()),
                None => handler.name().to_string(),
            };
            let processor = Processor::new(
                handler,
                backends.log.clone(),
                dedup.clone(),
                clock.clone(),
                processor_config.clone(),
            );
            running.push(Running {
                name: name.clone(),
                service: handler_name,
                broker: handler_broker,
                stats: processor.stats(),
            });
            let token = shutdown.clone();
            let task_name = name.clone();
            let task = processors.spawn(async move {
                processor
                    .run(token)
                    .await
                    .map(|_| ())
                    .with_context(|| format!("{name} stopped with an error"))
            });
            task_names.insert(task.id(), task_name);
        }};
    }

    let built = container::Services::new(
        settings,
        backends.store.clone(),
        Some(backends.cache.clone()),
        instruments.clone(),
    );
    if services.contains(&ServiceName::StrategyRunner) {
        let strategies = container::strategies(&backends.store, clock.now()).await?;
        if strategies.is_empty() {
            warn!("no active strategy: the strategy runner will emit no signals");
        }
        spawn!(built
            .strategy_runner(strategies, &settings.brokers)
            .await?
            .with_reload(backends.store.clone()));
    }
    for &broker in &settings.brokers {
        if services.contains(&ServiceName::RiskManager) {
            spawn!(built.risk_manager(broker).await?);
        }
        if services.contains(&ServiceName::TradingEngine) {
            match broker {
                Broker::Paper => spawn!(built.paper_trading_engine().await?),
                Broker::Zerodha => {
                    let client = kite
                        .clone()
                        .context("the zerodha trading engine needs a Kite session")?;
                    spawn!(
                        built
                            .zerodha_trading_engine(client, registry.clone(), ticker.as_deref())
                            .await?
                    );
                }
            }
        }
        if services.contains(&ServiceName::PortfolioManager) {
            spawn!(built.portfolio_manager(broker).await?);
        }
    }

    let feed_shutdown = CancellationToken::new();
    let mut feed_task = None;
    let mut feed_stats: Option<Arc<FeedStats>> = None;
    if services.contains(&ServiceName::MarketFeed) {
        let source = match (&ticker, kite_feed) {
            (Some(ticker), true) => {
                kite_source(
                    settings,
                    ticker.clone(),
                    registry.clone(),
                    &backends.store,
                    clock.clone(),
                    feed_shutdown.clone(),
                )
                .await?
            }
            _ => tick_source(settings, &instruments, clock.now())?,
        };
        let emitter = Emitter::new(
            backends.log.clone(),
            alpha_panda_services::market_feed::feed::SERVICE,
            clock.clone(),
        );
        let feed = MarketFeed::new(emitter, source).with_guard(built.tick_guard());
        feed_stats = Some(feed.stats());
        let token = feed_shutdown.clone();
        feed_task = Some(tokio::spawn(feed.run(token)));
    }
    let refresh_task = instruments_refresh.map(|refresh| {
        tokio::spawn(refresh.run(instruments_refresh::CHECK_EVERY, shutdown.clone()))
    });
    let api = if settings.api.enabled {
        let must_listen = settings.environment == alpha_panda_core::Environment::Production;
        crate::api_server::start(settings, &backends, kite.clone(), must_listen).await?
    } else {
        None
    };
    info!(
        services = ?services,
        brokers = ?settings.brokers,
        log = backends.log.backend_name(),
        "alpha panda running"
    );

    // Wait for a reason to stop.
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let mut status = tokio::time::interval(args.status_every.max(Duration::from_millis(100)));
    status.tick().await;
    let mut idle = IdleWatch::default();
    // Ticks published at the last metrics report, and when that count last grew.
    let mut feed_progress: (u64, Option<Timestamp>) = (0, None);
    let mut check = tokio::time::interval(Duration::from_millis(100));
    // A service that stops before it is told to leaves a half pipeline: the whole run stops, and
    // says which service and why.
    let mut failure: Option<anyhow::Error> = None;
    let stop_reason = loop {
        tokio::select! {
            Some(joined) = processors.join_next(), if !processors.is_empty() => {
                failure = Some(service_ended(joined, &task_names));
                break "a service stopped";
            }
            _ = tokio::signal::ctrl_c() => break "interrupted",
            _ = termination.received() => break "terminated",
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => break "duration reached",
            _ = status.tick() => {
                eprintln!("{}", status_line(feed_stats.as_deref(), &running));
                record_metrics(
                    &backends.cache.metrics(),
                    feed_stats.as_deref().map(|f| (f, &mut feed_progress)),
                    &running,
                    clock.now(),
                )
                .await;
            }
            _ = check.tick() => {
                let feed_done = feed_task.as_ref().is_none_or(|t| t.is_finished());
                let quiet = idle.quiet_for(&running);
                // Drained once every service has read something and then gone quiet: on Kafka
                // the consumers join their groups seconds after a finite feed may have ended. A
                // feed none of whose ticks reached a service (every one refused) drains too.
                let all_reading = running
                    .iter()
                    .all(|r| ProcessorStats::get(&r.stats.events_in) > 0);
                let drained = (all_reading && quiet >= Duration::from_millis(500))
                    || quiet >= Duration::from_secs(15);
                if feed_task.is_some() && feed_done && drained {
                    break "the feed ended and the pipeline drained";
                }
                if let Some(limit) = args.stop_when_idle {
                    if feed_done && (idle.started() || running.is_empty()) && quiet >= limit {
                        break "idle";
                    }
                }
            }
        }
    };
    info!(reason = stop_reason, "stopping");

    feed_shutdown.cancel();
    if let Some(task) = feed_task {
        match task.await {
            Ok(Ok(published)) => info!(published, "market feed stopped"),
            Ok(Err(e)) => {
                error!(error = %e, "market feed stopped with an error");
                failure.get_or_insert(anyhow::Error::new(e).context(
                    "the market feed stopped: the log stopped acknowledging its ticks; check \
                     log.url and the broker, then run again",
                ));
            }
            Err(e) => {
                error!(error = %e, "market feed task failed");
                failure.get_or_insert(anyhow::anyhow!("the market feed task failed: {e}"));
            }
        }
    }
    drain(
        &running,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await;
    shutdown.cancel();
    if let Some(task) = refresh_task {
        if let Err(e) = task.await {
            warn!(error = %e, "the instruments refresh task failed");
        }
    }
    while let Some(joined) = processors.join_next().await {
        if !matches!(joined, Ok(Ok(()))) {
            let e = service_ended(joined, &task_names);
            error!(error = format!("{e:#}"), "service failed");
            failure.get_or_insert(e);
        }
    }
    backends.log.flush().await;
    if let Some(api) = api {
        api.stop().await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    eprintln!("{}", status_line(feed_stats.as_deref(), &running));

    let summary = summary::collect(&backends.log, &settings.brokers).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// The feed's source from settings.
fn tick_source(
    settings: &Settings,
    instruments: &std::collections::HashMap<
        alpha_panda_core::InstrumentToken,
        alpha_panda_core::Instrument,
    >,
    now: Timestamp,
) -> anyhow::Result<TickSource> {
    let feed = &settings.market_feed;
    if let Some(path) = feed.source.strip_prefix("csv:") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("market_feed.source: cannot read the tick CSV {path}"))?;
        let replay =
            parse_ticks_csv(&text).with_context(|| format!("market_feed.source: {path}"))?;
        // The same file always gets the same tick ids, so a replay reproduces its orders exactly.
        let first = replay.ticks.first().map_or(now, |t| t.exchange_timestamp);
        return Ok(TickSource::Replay {
            ticks: replay.ticks,
            bad_rows: replay.bad_rows,
            ticks_per_second: feed.ticks_per_second,
            ids: Some(deterministic_ids(text.as_bytes(), first)),
        });
    }
    if feed.source == "kite" {
        bail!("market_feed.source = \"kite\" needs a Kite session; run `alpha-panda kite login`");
    }
    let universe: Vec<_> = if feed.instruments.is_empty() {
        alpha_panda_services::nse_universe()
    } else {
        let mut chosen = Vec::new();
        for token in &feed.instruments {
            let instrument = instruments
                .get(&alpha_panda_core::InstrumentToken(*token))
                .with_context(|| {
                    format!(
                        "market_feed.instruments: token {token} is not in the instruments master"
                    )
                })?;
            chosen.push(instrument.clone());
        }
        chosen
    };
    // A session with a fixed start is reproducible down to its tick ids; one that starts "now" is
    // a new session every time.
    let (start, ids) = if feed.start_time.is_empty() {
        (now, None)
    } else {
        let at = chrono::DateTime::parse_from_rfc3339(&feed.start_time)
            .context("market_feed.start_time")?;
        let start = Timestamp::from_datetime(at.with_timezone(&chrono::Utc));
        let tokens: Vec<String> = universe
            .iter()
            .map(|i| i.instrument_token.to_string())
            .collect();
        let identity = format!(
            "simulated|{}|{}|{}|{}",
            feed.seed,
            start,
            feed.ticks_per_second,
            tokens.join(",")
        );
        (start, Some(deterministic_ids(identity.as_bytes(), start)))
    };
    let step = if feed.ticks_per_second == 0 {
        Duration::from_millis(1)
    } else {
        Duration::from_secs(1) / feed.ticks_per_second
    };
    Ok(TickSource::Simulated {
        simulator: Box::new(TickSimulator::new(feed.seed, universe)?),
        start,
        step,
        ticks_per_second: feed.ticks_per_second,
        max_ticks: (feed.max_ticks > 0).then_some(feed.max_ticks),
        ids,
    })
}

/// SIGTERM (a service manager stopping the process), handled like Ctrl-C from the moment it is
/// listened for: a process that prints that it is serving must not die of a SIGTERM that arrives
/// before its main loop.
pub(crate) struct Termination {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Termination {
    /// Starts listening.
    pub(crate) fn listen() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Resolves once SIGTERM has come.
    pub(crate) async fn received(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut() {
            signal.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// The live market feed: the ticker subscribed in full mode to `market_feed.instruments` (or,
/// when empty, every active strategy's instruments), its ticks turned into market ticks with the
/// registry's trading symbols and handed to the feed through a channel. Ends when the ticker gives
/// up or the feed is stopped.
async fn kite_source(
    settings: &Settings,
    ticker: Arc<KiteTicker>,
    registry: Arc<InstrumentRegistry>,
    store: &Store,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) -> anyhow::Result<TickSource> {
    let mut tokens: BTreeSet<u32> = settings.market_feed.instruments.iter().copied().collect();
    if tokens.is_empty() {
        for config in store.strategy_configurations().list_active().await? {
            tokens.extend(config.instruments);
        }
    }
    if tokens.is_empty() {
        bail!(
            "market_feed.source = \"kite\" has nothing to subscribe: set market_feed.instruments \
             or activate a strategy"
        );
    }
    // Kite streams at most 3 connections × 3,000 instruments per api_key; the ticker would refuse
    // the subscription anyway, this says which setting to change before anything is sent.
    if tokens.len() > alpha_panda_kite::ticker::MAX_INSTRUMENTS {
        bail!(
            "market_feed.source = \"kite\" would subscribe {} instruments, but Kite streams at most \
             {} per api_key ({} connections × {} instruments): set market_feed.instruments \
             to at most that many (empty, it takes every active strategy's instruments)",
            tokens.len(),
            alpha_panda_kite::ticker::MAX_INSTRUMENTS,
            alpha_panda_kite::ticker::MAX_CONNECTIONS,
            alpha_panda_kite::ticker::MAX_INSTRUMENTS_PER_CONNECTION,
        );
    }
    let tokens: Vec<InstrumentToken> = tokens.into_iter().map(InstrumentToken).collect();
    ticker
        .subscribe(&tokens, TickMode::Full)
        .await
        .context("the Kite ticker stopped before it could subscribe")?;
    info!(
        instruments = tokens.len(),
        "subscribed to KiteTicker in full mode"
    );
    let (sender, receiver) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let packet = tokio::select! {
                _ = stop.cancelled() => break,
                packet = ticker.next_tick() => packet,
            };
            let Some(packet) = packet else {
                warn!("the Kite ticker stopped; the market feed ends");
                break;
            };
            let symbol = registry
                .tradingsymbol(packet.instrument_token)
                .map(std::sync::Arc::from);
            if sender
                .send(packet.to_market_tick_at(symbol, clock.now()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Ok(TickSource::Channel(receiver))
}

/// Notices when no processor has handled an input for a while. A process that has not handled
/// anything yet is waiting for its first input, not idle.
#[derive(Default)]
struct IdleWatch {
    last_total: u64,
    since: Option<tokio::time::Instant>,
}

impl IdleWatch {
    fn quiet_for(&mut self, running: &[Running]) -> Duration {
        let total: u64 = running
            .iter()
            .map(|r| {
                ProcessorStats::get(&r.stats.events_in) + ProcessorStats::get(&r.stats.events_out)
            })
            .sum();
        let now = tokio::time::Instant::now();
        // Records not yet durably committed are work in progress, however still the counters are.
        let unsaved = running
            .iter()
            .any(|r| ProcessorStats::get(&r.stats.unsaved) > 0);
        if total != self.last_total || self.since.is_none() || unsaved {
            self.last_total = total;
            self.since = Some(now);
        }
        self.since.map_or(Duration::ZERO, |since| now - since)
    }

    fn started(&self) -> bool {
        self.last_total > 0
    }
}

/// Waits until the processors have been quiet for `quiet`, or `limit` passed.
async fn drain(running: &[Running], quiet: Duration, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut idle = IdleWatch::default();
    while tokio::time::Instant::now() < deadline {
        if idle.quiet_for(running) >= quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warn!("the pipeline did not drain within {limit:?}; stopping anyway");
}

/// Publishes every service's counters to the metrics cache (the dashboard's source). A cache outage
/// only costs a stale figure, never the run.
async fn record_metrics(
    metrics: &MetricsCache,
    feed: Option<(&FeedStats, &mut (u64, Option<Timestamp>))>,
    running: &[Running],
    now: Timestamp,
) {
    // The market feed is no processor: it publishes ticks (refused ones count as dead letters:
    // they never reach the log).
    if let Some((feed, progress)) = feed {
        let published = feed.published.load(Ordering::Relaxed);
        if published > progress.0 {
            *progress = (published, Some(now));
        }
        let figures = ServiceMetrics {
            events_in: published + feed.bad_rows.load(Ordering::Relaxed),
            events_out: published,
            duplicates: 0,
            retries: 0,
            dead_lettered: feed.refused.load(Ordering::Relaxed),
            lag: 0,
            last_event_at: progress.1,
            updated_at: now,
            handler_latency: None,
            partition_lag: Vec::new(),
        };
        if let Err(e) = metrics
            .record(EventBroker::Shared, "market_feed", &figures)
            .await
        {
            warn!(error = %e, "could not record the market feed's metrics");
        }
    }
    for r in running {
        let figures = ServiceMetrics {
            events_in: ProcessorStats::get(&r.stats.events_in),
            events_out: ProcessorStats::get(&r.stats.events_out),
            duplicates: ProcessorStats::get(&r.stats.duplicates),
            retries: ProcessorStats::get(&r.stats.retries),
            dead_lettered: ProcessorStats::get(&r.stats.dead_lettered),
            lag: u64::try_from(r.stats.total_lag()).unwrap_or(0),
            last_event_at: r.stats.last_event_at(),
            updated_at: now,
            handler_latency: Some({
                let latency = r.stats.handler_latency.snapshot();
                LatencyBuckets {
                    bounds_micros: alpha_panda_stream::LATENCY_BOUNDS_MICROS.to_vec(),
                    counts: latency.buckets,
                    count: latency.count,
                    sum_micros: latency.sum_micros,
                }
            }),
            partition_lag: r
                .stats
                .lag()
                .into_iter()
                .map(|l| PartitionLagEntry {
                    topic: l.topic,
                    partition: l.partition,
                    lag: l.lag,
                })
                .collect(),
        };
        if let Err(e) = metrics.record(r.broker, &r.service, &figures).await {
            warn!(service = %r.name, error = %e, "could not record service metrics");
        }
    }
}

fn status_line(feed: Option<&FeedStats>, running: &[Running]) -> String {
    let mut parts = Vec::new();
    if let Some(feed) = feed {
        parts.push(format!(
            "feed published={} refused={}",
            feed.published.load(Ordering::Relaxed),
            feed.refused.load(Ordering::Relaxed)
        ));
    }
    for r in running {
        let mut part = format!(
            "{} in={} out={} dlq={} lag={}",
            r.name,
            ProcessorStats::get(&r.stats.events_in),
            ProcessorStats::get(&r.stats.events_out),
            ProcessorStats::get(&r.stats.dead_lettered),
            r.stats.total_lag()
        );
        // An outage is shown while it lasts, not only in the log.
        let unsaved = ProcessorStats::get(&r.stats.unsaved);
        if ProcessorStats::get(&r.stats.held_back) > 0 {
            part.push_str(&format!(" INPUT HELD: {unsaved} records not saved"));
        } else if ProcessorStats::get(&r.stats.checkpoint_failures) > 0 && unsaved > 0 {
            part.push_str(&format!(" unsaved={unsaved}"));
        }
        parts.push(part);
    }
    format!("status: {}", parts.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_service_is_named() {
        let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
        let mut names = HashMap::new();
        let task = tasks.spawn(async { panic!("division by zero") });
        names.insert(task.id(), "portfolio_manager.paper".to_string());
        let joined = tasks.join_next().await.unwrap();
        let message = format!("{:#}", service_ended(joined, &names));
        assert!(
            message.starts_with("portfolio_manager.paper panicked"),
            "{message}"
        );

        let ended = service_ended(Ok(Ok(())), &names).to_string();
        assert!(ended.contains("before it was told to"), "{ended}");
    }
}
