//! The portfolio manager service for one broker namespace: one portfolio per strategy, fills applied
//! exactly once, positions marked to market on ticks, PnL snapshots every `snapshot_interval`, at the
//! end of the trading day and at shutdown. It also reads its own snapshots back from the log, stores
//! each with a validation verdict and records the order ledger, all durable with its offsets.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_cache::PortfolioCache;
use alpha_panda_core::{
    calendar, keys, Broker, EventBroker, EventId, EventType, InstrumentToken, Money, OrderFilled,
    Payload, PnlSnapshot, PortfolioId, Price, SnapshotType, StrategyId, Timestamp, TopicMap,
};
use alpha_panda_store::{OrderRecord, Store, StoreError, ValidationStatus};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, LogIdentity, Output,
    PartitionAnchor,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info};

use crate::durable::{store_error, Durable, Effect};
use crate::portfolio_manager::Portfolio;

/// The service name.
pub const SERVICE: &str = "portfolio_manager";

/// The cached read model is refreshed at most this often (microseconds): it is for people, and
/// every refresh computes and checksums a snapshot per portfolio.
const READ_MODEL_EVERY_MICROS: i64 = 1_000_000;

/// How many produced snapshots are remembered to check the copies read back from the log.
const PRODUCED_MEMORY: usize = 4096;

/// `[portfolio]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortfolioSettings {
    /// Cash each new portfolio starts with.
    pub initial_cash: Money,
    /// How often periodic snapshots are taken.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
}

impl Default for PortfolioSettings {
    fn default() -> Self {
        Self {
            initial_cash: Money(Decimal::from(1_000_000)),
            snapshot_interval: Duration::from_secs(60),
        }
    }
}

/// The portfolios of one namespace, one per strategy, and the last price of every instrument:
/// what is checkpointed, and what the backtest keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PortfolioBook {
    portfolios: BTreeMap<StrategyId, Portfolio>,
    last_prices: BTreeMap<InstrumentToken, Price>,
    /// The IST trading day whose end-of-day snapshot was taken.
    end_of_day_taken: Option<NaiveDate>,
}

impl PortfolioBook {
    /// Applies `fill` to its strategy's portfolio (opened with `initial_cash` on its first fill)
    /// and marks the position at the instrument's last price.
    pub fn apply_fill(&mut self, broker: Broker, initial_cash: Money, fill: &OrderFilled) {
        let portfolio = self
            .portfolios
            .entry(fill.strategy_id.clone())
            .or_insert_with(|| Portfolio::new(broker, fill.strategy_id.clone(), initial_cash));
        portfolio.apply_fill(fill);
        if let Some(last) = self.last_prices.get(&fill.instrument_token) {
            portfolio.mark(fill.instrument_token, *last);
        }
    }

    /// Marks every position in `token` at `price`; whether one was marked.
    pub fn mark(&mut self, token: InstrumentToken, price: Price) -> bool {
        self.last_prices.insert(token, price);
        let mut marked = false;
        for portfolio in self.portfolios.values_mut() {
            if portfolio.positions.contains_key(&token) {
                portfolio.mark(token, price);
                marked = true;
            }
        }
        marked
    }

    /// The portfolios, by strategy.
    pub fn portfolios(&self) -> impl Iterator<Item = &Portfolio> {
        self.portfolios.values()
    }

    /// The portfolio of `strategy`, once it has a fill.
    pub fn portfolio(&self, strategy: &StrategyId) -> Option<&Portfolio> {
        self.portfolios.get(strategy)
    }
}

/// Counters the status line and metrics read.
#[derive(Debug, Default)]
pub struct PortfolioStats {
    /// Fills applied.
    pub fills_applied: AtomicU64,
    /// Snapshots read back whose figures did not hold.
    pub snapshot_mismatches: AtomicU64,
    /// Fills skipped because they were applied before (a re-sent fill under a new offset).
    pub duplicate_fills: AtomicU64,
}

/// The portfolio manager of one namespace.
pub struct PortfolioManager {
    broker: Broker,
    topics: TopicMap,
    settings: PortfolioSettings,
    book: PortfolioBook,
    durable: Durable,
    cache: Option<PortfolioCache>,
    /// Checksums of snapshots this instance produced, by (portfolio, as_of).
    produced: BTreeMap<(PortfolioId, Timestamp), String>,
    produced_order: VecDeque<(PortfolioId, Timestamp)>,
    stats: Arc<PortfolioStats>,
    read_model_published_at: Option<Timestamp>,
    /// Fills this instance applied; with the ledger (fills applied and saved before), what tells a
    /// re-sent fill from a new one when the dedup store forgot it (a restart on a memory cache, an
    /// evicted key).
    applied_fills: HashSet<EventId>,
}

