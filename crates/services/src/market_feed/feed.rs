//! The market feed service: takes ticks from a source (the simulator, a CSV replay, or KiteTicker)
//! and publishes them as `market_tick` events on `market.ticks`, keyed by token, broker `shared`.
//!
//! It consumes nothing, so it runs no consumer loop; the [`Emitter`] builds the root envelopes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    derive_event_id, keys, EventBroker, EventId, MarketTick, Payload, Timestamp, TopicMap,
};
use alpha_panda_stream::{Emitter, LogError, Unacknowledged};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::market_feed::{BadRow, TickGuard, TickSimulator};

/// The service name (envelope `source`).
pub const SERVICE: &str = "market_feed";

/// Largest batch handed to the log at once when running as fast as possible.
const MAX_BATCH: usize = 512;

/// Ticks handed to the log whose acknowledgements may be outstanding at once. Waiting for each
/// batch before the next made the feed a stop-and-wait on the broker's round trip; a window of
/// batches keeps the producer busy while earlier ones are acknowledged, and still bounds what a
/// broker that stops answering costs in memory.
const MAX_UNACKNOWLEDGED: usize = 8 * MAX_BATCH;

/// Where ticks come from.
///
/// A simulated session with a fixed start, or a replayed file, can publish *deterministic* tick
/// ids ([`TickIds`]). Every id downstream derives from the tick ids, so the same seed or file
/// yields byte-identical orders and fills run after run.
pub enum TickSource {
    /// A seeded random walk.
    Simulated {
        /// The generator (boxed: it is by far the largest source).
        simulator: Box<TickSimulator>,
        /// Exchange time of the first tick.
        start: Timestamp,
        /// Exchange time between two ticks.
        step: Duration,
        /// Pace (0: as fast as possible).
        ticks_per_second: u32,
        /// Stop after this many ticks (None: until shutdown).
        max_ticks: Option<u64>,
        /// Base of deterministic tick ids (None: fresh ids).
        ids: Option<EventId>,
    },
    /// Recorded ticks, replayed in file order as fast as possible or paced.
    Replay {
        /// The ticks.
        ticks: Vec<MarketTick>,
        /// Rows of the file that were skipped.
        bad_rows: Vec<BadRow>,
        /// Pace (0: as fast as possible).
        ticks_per_second: u32,
        /// Base of deterministic tick ids (None: fresh ids).
        ids: Option<EventId>,
    },
    /// Ticks pushed by a live source (KiteTicker) through a channel; ends when the channel closes.
    Channel(mpsc::Receiver<MarketTick>),
}

/// Live counters of the feed.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Ticks published.
    pub published: AtomicU64,
    /// Source rows skipped as malformed.
    pub bad_rows: AtomicU64,
    /// Ticks refused by the [`TickGuard`] and sent to `market.ticks.dlq`.
    pub refused: AtomicU64,
}

/// The market feed.
pub struct MarketFeed {
    emitter: Emitter,
    source: TickSource,
    guard: TickGuard,
    stats: Arc<FeedStats>,
}

impl MarketFeed {
    /// A feed publishing through `emitter`.
    pub fn new(emitter: Emitter, source: TickSource) -> Self {
        Self {
            emitter,
            source,
            guard: TickGuard::default(),
            stats: Arc::default(),
        }
    }

