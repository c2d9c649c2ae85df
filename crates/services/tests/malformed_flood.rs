//! The fault suite's flood: 10,000 malformed records mixed into every topic the services consume
//! — garbage bytes, JSON that is no envelope, events of the wrong type, schema violations, absurd
//! prices, zero quantities — while the whole paper pipeline (strategy runner, risk manager, trading
//! engine, portfolio manager) runs on the memory log. Every malformed record reaches its DLQ once
//! per consumer group, nothing crashes, and the good records give exactly the fills of a run
//! without the flood.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    derive_event_id, Broker, Envelope, EventBroker, EventId, ExecutionMode, FeeBreakdown,
    InstrumentToken, Money, OrderAck, OrderFilled, OrderId, Payload, Price, Quantity, Side,
    StrategyId, SystemClock, Timestamp, TopicMap,
};
use alpha_panda_services::portfolio_manager::service::{PortfolioManager, PortfolioSettings};
use alpha_panda_services::risk_manager::service::RiskManager;
use alpha_panda_services::strategy_runner::{RunnerStrategy, StrategyRunner};
use alpha_panda_services::trading_engine::service::TradingEngine;
use alpha_panda_services::{
    build_strategy, nse_universe, PaperConfig, PaperTrader, RiskLimits, TickSimulator,
};
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::SqlBackend;
use alpha_panda_stream::memory::{MemoryLog, MemoryLogConfig};
use alpha_panda_stream::{
    Handler, Log, MemoryDedupStore, OutgoingRecord, Processor, ProcessorConfig, ProcessorStats,
    RecordValue,
};
use bytes::Bytes;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

const TOKENS: [u32; 3] = [408065, 738561, 341249];
const PER_TOPIC: usize = 2_000;

fn base() -> EventId {
    "01935f2a-7c00-7000-8000-0000000000aa".parse().unwrap()
}

fn at(n: usize) -> Timestamp {
    Timestamp::from_unix_micros(1_767_584_700_000_000 + n as i64 * 10_000).unwrap()
}

/// The good ticks, under the same ids in every run.
fn ticks() -> Vec<Envelope> {
    let mut simulator = TickSimulator::new(5, nse_universe()).unwrap();
    (0..20_000)
        .map(|n| simulator.next_tick(at(n)))
        .filter(|t| TOKENS.contains(&t.instrument_token.0))
        .enumerate()
        .map(|(n, tick)| {
            let key = tick.instrument_token.0.to_string();
            Envelope::root_with_id(
                derive_event_id(base(), "flood:tick", n as u32),
                Payload::MarketTick(tick),
                key,
                EventBroker::Shared,
                "market_feed",
                at(n),
            )
        })
        .collect()
}

fn fill(n: usize, quantity: u32, price: &str) -> Envelope {
    Envelope::root(
        Payload::OrderFilled(OrderFilled {
            order_id: OrderId::new(format!("paper-flood-{n}")).unwrap(),
            broker_order_id: None,
            strategy_id: StrategyId::new("flood").unwrap(),
            instrument_token: InstrumentToken(408065),
            tradingsymbol: None,
            side: Side::Buy,
            quantity: Quantity(quantity),
            fill_price: Price(price.parse().unwrap()),
            fees_source: Default::default(),
            fees: FeeBreakdown {
                total: Money(Decimal::ONE),
                ..FeeBreakdown::default()
            },
            execution_mode: ExecutionMode::Paper,
            filled_at: at(n),
        }),
        "flood:408065".into(),
        EventBroker::Paper,
        "intruder",
        at(n),
    )
}

fn ack(n: usize) -> Envelope {
    Envelope::root(
        Payload::OrderAck(OrderAck {
            order_id: OrderId::new(format!("paper-flood-{n}")).unwrap(),
            broker_order_id: format!("b-{n}"),
            strategy_id: StrategyId::new("flood").unwrap(),
            instrument_token: InstrumentToken(408065),
            execution_mode: ExecutionMode::Paper,
        }),
        "flood:408065".into(),
        EventBroker::Paper,
        "intruder",
        at(n),
    )
}

fn bytes(topic: &str, value: Vec<u8>) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_string().into(),
        key: Some("408065".into()),
        value: RecordValue::Bytes(Bytes::from(value)),
        headers: Vec::new(),
    }
}

