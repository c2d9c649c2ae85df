//! Conflation in the runtime: a handler that folds ticks into last values is handed only the last
//! tick of each instrument in a fetched batch, every record is still committed, and a handler that
//! stops conflating mid-batch gets every tick from then on. On Kafka, where records are bytes, the
//! same holds once they are decoded, and poison among them still reaches its DLQ.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{EventBroker, EventType, Payload, SystemClock, TopicMap};
use alpha_panda_stream::dlq::REPLAY_GROUP_HEADER;
use alpha_panda_stream::{
    Handler, HandlerError, Input, Log, MemoryDedupStore, OutgoingRecord, Output, Processor,
    ProcessorConfig, ProcessorStats,
};
use common::{eventually, fast_config, raw, tick, wait_for_events, Backend};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

const TICKS: &str = "cf.ticks";

/// Keeps last prices; conflates ticks while `conflating` is set, and clears it on `stop_on`.
struct LastPrices {
    conflating: Arc<AtomicBool>,
    stop_on: Option<(u32, i64)>,
    seen: Arc<Mutex<Vec<(u32, i64)>>>,
}

impl Handler for LastPrices {
    fn name(&self) -> &str {
        "last_prices"
    }
    fn topics(&self) -> Vec<String> {
        vec![TICKS.to_string()]
    }
    fn broker(&self) -> EventBroker {
        EventBroker::Shared
    }
    fn conflates(&self, event_type: EventType) -> bool {
        event_type == EventType::MarketTick && self.conflating.load(Ordering::Relaxed)
    }
    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        let Payload::MarketTick(t) = &input.envelope.payload else {
            return Err(HandlerError::poison("ticks only"));
        };
        let seen = (t.instrument_token.0, t.last_price.0.mantissa() as i64);
        self.seen.lock().push(seen);
        if self.stop_on == Some(seen) {
            self.conflating.store(false, Ordering::Relaxed);
        }
        Ok(Vec::new())
    }
}

/// A memory log with the ticks topic on one partition.
async fn ticks_log() -> Log {
    let log = Log::connect("memory://", &BTreeMap::new()).unwrap();
    log.create_topic(TICKS, 1, 1, 86_400_000).await.unwrap();
    log
}

async fn append(log: &Log, ticks: &[(u32, i64)]) {
    for &(token, price) in ticks {
        log.send(OutgoingRecord::event(TICKS, tick(token, price)))
            .await
            .unwrap();
    }
}

/// `LastPrices` running on `log`.
struct Running {
    stats: Arc<ProcessorStats>,
    seen: Arc<Mutex<Vec<(u32, i64)>>>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<LastPrices, alpha_panda_stream::ProcessorError>>,
}

impl Running {
    fn start(log: &Log, stop_on: Option<(u32, i64)>) -> Self {
        Self::start_with(log, stop_on, fast_config())
    }

    fn start_with(log: &Log, stop_on: Option<(u32, i64)>, config: ProcessorConfig) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = LastPrices {
            conflating: Arc::new(AtomicBool::new(true)),
            stop_on,
            seen: seen.clone(),
        };
        let processor = Processor::new(
            handler,
            log.clone(),
            Arc::new(MemoryDedupStore::new()),
            Arc::new(SystemClock),
            config,
        );
        let stats = processor.stats();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(processor.run(shutdown.clone()));
        Self {
            stats,
            seen,
            shutdown,
            task,
        }
    }

    async fn read(&self, total: u64) {
        eventually("every tick read", || {
            ProcessorStats::get(&self.stats.events_in) == total
        })
        .await;
    }

    /// Stops it: what it handled and how many it conflated.
    async fn stop(self) -> (Vec<(u32, i64)>, u64) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        let handled = self.seen.lock().clone();
        (handled, ProcessorStats::get(&self.stats.conflated))
    }
}