impl PortfolioManager {
    /// Opens the portfolio manager of `broker`, resuming from its checkpoint when there is one.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read.
    pub async fn open(
        broker: Broker,
        settings: PortfolioSettings,
        store: Store,
        cache: Option<PortfolioCache>,
    ) -> Result<Self, StoreError> {
        let (durable, book) = Durable::open(store, format!("{SERVICE}:{broker}")).await?;
        if book.is_some() {
            info!(%broker, "portfolio manager resumed from its checkpoint");
        }
        Ok(Self {
            broker,
            topics: TopicMap::new(broker),
            settings,
            book: book.unwrap_or_default(),
            durable,
            cache,
            produced: BTreeMap::new(),
            produced_order: VecDeque::new(),
            stats: Arc::default(),
            read_model_published_at: None,
            applied_fills: HashSet::new(),
        })
    }

    /// Whether the fill `event_id` was applied already: by this instance, or by an earlier one
    /// that saved it to the ledger.
    async fn fill_applied_before(&self, event_id: EventId) -> Result<bool, HandlerError> {
        if self.applied_fills.contains(&event_id) {
            return Ok(true);
        }
        let recorded = self
            .durable
            .store()
            .ledger()
            .fill(event_id)
            .await
            .map_err(|e| store_error("look up a fill in the ledger", e))?;
        Ok(recorded.is_some())
    }

    /// How many fills a checkpoint found already in the ledger (each one applied twice).
    pub fn ledger_duplicates(&self) -> Arc<AtomicU64> {
        self.durable.ledger_duplicates()
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<PortfolioStats> {
        self.stats.clone()
    }

    /// The portfolios, by strategy.
    pub fn portfolios(&self) -> impl Iterator<Item = &Portfolio> {
        self.book.portfolios.values()
    }

    fn snapshots(&mut self, at: Timestamp, snapshot_type: SnapshotType) -> Vec<Output> {
        let mut outputs = Vec::new();
        for portfolio in self.book.portfolios.values() {
            let snapshot = portfolio.snapshot(at, snapshot_type);
            let key = (snapshot.portfolio_id.clone(), snapshot.as_of);
            if self
                .produced
                .insert(key.clone(), snapshot.checksum.clone())
                .is_none()
            {
                self.produced_order.push_back(key);
            }
            outputs.push(Output {
                topic: self.topics.pnl_snapshots(),
                key: keys::portfolio_key(&snapshot.portfolio_id),
                payload: Payload::PnlSnapshot(snapshot),
                broker: EventBroker::from(self.broker),
                id: None,
            });
        }
        while self.produced_order.len() > PRODUCED_MEMORY {
            if let Some(old) = self.produced_order.pop_front() {
                self.produced.remove(&old);
            }
        }
        outputs
    }

    /// Checks a snapshot read back from the log: its checksum, its own arithmetic, and — when this
    /// instance produced it — that it is exactly what was produced.
    fn validate(&self, snapshot: &PnlSnapshot) -> ValidationStatus {
        if !snapshot.checksum_is_valid() {
            return ValidationStatus::ChecksumMismatch;
        }
        let consistent = snapshot.total_pnl
            == snapshot.realized_pnl + snapshot.unrealized_pnl - snapshot.fees
            && snapshot.broker == self.broker;
        if !consistent {
            return ValidationStatus::Diverged;
        }
        match self
            .produced
            .get(&(snapshot.portfolio_id.clone(), snapshot.as_of))
        {
            Some(checksum) if *checksum != snapshot.checksum => ValidationStatus::Diverged,
            _ => ValidationStatus::Valid,
        }
    }

    /// The write that puts the figures of every portfolio as of `at` in the cache the API serves.
    fn publish_read_model(
        &mut self,
        at: Timestamp,
    ) -> Option<impl Future<Output = Result<(), HandlerError>> + 'static> {
        self.read_model_published_at = Some(at);
        let cache = self.cache.clone()?;
        let snapshots: Vec<PnlSnapshot> = self
            .book
            .portfolios
            .values()
            .map(|portfolio| portfolio.snapshot(at, SnapshotType::Periodic))
            .collect();
        Some(async move {
            for snapshot in &snapshots {
                cache.put(snapshot).await.map_err(|e| HandlerError {
                    class: e.class(),
                    message: format!("portfolio cache: {e}"),
                })?;
            }
            Ok(())
        })
    }
}

impl Handler for PortfolioManager {
    fn name(&self) -> &str {
        SERVICE
    }

    fn topics(&self) -> Vec<String> {
        vec![
            self.topics.orders_filled(),
            self.topics.orders_submitted(),
            self.topics.orders_ack(),
            self.topics.orders_failed(),
            TopicMap::market_ticks(),
            self.topics.pnl_snapshots(),
        ]
    }

    fn broker(&self) -> EventBroker {
        EventBroker::from(self.broker)
    }

    /// A tick marks positions to its price: the latest one fetched per instrument gives the same
    /// marks as all of them.
    fn conflates(&self, event_type: EventType) -> bool {
        event_type == EventType::MarketTick
    }

    fn health(&self) -> Result<(), String> {
        self.durable.health()
    }

    async fn leave(&mut self) {
        self.durable.release().await;
    }