    /// Checks every tick with `guard` (tick grids, price jumps) before publishing it; without one
    /// only impossible prices are refused.
    pub fn with_guard(mut self, guard: TickGuard) -> Self {
        self.guard = guard;
        self
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<FeedStats> {
        self.stats.clone()
    }

    /// Publishes until the source ends or `shutdown` is cancelled.
    ///
    /// # Errors
    /// [`LogError`] when the log stops acknowledging (after the emitter's own retries).
    pub async fn run(self, shutdown: CancellationToken) -> Result<u64, LogError> {
        let Self {
            emitter,
            source,
            guard,
            stats,
        } = self;
        let mut publisher = Publisher {
            emitter,
            guard,
            stats,
            topic: TopicMap::market_ticks_str(),
            ids: None,
            sequence: 0,
            unacknowledged: VecDeque::new(),
        };
        match source {
            TickSource::Simulated {
                mut simulator,
                start,
                step,
                ticks_per_second,
                max_ticks,
                ids,
            } => {
                publisher.ids = ids.map(TickIds::new);
                let step_micros = i64::try_from(step.as_micros()).unwrap_or(i64::MAX);
                let mut n: u64 = 0;
                let mut next = move || {
                    if max_ticks.is_some_and(|max| n >= max) {
                        return None;
                    }
                    let offset = step_micros.saturating_mul(i64::try_from(n).unwrap_or(i64::MAX));
                    let at =
                        Timestamp::from_unix_micros(start.unix_micros().saturating_add(offset))?;
                    n += 1;
                    Some(simulator.next_tick(at))
                };
                publisher.pump(&mut next, ticks_per_second, &shutdown).await
            }
            TickSource::Replay {
                ticks,
                bad_rows,
                ticks_per_second,
                ids,
            } => {
                publisher.ids = ids.map(TickIds::new);
                for row in &bad_rows {
                    warn!(line = row.line, reason = %row.reason, "tick CSV row skipped");
                }
                publisher
                    .stats
                    .bad_rows
                    .fetch_add(bad_rows.len() as u64, Ordering::Relaxed);
                let mut ticks = ticks.into_iter();
                let mut next = move || ticks.next();
                publisher.pump(&mut next, ticks_per_second, &shutdown).await
            }
            TickSource::Channel(mut receiver) => {
                let mut published = 0;
                loop {
                    let tick = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        tick = receiver.recv() => tick,
                    };
                    let Some(tick) = tick else { break };
                    publisher.publish(vec![tick]).await?;
                    published += 1;
                }
                publisher.settle().await?;
                Ok(published)
            }
        }
    }
}

struct Publisher {
    emitter: Emitter,
    guard: TickGuard,
    stats: Arc<FeedStats>,
    topic: &'static str,
    ids: Option<TickIds>,
    sequence: u64,
    /// Ticks handed to the log, oldest first, whose acknowledgements are still to come.
    unacknowledged: VecDeque<Unacknowledged>,
}

/// The base of deterministic tick ids for a source identified by `identity` (a seed and start
/// time, or a file's digest): a UUIDv7 whose timestamp is `at`, so derived ids still sort by time.
pub fn deterministic_ids(identity: &[u8], at: Timestamp) -> EventId {
    deterministic_ids_of_digest(blake3::hash(identity).as_bytes(), at)
}

/// [`deterministic_ids`] from the BLAKE3 digest of the identity, for a source hashed as it is
/// read (a tick file too large to hold). BLAKE3 rather than SHA-256: a backtest hashes the whole
/// file before its first tick, and BLAKE3 does it several times faster.
pub fn deterministic_ids_of_digest(digest: &[u8; 32], at: Timestamp) -> EventId {
    let millis = u64::try_from(at.unix_micros() / 1000).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&digest[..10]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    EventId(uuid::Uuid::from_bytes(bytes))
}

/// Deterministic tick ids: the `n`-th tick of a source (counting every tick it yields, refused or
/// not) gets `derive_event_id(base, "market_feed:{n >> 32}", n as u32)`. The feed and the backtest
/// both number ticks through this, so a backtest's orders and fills carry a run's ids.
#[derive(Debug, Clone)]
pub struct TickIds {
    base: EventId,
    /// The id scope of the current 2^32 ticks, built once.
    scope: (u64, String),
}

impl TickIds {
    /// Ids derived from `base` ([`deterministic_ids`]).
    pub fn new(base: EventId) -> Self {
        Self {
            base,
            scope: (0, format!("{SERVICE}:0")),
        }
    }

    /// The id of tick number `sequence`.
    pub fn id(&mut self, sequence: u64) -> EventId {
        // The high bits of the sequence go into the scope so ids never repeat.
        let high = sequence >> 32;
        if self.scope.0 != high {
            self.scope = (high, format!("{SERVICE}:{high}"));
        }
        derive_event_id(self.base, &self.scope.1, sequence as u32)
    }
}

