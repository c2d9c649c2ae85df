//! Live events for the dashboard: a hub that fans the pipeline's events (fills, orders, signals,
//! rejections, snapshots, alerts) out to every event stream, keeping the last few thousand so a
//! client that reconnects with `Last-Event-ID` misses nothing in between.
//!
//! The hub is fed by tailing the log ([`tail_log`]), the same in `run` and in a separate `api`
//! process: what the dashboard shows is what the log holds, never a second path.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use std::collections::{BTreeMap, HashMap};

use alpha_panda_core::{Broker, Envelope, EventBroker, MarketTick, Payload, TopicMap};
use alpha_panda_stream::{CommitOffset, Log, RecordValue};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::histogram::Histogram;

/// Events kept for resuming streams.
pub const REPLAY_CAPACITY: usize = 5_000;

/// Risk answers kept per namespace and kind, for `GET /api/v1/{broker}/signals`.
pub const SIGNAL_CAPACITY: usize = 1_000;

/// The event types kept as risk answers.
const SIGNAL_TYPES: [&str; 3] = ["validated_signal", "rejected_signal", "signal_at_target"];

/// One event as streams carry it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    /// The stream's own sequence number (the SSE `id`).
    pub seq: u64,
    /// The event type (`order_filled`, `rejected_signal`, `alert`, …).
    pub event_type: String,
    /// `paper`, `zerodha` or `shared`.
    pub broker: String,
    /// The envelope, as on the log.
    pub envelope: serde_json::Value,
}

#[derive(Debug)]
struct Ring {
    next_seq: u64,
    events: VecDeque<Arc<LiveEvent>>,
}

/// A namespace and an event type.
type SignalKey = (String, String);

/// The fan-out of live events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    ring: Arc<Mutex<Ring>>,
    sender: broadcast::Sender<Arc<LiveEvent>>,
    tick_to_fill: Arc<BTreeMap<String, Histogram>>,
    /// The latest risk answers per (namespace, event type), newest last.
    signals: Arc<Mutex<HashMap<SignalKey, VecDeque<Arc<Envelope>>>>>,
    /// The latest tick of each instrument.
    last_ticks: Arc<Mutex<HashMap<u32, MarketTick>>>,
}

/// A fill's latency from its tick: the fill's envelope time minus the tick's publication, which
/// the tick's event id (a UUIDv7, the fill's correlation id) carries to the millisecond.
/// `None` when the id carries no such time (a derived id) or the figure is not plausible.
fn tick_to_fill_micros(envelope: &Envelope) -> Option<u64> {
    let id = uuid::Uuid::parse_str(&envelope.correlation_id.0).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    let tick_micros = i64::try_from(seconds).ok()? * 1_000_000 + i64::from(nanos / 1_000);
    let micros = envelope.ts.unix_micros() - tick_micros;
    // A tick id older than an hour is a replayed or derived one, not a measure of the pipeline.
    (0..3_600_000_000)
        .contains(&micros)
        .then_some(micros as u64)
}

impl Default for EventHub {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(1024);
        let tick_to_fill = [Broker::Paper, Broker::Zerodha]
            .into_iter()
            .map(|b| (b.as_str().to_string(), Histogram::default()))
            .collect();
        Self {
            ring: Arc::new(Mutex::new(Ring {
                next_seq: 1,
                events: VecDeque::new(),
            })),
            sender,
            tick_to_fill: Arc::new(tick_to_fill),
            signals: Arc::default(),
            last_ticks: Arc::default(),
        }
    }
}

impl EventHub {
    /// Takes in one event of the log: a tick updates the last prices (ticks are not streamed:
    /// there are too many), anything else is published.
    pub fn take_in(&self, envelope: &Envelope) {
        match &envelope.payload {
            Payload::MarketTick(tick) => {
                self.last_ticks
                    .lock()
                    .insert(tick.instrument_token.0, tick.clone());
            }
            _ => self.publish(envelope),
        }
    }

    /// The latest tick of each of `tokens` that has one.
    pub fn last_ticks(&self, tokens: &[u32]) -> Vec<MarketTick> {
        let ticks = self.last_ticks.lock();
        tokens
            .iter()
            .filter_map(|t| ticks.get(t).cloned())
            .collect()
    }