/// The `n`-th malformed record for `topic`, one of six kinds; `tick` is a good tick to spoil.
fn malformed(topic: &str, n: usize, tick: &Envelope) -> OutgoingRecord {
    match n % 6 {
        0 => bytes(topic, b"\x00\xff not even text".to_vec()),
        1 => bytes(topic, br#"{"hello": "world"}"#.to_vec()),
        // A well-formed event of a type the topic does not carry (an ack on a fills topic; a fill
        // anywhere else).
        2 if topic.ends_with("orders.filled") => OutgoingRecord::event(topic.to_string(), ack(n)),
        2 => OutgoingRecord::event(topic.to_string(), fill(n, 1, "1500")),
        // A schema violation: the envelope of a tick whose payload lacks its price.
        3 => {
            let mut value: serde_json::Value = serde_json::from_slice(&tick.to_json()).unwrap();
            value["id"] = serde_json::json!(derive_event_id(base(), "flood:bad", n as u32));
            value["data"].as_object_mut().unwrap().remove("last_price");
            bytes(topic, value.to_string().into_bytes())
        }
        // Absurd figures, as bytes from a foreign producer: a tick or a fill priced at 10^23.
        4 if topic == TopicMap::market_ticks_str() => {
            let mut tick = tick.clone();
            tick.id = derive_event_id(base(), "flood:huge", n as u32);
            if let Payload::MarketTick(t) = &mut tick.payload {
                t.last_price = Price("99999999999999999999999.99".parse().unwrap());
            }
            bytes(topic, tick.to_json())
        }
        4 => bytes(topic, fill(n, 1, "99999999999999999999999.99").to_json()),
        // A zero quantity.
        _ => bytes(topic, fill(n, 0, "1500").to_json()),
    }
}

struct Pipeline {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stats: Vec<Arc<ProcessorStats>>,
}

async fn start(log: &Log, store: &alpha_panda_store::Store) -> Pipeline {
    let universe = nse_universe();
    let instruments: HashMap<_, _> = universe
        .iter()
        .map(|i| (i.instrument_token, i.clone()))
        .collect();
    let strategies = vec![RunnerStrategy {
        strategy: build_strategy(
            "momentum",
            "ema_cross",
            &TOKENS,
            &serde_json::json!({"fast": 5, "slow": 20}),
        )
        .unwrap(),
        zerodha_trading_enabled: false,
        configuration: "ema_cross".into(),
    }];
    let limits = RiskLimits {
        max_daily_trades_per_strategy: 1_000_000,
        enforce_market_hours: false,
        ..RiskLimits::default()
    };
    let dedup = Arc::new(MemoryDedupStore::new());
    let config = ProcessorConfig {
        commit_interval: Duration::from_millis(20),
        poll_timeout: Duration::from_millis(20),
        ..ProcessorConfig::default()
    };
    let shutdown = CancellationToken::new();
    let mut pipeline = Pipeline {
        shutdown: shutdown.clone(),
        tasks: Vec::new(),
        stats: Vec::new(),
    };
    fn run<H: Handler>(
        pipeline: &mut Pipeline,
        handler: H,
        log: &Log,
        dedup: &Arc<MemoryDedupStore>,
        config: &ProcessorConfig,
    ) {
        let processor = Processor::new(
            handler,
            log.clone(),
            dedup.clone(),
            Arc::new(SystemClock),
            config.clone(),
        );
        pipeline.stats.push(processor.stats());
        let shutdown = pipeline.shutdown.clone();
        pipeline.tasks.push(tokio::spawn(async move {
            processor.run(shutdown).await.expect("a service failed");
        }));
    }
    let runner = StrategyRunner::open(strategies, &[Broker::Paper], store.clone())
        .await
        .unwrap();
    run(&mut pipeline, runner, log, &dedup, &config);
    let risk = RiskManager::open(
        Broker::Paper,
        limits,
        Arc::new(instruments),
        store.clone(),
        None,
    )
    .await
    .unwrap();
    run(&mut pipeline, risk, log, &dedup, &config);
    let engine = TradingEngine::open_paper(
        PaperTrader::new(PaperConfig::default(), &universe),
        store.clone(),
    )
    .await
    .unwrap();
    run(&mut pipeline, engine, log, &dedup, &config);
    let manager = PortfolioManager::open(
        Broker::Paper,
        PortfolioSettings::default(),
        store.clone(),
        None,
    )
    .await
    .unwrap();
    run(&mut pipeline, manager, log, &dedup, &config);
    pipeline
}

/// Runs the pipeline over the good ticks, with the flood when `flood`; returns the ledger's fills
/// and every DLQ record, per DLQ topic, as (service, (original partition, offset)).
async fn run_once(flood: bool) -> (Vec<String>, BTreeMap<String, Vec<(String, (i32, i64))>>) {
    let db = TestStore::new(SqlBackend::Sqlite).await.unwrap();
    let log = Log::Memory(MemoryLog::new(MemoryLogConfig::default()));
    let paper = TopicMap::new(Broker::Paper);
    let flooded = [
        TopicMap::market_ticks(),
        paper.signals_raw(),
        paper.signals_validated(),
        paper.orders_filled(),
        paper.orders_failed(),
    ];
    let pipeline = start(&log, &db.store).await;
    let ticks = ticks();
    let mut n = 0;
    for (i, tick) in ticks.iter().enumerate() {
        log.send(OutgoingRecord::event(
            TopicMap::market_ticks(),
            tick.clone(),
        ))
        .await
        .unwrap();
        // Spread the flood over the run: a few malformed records after every good tick.
        while flood
            && n < PER_TOPIC * flooded.len()
            && n * ticks.len() <= (i + 1) * PER_TOPIC * flooded.len()
        {
            let topic = &flooded[n % flooded.len()];
            log.send(malformed(topic, n, &ticks[0])).await.unwrap();
            n += 1;
        }
        if i % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(n, if flood { 10_000 } else { 0 });
    // Until nothing moves any more.
    let mut last = Vec::new();
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now: Vec<u64> = pipeline
            .stats
            .iter()
            .map(|s| ProcessorStats::get(&s.events_in) + ProcessorStats::get(&s.events_out))
            .collect();
        if now == last {
            break;
        }
        last = now;
    }
    pipeline.shutdown.cancel();
    for task in pipeline.tasks {
        task.await.expect("a service panicked");
    }
    let mut fills: Vec<String> = db
        .store
        .ledger()
        .fills(Broker::Paper, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| serde_json::to_string(&f.fill).unwrap())
        .collect();
    fills.sort();
    let mut dead = BTreeMap::new();
    for topic in &flooded {
        let mut entries = Vec::new();
        let mut ids = HashSet::new();
        for record in log.read_all(&TopicMap::dlq(topic)).await.unwrap() {
            let RecordValue::Event(envelope) = &record.value else {
                panic!("the runtime writes typed DLQ records on the memory log");
            };
            assert!(ids.insert(envelope.id), "a DLQ record written twice");
            if let Payload::DlqMessage(m) = &envelope.payload {
                entries.push((m.service.clone(), (m.original_partition, m.original_offset)));
            }
        }
        dead.insert(topic.clone(), entries);
    }
    db.cleanup().await.unwrap();
    (fills, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_records_change_nothing_but_the_dlq() {
    let (clean_fills, clean_dead) = run_once(false).await;
    assert!(clean_fills.len() > 10, "the pipeline barely traded");
    assert!(clean_dead.values().all(Vec::is_empty), "{clean_dead:?}");

    let (fills, dead) = run_once(true).await;
    assert_eq!(fills, clean_fills, "the flood changed the fills");
    let consumers = |topic: &str| -> Vec<&str> {
        let paper = TopicMap::new(Broker::Paper);
        if topic == TopicMap::market_ticks_str() {
            vec![
                "portfolio_manager",
                "risk_manager",
                "strategy_runner",
                "trading_engine",
            ]
        } else if topic == paper.signals_raw() {
            vec!["risk_manager"]
        } else if topic == paper.signals_validated() {
            vec!["trading_engine"]
        } else {
            vec!["portfolio_manager", "risk_manager"]
        }
    };
    for (topic, entries) in &dead {
        let mut per_service: BTreeMap<&str, HashSet<(i32, i64)>> = BTreeMap::new();
        for (service, offset) in entries {
            assert!(
                per_service
                    .entry(service.as_str())
                    .or_default()
                    .insert(*offset),
                "{service} dead-lettered {offset:?} of {topic} twice"
            );
        }
        assert_eq!(
            per_service.keys().copied().collect::<Vec<_>>(),
            consumers(topic),
            "{topic}"
        );
        for (service, offsets) in &per_service {
            assert_eq!(offsets.len(), PER_TOPIC, "{service} on {topic}");
        }
    }
}