impl Publisher {
    /// Pulls ticks from `next` and publishes them, paced or in batches.
    async fn pump(
        &mut self,
        next: &mut impl FnMut() -> Option<MarketTick>,
        ticks_per_second: u32,
        shutdown: &CancellationToken,
    ) -> Result<u64, LogError> {
        let mut published = 0u64;
        if ticks_per_second == 0 {
            loop {
                if shutdown.is_cancelled() {
                    break;
                }
                let batch: Vec<MarketTick> =
                    std::iter::from_fn(&mut *next).take(MAX_BATCH).collect();
                if batch.is_empty() {
                    break;
                }
                published += batch.len() as u64;
                self.publish(batch).await?;
                // Let consumers on the same runtime in: an in-process log has no network to wait on.
                tokio::task::yield_now().await;
            }
        } else {
            let period = Duration::from_secs(1) / ticks_per_second;
            let mut pace = tokio::time::interval(period);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = pace.tick() => {}
                }
                let Some(tick) = next() else { break };
                self.publish(vec![tick]).await?;
                published += 1;
            }
        }
        self.settle().await?;
        info!(published, "market feed finished");
        Ok(published)
    }

    /// Drops the acknowledgements that have come, oldest first, so that a refusal stops the feed
    /// as soon as it is known; waits for the oldest while the window is full.
    async fn take_answers(&mut self) -> Result<(), LogError> {
        while let Some(oldest) = self.unacknowledged.front_mut() {
            match oldest.delivery.answer() {
                Some(answer) => {
                    answer?;
                    self.unacknowledged.pop_front();
                }
                None if self.unacknowledged.len() > MAX_UNACKNOWLEDGED => {
                    if let Some(oldest) = self.unacknowledged.pop_front() {
                        oldest.delivery.acknowledged().await?;
                    }
                }
                None => break,
            }
        }
        Ok(())
    }

    /// Waits for every tick handed to the log to be acknowledged.
    async fn settle(&mut self) -> Result<(), LogError> {
        for sent in std::mem::take(&mut self.unacknowledged) {
            sent.delivery.acknowledged().await?;
        }
        Ok(())
    }

    async fn publish(&mut self, ticks: Vec<MarketTick>) -> Result<(), LogError> {
        let mut envelopes = Vec::with_capacity(ticks.len());
        let mut refusals = Vec::new();
        for tick in ticks {
            let verdict = self.guard.check(&tick);
            let key = keys::market_tick_key(tick.instrument_token);
            let payload = Payload::MarketTick(tick);
            // Every source tick takes its place in the sequence, refused or not, so a refusal never
            // moves the ids of the ticks after it.
            let envelope = match &mut self.ids {
                Some(ids) => {
                    let id = ids.id(self.sequence);
                    self.emitter
                        .envelope_with_id(id, payload, key, EventBroker::Shared)
                }
                None => self.emitter.envelope(payload, key, EventBroker::Shared),
            };
            self.sequence += 1;
            match verdict {
                Ok(()) => envelopes.push(envelope),
                Err(refused) => {
                    warn!(event_id = %envelope.id, reason = %refused, "tick refused; dead-lettered");
                    refusals.push(self.emitter.refusal(self.topic, envelope, refused.0));
                }
            }
        }
        let count = envelopes.len() as u64;
        if !envelopes.is_empty() {
            self.emitter
                .emit_all_unacknowledged(self.topic, envelopes, &mut self.unacknowledged)
                .await?;
            self.stats.published.fetch_add(count, Ordering::Relaxed);
            self.take_answers().await?;
        }
        if !refusals.is_empty() {
            let refused = refusals.len() as u64;
            self.emitter
                .emit_all(TopicMap::dlq(self.topic), refusals)
                .await?;
            self.stats.refused.fetch_add(refused, Ordering::Relaxed);
        }
        Ok(())
    }
}