    /// The latest risk answers of `event_type` in `broker`, newest first.
    pub fn signals(&self, broker: &str, event_type: &str, limit: usize) -> Vec<Arc<Envelope>> {
        self.signals
            .lock()
            .get(&(broker.to_string(), event_type.to_string()))
            .map(|kept| kept.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    /// Publishes a status the API itself makes (the services' figures), not an event of the
    /// log.
    pub fn publish_status(&self, event_type: &str, broker: &str, data: serde_json::Value) {
        let event = {
            let mut ring = self.ring.lock();
            let event = Arc::new(LiveEvent {
                seq: ring.next_seq,
                event_type: event_type.to_string(),
                broker: broker.to_string(),
                envelope: data,
            });
            ring.next_seq += 1;
            ring.events.push_back(event.clone());
            if ring.events.len() > REPLAY_CAPACITY {
                ring.events.pop_front();
            }
            event
        };
        let _ = self.sender.send(event);
    }

    /// Publishes an envelope to every stream (and times a fill from its tick).
    pub fn publish(&self, envelope: &Envelope) {
        let event_type = envelope.event_type().as_str();
        if SIGNAL_TYPES.contains(&event_type) {
            let mut signals = self.signals.lock();
            let kept = signals
                .entry((envelope.broker.as_str().to_string(), event_type.to_string()))
                .or_default();
            kept.push_back(Arc::new(envelope.clone()));
            if kept.len() > SIGNAL_CAPACITY {
                kept.pop_front();
            }
        }
        if let Payload::OrderFilled(_) = envelope.payload {
            if let (Some(h), Some(micros)) = (
                self.tick_to_fill.get(envelope.broker.as_str()),
                tick_to_fill_micros(envelope),
            ) {
                h.observe_micros(micros);
            }
        }
        let event = {
            let mut ring = self.ring.lock();
            let event = Arc::new(LiveEvent {
                seq: ring.next_seq,
                event_type: envelope.event_type().as_str().to_string(),
                broker: envelope.broker.as_str().to_string(),
                envelope: serde_json::from_slice(&envelope.to_json()).unwrap_or_default(),
            });
            ring.next_seq += 1;
            ring.events.push_back(event.clone());
            if ring.events.len() > REPLAY_CAPACITY {
                ring.events.pop_front();
            }
            event
        };
        // No stream listening is not an error.
        let _ = self.sender.send(event);
    }

    /// The events after `seq` still kept, and a receiver of the ones to come, taken together so
    /// none falls between them.
    pub fn subscribe_after(
        &self,
        seq: u64,
    ) -> (Vec<Arc<LiveEvent>>, broadcast::Receiver<Arc<LiveEvent>>) {
        let ring = self.ring.lock();
        let receiver = self.sender.subscribe();
        let missed = ring
            .events
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect();
        (missed, receiver)
    }

    /// The `alpha_panda_tick_to_fill_seconds` histograms, per namespace.
    pub fn render_latency(&self, out: &mut String) {
        out.push_str(
            "# HELP alpha_panda_tick_to_fill_seconds a fill's time from the tick that caused it\n\
             # TYPE alpha_panda_tick_to_fill_seconds histogram\n",
        );
        for (broker, histogram) in self.tick_to_fill.iter() {
            histogram.render(
                "alpha_panda_tick_to_fill_seconds",
                &format!("broker=\"{broker}\""),
                out,
            );
        }
    }

    /// The sequence number of the latest event (0 before the first).
    pub fn latest_seq(&self) -> u64 {
        self.ring.lock().next_seq - 1
    }
}

/// The topics whose events the dashboard shows, for `brokers`, and the ticks (for last prices).
pub fn live_topics(brokers: &[alpha_panda_core::Broker]) -> Vec<String> {
    let mut topics = vec![TopicMap::alerts().to_string(), TopicMap::market_ticks()];
    for broker in brokers {
        let t = TopicMap::new(*broker);
        topics.extend([
            t.signals_raw(),
            t.signals_validated(),
            t.signals_rejected(),
            t.orders_submitted(),
            t.orders_ack(),
            t.orders_filled(),
            t.orders_failed(),
            t.pnl_snapshots(),
            t.signals_at_target(),
        ]);
    }
    topics
}

/// Tails `topics` of the log into `hub` until `stop`: a consumer group of its own, starting at
/// the beginning of what the log keeps. It commits what it has read every second, though it never
/// resumes from there: the memory log keeps every record a group has not committed, and an
/// uncommitted reader would keep them all.
pub async fn tail_log(log: Log, topics: Vec<String>, hub: EventHub, stop: CancellationToken) {
    let group = format!("alpha-panda.api-events.{}", uuid::Uuid::now_v7());
    let mut consumer = match log.consumer(&group, &topics) {
        Ok(consumer) => consumer,
        Err(e) => {
            warn!(error = %e, "the API cannot read the log; the event stream stays empty");
            return;
        }
    };
    let mut read: BTreeMap<(Arc<str>, i32), i64> = BTreeMap::new();
    let mut committed_at = tokio::time::Instant::now();
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => break,
            polled = consumer.poll(Duration::from_millis(200)) => polled,
        };
        match polled {
            Ok(Some(record)) => {
                read.insert((record.topic.clone(), record.partition), record.offset + 1);
                let envelope = match &record.value {
                    RecordValue::Event(envelope) => Some(envelope.as_ref().clone()),
                    RecordValue::Bytes(bytes) => Envelope::from_json(bytes).ok(),
                };
                match envelope {
                    Some(envelope) => hub.take_in(&envelope),
                    None => debug!(topic = %record.topic, offset = record.offset,
                        "a record that is no envelope is not streamed"),
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "reading the log for the event stream failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if !read.is_empty() && committed_at.elapsed() >= Duration::from_secs(1) {
            let offsets: Vec<CommitOffset> = read
                .iter()
                .map(|((topic, partition), next)| CommitOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    next_offset: *next,
                    last_event_id: None,
                })
                .collect();
            if let Err(e) = consumer.commit(&offsets) {
                debug!(error = %e, "the event stream's reader could not commit");
            }
            committed_at = tokio::time::Instant::now();
        }
    }
}

/// Whether `event` passes a stream's filters.
pub fn matches(event: &LiveEvent, brokers: &[String], types: &[String]) -> bool {
    (brokers.is_empty()
        || brokers.contains(&event.broker)
        || event.broker == EventBroker::Shared.as_str())
        && (types.is_empty() || types.contains(&event.event_type))
}
