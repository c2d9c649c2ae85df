//! Shared fixtures: a scripted handler, event builders, and a backend switch (memory or a real tansu
//! broker) so each runtime behaviour is tested on both logs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    Envelope, EventBroker, ExecutionMode, InstrumentToken, MarketTick, OrderAck, OrderId, Payload,
    Price, StrategyId, SystemClock, Timestamp,
};
use alpha_panda_stream::testing::TansuBroker;
use alpha_panda_stream::{
    Handler, HandlerError, Input, Log, MemoryDedupStore, OutgoingRecord, Output, Processor,
    ProcessorConfig, RecordValue, RetryPolicy,
};
use bytes::Bytes;
use parking_lot::Mutex;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

/// A log plus whatever keeps it alive.
pub struct Backend {
    pub log: Log,
    pub broker: Option<TansuBroker>,
}

impl Backend {
    pub fn memory() -> Self {
        Self {
            log: Log::connect("memory://", &BTreeMap::new()).unwrap(),
            broker: None,
        }
    }

    pub fn kafka() -> Self {
        let broker = TansuBroker::start().expect("tansu broker");
        let log = Log::connect(&broker.log_url(), &BTreeMap::new()).unwrap();
        Self {
            log,
            broker: Some(broker),
        }
    }

    pub fn is_kafka(&self) -> bool {
        self.broker.is_some()
    }

    /// Creates topics and their `.dlq` (Kafka needs them explicitly).
    pub async fn topics(&self, names: &[&str]) {
        for name in names {
            for topic in [name.to_string(), alpha_panda_core::TopicMap::dlq(name)] {
                self.log
                    .create_topic(&topic, 3, 1, 86_400_000)
                    .await
                    .unwrap();
            }
        }
    }
}

pub type Script = Box<dyn FnMut(&Envelope) -> Result<Vec<Output>, HandlerError> + Send>;

/// A handler that records what it saw and answers from a script.
pub struct Scripted {
    pub name: String,
    pub topics: Vec<String>,
    pub seen: Arc<Mutex<Vec<Envelope>>>,
    pub script: Script,
}

impl Handler for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn topics(&self) -> Vec<String> {
        self.topics.clone()
    }
    fn broker(&self) -> EventBroker {
        EventBroker::Paper
    }
    fn deduplicate(&self, _: alpha_panda_core::EventType) -> bool {
        true
    }
    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        self.seen.lock().push(input.envelope.clone());
        (self.script)(input.envelope)
    }
}

pub fn fast_config() -> ProcessorConfig {
    ProcessorConfig {
        retry: RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        },
        commit_batch: 1,
        commit_interval: Duration::from_millis(0),
        poll_timeout: Duration::from_millis(50),
        ..ProcessorConfig::default()
    }
}

pub fn tick(token: u32, price: i64) -> Envelope {
    Envelope::root(
        Payload::MarketTick(MarketTick {
            instrument_token: InstrumentToken(token),
            tradingsymbol: None,
            last_price: Price(Decimal::new(price, 2)),
            last_traded_quantity: 1,
            average_traded_price: None,
            volume_traded: 10,
            total_buy_quantity: 0,
            total_sell_quantity: 0,
            ohlc: None,
            oi: None,
            exchange_timestamp: Timestamp::from_unix_micros(1_763_800_000_000_000).unwrap(),
            depth: None,
        }),
        token.to_string(),
        EventBroker::Shared,
        "test_feed",
        Timestamp::from_unix_micros(1_763_800_000_000_000).unwrap(),
    )
}

/// Bytes written as they are to `topic` under `key`, with no envelope (poison, unless they
/// happen to be one).
pub fn raw(topic: &'static str, key: &str, value: impl Into<Bytes>) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.into(),
        key: Some(key.into()),
        value: RecordValue::Bytes(value.into()),
        headers: vec![],
    }
}

pub fn ack_output(topic: &str, n: u32) -> Output {
    Output {
        topic: topic.to_string(),
        key: format!("s1:{n}"),
        payload: Payload::OrderAck(OrderAck {
            order_id: OrderId::new(format!("o-{n}")).unwrap(),
            broker_order_id: format!("b-{n}"),
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: InstrumentToken(n),
            execution_mode: ExecutionMode::Paper,
        }),
        broker: EventBroker::Paper,
        id: None,
    }
}

/// A running processor and the means to stop it.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<Scripted, alpha_panda_stream::ProcessorError>>,
    pub stats: Arc<alpha_panda_stream::ProcessorStats>,
    pub seen: Arc<Mutex<Vec<Envelope>>>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

pub fn start(
    log: &Log,
    dedup: Arc<MemoryDedupStore>,
    name: &str,
    topics: &[&str],
    config: ProcessorConfig,
    script: Script,
) -> Running {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Scripted {
        name: name.to_string(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        seen: seen.clone(),
        script,
    };
    let processor = Processor::new(handler, log.clone(), dedup, Arc::new(SystemClock), config);
    let stats = processor.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(processor.run(shutdown.clone()));
    Running {
        shutdown,
        task,
        stats,
        seen,
    }
}

/// Waits (generously: CI machines are busy) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every envelope on `topic`.
pub async fn read_events(log: &Log, topic: &str) -> Vec<Envelope> {
    log.read_all(topic)
        .await
        .unwrap()
        .into_iter()
        .map(|r| match r.value {
            alpha_panda_stream::RecordValue::Event(e) => Envelope::clone(&e),
            alpha_panda_stream::RecordValue::Bytes(b) => Envelope::from_json(&b).unwrap(),
        })
        .collect()
}

/// Waits until `topic` holds at least `n` events and returns them.
pub async fn wait_for_events(log: &Log, topic: &str, n: usize) -> Vec<Envelope> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events = read_events(log, topic).await;
        if events.len() >= n {
            return events;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {n} events on {topic}; have {}",
                events.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