    fn checkpoint_anchors(&self) -> Vec<PartitionAnchor> {
        self.durable.anchors()
    }

    fn attach_log(&mut self, log: &LogIdentity, foreign: &[(String, i32)]) {
        self.durable.attach_log(log, foreign);
    }

    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        if self.durable.already_applied(input.position) {
            return Ok(Vec::new());
        }
        self.durable.saw(input.now);
        let envelope = input.envelope;
        let broker = self.broker;
        match &envelope.payload {
            Payload::OrderFilled(fill) => {
                if self.fill_applied_before(envelope.id).await? {
                    debug!(event_id = %envelope.id, "fill applied before; skipped");
                    self.stats.duplicate_fills.fetch_add(1, Ordering::Relaxed);
                    return Ok(Vec::new());
                }
                self.applied_fills.insert(envelope.id);
                self.book
                    .apply_fill(broker, self.settings.initial_cash, fill);
                self.durable.effect(Effect::Fill {
                    broker,
                    event_id: envelope.id,
                    fill: Box::new(fill.clone()),
                });
                self.stats.fills_applied.fetch_add(1, Ordering::Relaxed);
            }
            Payload::OrderSubmitted(order) => self.durable.effect(Effect::Order {
                broker,
                event_id: envelope.id,
                record: OrderRecord::submitted(order, envelope.ts),
            }),
            Payload::OrderAck(ack) => self.durable.effect(Effect::Order {
                broker,
                event_id: envelope.id,
                record: OrderRecord::acknowledged(ack, envelope.ts),
            }),
            Payload::OrderFailed(failure) => self.durable.effect(Effect::Order {
                broker,
                event_id: envelope.id,
                record: OrderRecord::failed(failure, envelope.ts),
            }),
            Payload::MarketTick(tick) => {
                if self.book.mark(tick.instrument_token, tick.last_price) {
                    self.durable.changed();
                }
            }
            Payload::PnlSnapshot(snapshot) => {
                let status = self.validate(snapshot);
                if status != ValidationStatus::Valid {
                    self.stats
                        .snapshot_mismatches
                        .fetch_add(1, Ordering::Relaxed);
                    let own = self
                        .book
                        .portfolios
                        .get(&snapshot.strategy_id)
                        .map(|p| p.snapshot(snapshot.as_of, snapshot.snapshot_type));
                    error!(
                        portfolio = %snapshot.portfolio_id,
                        status = status.as_str(),
                        snapshot_total = %snapshot.total_pnl,
                        snapshot_realized = %snapshot.realized_pnl,
                        snapshot_unrealized = %snapshot.unrealized_pnl,
                        own_total = own.as_ref().map(|s| s.total_pnl.to_string()).unwrap_or_default(),
                        own_realized = own.as_ref().map(|s| s.realized_pnl.to_string()).unwrap_or_default(),
                        own_unrealized = own.as_ref().map(|s| s.unrealized_pnl.to_string()).unwrap_or_default(),
                        "pnl snapshot failed validation"
                    );
                }
                self.durable.effect(Effect::Snapshot {
                    event_id: envelope.id,
                    snapshot: Box::new(snapshot.clone()),
                    status,
                });
            }
            other => {
                return Err(HandlerError::poison(format!(
                    "{} event on {}: the portfolio manager reads orders, ticks and pnl snapshots",
                    other.event_type(),
                    input.position.topic
                )))
            }
        }
        Ok(Vec::new())
    }

    fn begin_checkpoint(
        &mut self,
        offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        let Some(save) = self.durable.begin_save(&self.book, offsets)? else {
            return Ok(None);
        };
        let now = self.durable.last_input_at();
        let due = self
            .read_model_published_at
            .is_none_or(|at| now.unix_micros() - at.unix_micros() >= READ_MODEL_EVERY_MICROS);
        let read_model = if due {
            self.publish_read_model(now)
        } else {
            None
        };
        Ok(Some(save.into_checkpoint_then(read_model)))
    }

    fn end_checkpoint(&mut self, offsets: &[CommitOffset], outcome: Result<(), &HandlerError>) {
        self.durable.end_save(offsets, outcome.is_ok());
    }

    fn timer_interval(&self) -> Option<Duration> {
        Some(self.settings.snapshot_interval)
    }

    async fn on_timer(&mut self, now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        let day = calendar::trading_day(now);
        let session_over = calendar::is_trading_day(day) && !calendar::is_market_open(now) && {
            let close = calendar::to_ist(now).time();
            close >= calendar::SESSION_CLOSE
        };
        if session_over && self.book.end_of_day_taken != Some(day) {
            self.book.end_of_day_taken = Some(day);
            self.durable.changed();
            return Ok(self.snapshots(now, SnapshotType::EndOfDay));
        }
        Ok(self.snapshots(now, SnapshotType::Periodic))
    }

    async fn on_shutdown(&mut self, now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        if let Some(read_model) = self.publish_read_model(now) {
            read_model.await?;
        }
        Ok(self.snapshots(now, SnapshotType::Reconciliation))
    }
}