#[tokio::test]
async fn a_typed_record_keeps_its_key_once_in_its_envelope() {
    let log = Log::connect("memory://", &BTreeMap::new()).unwrap();
    let sent = tick(408065, 100);
    log.send(OutgoingRecord::event(TICKS, sent.clone()))
        .await
        .unwrap();
    let mut consumer = log.consumer("keys", &[TICKS.to_string()]).unwrap();
    let record = consumer
        .poll(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the record");
    assert_eq!(record.key, None, "not stored twice");
    assert_eq!(record.key(), Some("408065"));
}

#[tokio::test]
async fn only_the_last_tick_of_each_instrument_is_handled_and_all_are_committed() {
    let log = ticks_log().await;
    // Appended before the consumer starts, so they are fetched as one batch.
    append(
        &log,
        &[(1, 100), (2, 200), (1, 101), (1, 102), (2, 201), (1, 103)],
    )
    .await;
    let running = Running::start(&log, None);
    running.read(6).await;
    let (handled, conflated) = running.stop().await;
    assert_eq!(handled, vec![(2, 201), (1, 103)]);
    assert_eq!(conflated, 4);

    // The skipped ticks are committed with the rest: the group has nothing left to read.
    let mut again = log
        .consumer("alpha-panda.last_prices", &[TICKS.to_string()])
        .unwrap();
    assert!(again
        .poll(Duration::from_millis(200))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_replayed_tick_is_never_superseded() {
    let log = ticks_log().await;
    let mut replayed = OutgoingRecord::event(TICKS, tick(1, 100));
    replayed.headers = vec![(REPLAY_GROUP_HEADER.to_string(), "*".to_string())];
    log.send(replayed).await.unwrap();
    append(&log, &[(1, 101), (1, 102)]).await;
    let running = Running::start(&log, None);
    running.read(3).await;
    let (handled, conflated) = running.stop().await;
    assert_eq!(handled, vec![(1, 100), (1, 102)]);
    assert_eq!(conflated, 1);
}

#[tokio::test]
async fn a_handler_that_stops_conflating_gets_every_tick_of_the_next_batch() {
    let log = ticks_log().await;
    append(&log, &[(1, 100), (1, 101), (1, 102)]).await;
    // Handling the batch's last tick turns conflation off: the next batch comes whole.
    let running = Running::start(&log, Some((1, 102)));
    running.read(3).await;
    append(&log, &[(1, 200), (1, 201)]).await;
    running.read(5).await;
    let (handled, conflated) = running.stop().await;
    assert_eq!(handled, vec![(1, 102), (1, 200), (1, 201)]);
    assert_eq!(conflated, 2);
}

#[tokio::test]
async fn on_kafka_ticks_are_conflated_once_decoded_and_poison_still_reaches_its_dlq() {
    conflated_on_kafka(fast_config()).await;
}

#[tokio::test]
async fn on_kafka_a_batch_cut_short_hands_over_the_rest_later() {
    // Input is held back every few records until a commit: the batch conflated where the
    // consumer holds it is left part way through, and what it had not handled must still be
    // handled (conflated again with whatever comes after it).
    conflated_on_kafka(ProcessorConfig {
        max_unsaved: 7,
        ..fast_config()
    })
    .await;
}

async fn conflated_on_kafka(config: ProcessorConfig) {
    let backend = Backend::kafka();
    let log = &backend.log;
    for topic in [TICKS.to_string(), TopicMap::dlq(TICKS)] {
        log.create_topic(&topic, 1, 1, 86_400_000).await.unwrap();
    }
    // Many ticks of two instruments, written before the consumer joins, so that its polls take
    // them in batches; in the middle, between ticks of instrument 1 that later ones supersede,
    // bytes that are no envelope and a tick whose price is impossible. Neither may be skipped.
    let ticks = |from: i64, to: i64| -> Vec<OutgoingRecord> {
        (from..to)
            .map(|n| OutgoingRecord::event(TICKS, tick(1 + (n % 2) as u32, 1_000 + n)))
            .collect()
    };
    log.send_all(ticks(0, 500)).await.unwrap();
    log.send(raw(TICKS, "1", b"{not json".as_slice()))
        .await
        .unwrap();
    append(log, &[(1, -5)]).await;
    log.send_all(ticks(500, 1_000)).await.unwrap();
    let total = 1_002;

    let running = Running::start_with(log, None, config);
    running.read(total).await;
    let dead = wait_for_events(log, &TopicMap::dlq(TICKS), 2).await;
    let (handled, conflated) = running.stop().await;

    assert_eq!(
        dead.len(),
        2,
        "the poison and the impossible tick: {dead:?}"
    );
    assert!(!handled.contains(&(1, -5)), "{handled:?}");
    let last_of = |token: u32| handled.iter().rev().find(|(t, _)| *t == token).copied();
    assert_eq!(last_of(1), Some((1, 1_998)));
    assert_eq!(last_of(2), Some((2, 1_999)));
    assert!(conflated > 0, "nothing conflated: {handled:?}");
    // What was not handled was conflated or dead-lettered, and each handled tick is later than
    // the one before it of the same instrument.
    assert_eq!(handled.len() as u64 + conflated + 2, total);
    for token in [1, 2] {
        let prices: Vec<i64> = handled
            .iter()
            .filter(|(t, _)| *t == token)
            .map(|(_, p)| *p)
            .collect();
        assert!(prices.windows(2).all(|w| w[0] < w[1]), "{prices:?}");
    }

    // Every record, the skipped ones too, is committed: the group has nothing left to read.
    let mut again = log
        .consumer("alpha-panda.last_prices", &[TICKS.to_string()])
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < deadline {
        let record = again.poll(Duration::from_millis(200)).await.unwrap();
        assert!(record.is_none(), "read again: {record:?}");
    }
    let _ = again.close(&[]).await;
}
