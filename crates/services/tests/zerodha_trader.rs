//! The Zerodha live trader against the fake Kite server (strict: market protection, 10 orders
//! a second): orders carry the registry's exchange and symbol and a market protection, a COMPLETE
//! order becomes a fill that moves only the zerodha portfolio (through the real processor
//! runtime), each Kite trade is one fill across a restart, rejections and unknown instruments
//! become `order_failed`, a crash between placing and acknowledging or a lost answer never places
//! the order twice, a stale signal is not placed, a protected order resting at its band is
//! cancelled, and an expired session halts the namespace until a new login.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    AlertKind, Broker, Envelope, EventBroker, EventId, InstrumentToken, OrderType, Payload, Price,
    Quantity, Side, StrategyId, SystemClock, TickRef, Timestamp, TopicMap, TradingSignal,
    ValidatedSignal,
};
use alpha_panda_kite::fake::{FakeKite, FakeKiteConfig, DEFAULT_INSTRUMENTS_CSV};
use alpha_panda_kite::{parse_instruments_csv, InstrumentRegistry, KiteClient};
use alpha_panda_services::portfolio_manager::service::{PortfolioManager, PortfolioSettings};
use alpha_panda_services::trading_engine::service::TradingEngine;
use alpha_panda_services::trading_engine::zerodha::order_tag;
use alpha_panda_services::trading_engine::{ZerodhaConfig, ZerodhaTrader};
use alpha_panda_store::{AccessToken, Store, TradingSession};
use alpha_panda_stream::{
    Handler, Input, Log, MemoryDedupStore, OutgoingRecord, Output, Processor, ProcessorConfig,
    ProcessorStats, RecordPosition,
};
use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;

const INFY: u32 = 408065;

async fn store() -> Store {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn trader(fake: &FakeKite, poll_interval: Duration) -> ZerodhaTrader {
    trader_with(
        fake,
        ZerodhaConfig {
            product: fake.settings().product.clone(),
            poll_interval,
            ..ZerodhaConfig::default()
        },
    )
}

fn trader_with(fake: &FakeKite, config: ZerodhaConfig) -> ZerodhaTrader {
    let client = KiteClient::new(&fake.settings())
        .unwrap()
        .with_access_token(fake.config().access_token.clone());
    let registry = InstrumentRegistry::from_rows(
        parse_instruments_csv(DEFAULT_INSTRUMENTS_CSV.as_bytes()).unwrap(),
    );
    ZerodhaTrader::new(Arc::new(client), Arc::new(registry), config)
}

fn validated(token: u32, order_type: OrderType, limit_price: Option<Price>) -> Envelope {
    validated_side(token, Side::Buy, order_type, limit_price)
}

fn validated_side(
    token: u32,
    side: Side,
    order_type: OrderType,
    limit_price: Option<Price>,
) -> Envelope {
    validated_units(token, side, 5, order_type, limit_price)
}

fn validated_units(
    token: u32,
    side: Side,
    units: u32,
    order_type: OrderType,
    limit_price: Option<Price>,
) -> Envelope {
    let at = Timestamp::from_unix_micros(1_763_800_000_000_000).unwrap();
    let strategy_id = StrategyId::new("ema_cross_infy").unwrap();
    let signal = TradingSignal {
        strategy_id: strategy_id.clone(),
        instrument_token: InstrumentToken(token),
        side,
        quantity: Quantity(units),
        target_quantity: side.sign() * i64::from(units),
        order_type,
        limit_price,
        reason: "fast ema crossed above slow".into(),
        tick: TickRef {
            instrument_token: InstrumentToken(token),
            last_price: Price(dec!(1500.00)),
            exchange_timestamp: at,
            event_id: EventId::new_root(),
        },
    };
    Envelope::root(
        Payload::ValidatedSignal(ValidatedSignal {
            signal,
            signal_event_id: EventId::new_root(),
            rules_checked: vec!["max_order_value".into()].into(),
        }),
        format!("{strategy_id}:{token}"),
        EventBroker::Zerodha,
        "risk_manager",
        // Validated just now: an older signal is not placed (zerodha.max_signal_age).
        Timestamp::from_datetime(chrono::Utc::now()),
    )
}

async fn handle(engine: &mut TradingEngine, envelope: &Envelope, offset: i64) -> Vec<Output> {
    let position = RecordPosition {
        topic: Arc::from(TopicMap::new(Broker::Zerodha).signals_validated().as_str()),
        partition: 0,
        offset,
    };
    engine
        .handle(Input {
            envelope,
            position: &position,
            now: envelope.ts,
        })
        .await
        .unwrap()
}

fn types(outputs: &[Output]) -> Vec<&'static str> {
    outputs
        .iter()
        .map(|o| o.payload.event_type().as_str())
        .collect()
}

#[tokio::test]
async fn a_signal_becomes_a_kite_order_and_a_complete_order_moves_only_the_zerodha_portfolio() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let store = store().await;
    let log = Log::connect("memory://", &BTreeMap::new()).unwrap();
    for topic in TopicMap::all_topics(&[Broker::Paper, Broker::Zerodha]) {
        log.create_topic(&topic.name, 1, 1, 86_400_000)
            .await
            .unwrap();
    }
    let dedup = Arc::new(MemoryDedupStore::new());
    let config = ProcessorConfig {
        commit_batch: 1,
        commit_interval: Duration::from_millis(0),
        poll_timeout: Duration::from_millis(20),
        ..ProcessorConfig::default()
    };
    let shutdown = CancellationToken::new();
    let engine =
        TradingEngine::open_zerodha(trader(&fake, Duration::from_millis(50)), store.clone())
            .await
            .unwrap();
    let engine_task = tokio::spawn(
        Processor::new(
            engine,
            log.clone(),
            dedup.clone(),
            Arc::new(SystemClock),
            config.clone(),
        )
        .run(shutdown.clone()),
    );
    let mut portfolio_tasks = Vec::new();
    let mut portfolio_stats = Vec::new();
    for broker in [Broker::Zerodha, Broker::Paper] {
        let manager =
            PortfolioManager::open(broker, PortfolioSettings::default(), store.clone(), None)
                .await
                .unwrap();
        let processor = Processor::new(
            manager,
            log.clone(),
            dedup.clone(),
            Arc::new(SystemClock),
            config.clone(),
        );
        portfolio_stats.push(processor.stats());
        portfolio_tasks.push(tokio::spawn(processor.run(shutdown.clone())));
    }
    let zerodha_portfolio = portfolio_stats[0].clone();

    let signal = validated(INFY, OrderType::Market, None);
    let zerodha = TopicMap::new(Broker::Zerodha);
    log.send(OutgoingRecord::event(
        zerodha.signals_validated(),
        signal.clone(),
    ))
    .await
    .unwrap();

    let placed = eventually("the order reaches Kite", || {
        fake.orders().into_iter().next()
    })
    .await;
    assert_eq!(placed.variety, "regular");
    assert_eq!(placed.form.get("exchange").map(String::as_str), Some("NSE"));
    assert_eq!(
        placed.form.get("tradingsymbol").map(String::as_str),
        Some("INFY")
    );
    assert_eq!(
        placed.form.get("transaction_type").map(String::as_str),
        Some("BUY")
    );
    assert_eq!(placed.form.get("quantity").map(String::as_str), Some("5"));
    assert_eq!(
        placed.form.get("order_type").map(String::as_str),
        Some("MARKET")
    );
    assert_eq!(
        placed.form.get("market_protection").map(String::as_str),
        Some("-1"),
        "Kite rejects a MARKET order without market protection"
    );
    assert_eq!(placed.form.get("product").map(String::as_str), Some("MIS"));
    assert_eq!(
        placed.form.get("tag").cloned(),
        Some(order_tag(signal.id)),
        "the tag is derived from the signal event id"
    );
    let acks = eventually_events(&log, &zerodha.orders_ack(), 1).await;
    let Payload::OrderAck(ack) = &acks[0].payload else {
        panic!("not an ack: {:?}", acks[0].payload)
    };
    assert_eq!(ack.broker_order_id, placed.order_id);

    assert!(fake.complete_order(&placed.order_id, dec!(1501.25)));
    let fills = eventually_events(&log, &zerodha.orders_filled(), 1).await;
    let Payload::OrderFilled(fill) = &fills[0].payload else {
        panic!("not a fill: {:?}", fills[0].payload)
    };
    assert_eq!(fill.quantity, Quantity(5));
    assert_eq!(fill.fill_price, Price(dec!(1501.25)));
    assert_eq!(fill.tradingsymbol.as_deref(), Some("INFY"));
    assert_eq!(
        fill.broker_order_id.as_deref(),
        Some(placed.order_id.as_str())
    );
    assert!(
        fill.fees.total.0 > rust_decimal::Decimal::ZERO,
        "fees come from Zerodha's charge schedule"
    );
    assert_eq!(fills[0].broker, EventBroker::Zerodha);
    // One fill per Kite trade, its id derived from Kite's trade id.
    let trade_id = fake.orders()[0].trades[0]["trade_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fills[0].id,
        alpha_panda_services::trading_engine::zerodha::fill_event_id(signal.id, &trade_id)
    );

    // Let the portfolio managers consume the fill, then stop everything and look at their books.
    eventually("the zerodha portfolio takes the fill", || {
        (ProcessorStats::get(&zerodha_portfolio.events_in) >= 1).then_some(())
    })
    .await;
    shutdown.cancel();
    engine_task.await.unwrap().unwrap();
    let mut books = Vec::new();
    for task in portfolio_tasks {
        books.push(task.await.unwrap().unwrap());
    }
    let zerodha_book: Vec<_> = books[0].portfolios().collect();
    assert_eq!(zerodha_book.len(), 1, "one zerodha portfolio");
    let position = zerodha_book[0]
        .positions
        .get(&InstrumentToken(INFY))
        .unwrap();
    assert_eq!(position.quantity, 5);
    assert_eq!(zerodha_book[0].broker, Broker::Zerodha);
    assert_eq!(
        books[1].portfolios().count(),
        0,
        "the paper portfolio never moves"
    );
    assert!(log
        .read_all(&TopicMap::new(Broker::Paper).orders_filled())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_rejected_order_becomes_order_failed_with_kites_message() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    fake.reject_orders(Some(
        "Insufficient funds. Required margin is 95417.84".into(),
    ));
    let store = store().await;
    let mut engine = TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(3600)), store)
        .await
        .unwrap();
    let signal = validated(INFY, OrderType::Limit, Some(Price(dec!(1499.95))));
    let outputs = handle(&mut engine, &signal, 0).await;
    assert_eq!(types(&outputs), ["order_submitted", "order_ack"]);
    assert_eq!(
        fake.orders()[0].form.get("price").map(String::as_str),
        Some("1499.95")
    );
    let later = engine.on_timer(signal.ts).await.unwrap();
    assert_eq!(types(&later), ["order_failed"]);
    let Payload::OrderFailed(failed) = &later[0].payload else {
        panic!("not a failure")
    };
    assert!(failed.reason.contains("REJECTED"), "{}", failed.reason);
    assert!(
        failed.reason.contains("Insufficient funds"),
        "{}",
        failed.reason
    );
    assert!(
        later[0].id.is_some(),
        "a time-driven failure carries a fixed id"
    );
    // Terminal: nothing more to follow.
    assert!(engine.on_timer(signal.ts).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_instrument_fails_without_reaching_kite() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let mut engine =
        TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(3600)), store().await)
            .await
            .unwrap();
    let outputs = handle(&mut engine, &validated(999_999, OrderType::Market, None), 0).await;
    assert_eq!(types(&outputs), ["order_submitted", "order_failed"]);
    let Payload::OrderFailed(failed) = &outputs[1].payload else {
        panic!("not a failure")
    };
    assert!(failed.reason.contains("999999"), "{}", failed.reason);
    assert!(
        failed.reason.contains("alpha-panda kite instruments"),
        "{}",
        failed.reason
    );
    assert!(fake.orders().is_empty(), "no made-up symbol is ever sent");
}

#[tokio::test]
async fn a_crash_between_placing_and_acknowledging_does_not_place_twice() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let store = store().await;
    let signal = validated(INFY, OrderType::Market, None);
    {
        // Places the order, then "crashes": its outputs are never published and no checkpoint runs.
        let mut engine =
            TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(3600)), store.clone())
                .await
                .unwrap();
        let lost = handle(&mut engine, &signal, 0).await;
        assert_eq!(types(&lost), ["order_submitted", "order_ack"]);
    }
    assert_eq!(fake.orders().len(), 1);
    let first = fake.orders()[0].order_id.clone();

    // The restarted engine reads the same signal again (its offset was never committed).
    let mut engine = TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(3600)), store)
        .await
        .unwrap();
    let outputs = handle(&mut engine, &signal, 0).await;
    assert_eq!(types(&outputs), ["order_submitted", "order_ack"]);
    let Payload::OrderAck(ack) = &outputs[1].payload else {
        panic!("not an ack")
    };
    assert_eq!(ack.broker_order_id, first, "the existing order is adopted");
    assert_eq!(fake.orders().len(), 1, "the order was not placed twice");

    // And it is followed to its fill.
    assert!(fake.complete_order(&first, dec!(1500.10)));
    let later = engine.on_timer(signal.ts).await.unwrap();
    assert_eq!(types(&later), ["order_filled"]);
}

async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn eventually_events(log: &Log, topic: &str, count: usize) -> Vec<Envelope> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events: Vec<Envelope> = log
            .read_all(topic)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.value {
                alpha_panda_stream::RecordValue::Event(e) => Some((*e).clone()),
                alpha_panda_stream::RecordValue::Bytes(b) => Envelope::from_json(&b).ok(),
            })
            .collect();
        if events.len() >= count {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} events on {topic}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_signal_older_than_max_signal_age_is_not_placed() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let mut engine =
        TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(60)), store().await)
            .await
            .unwrap();
    let mut signal = validated(INFY, OrderType::Market, None);
    // Validated two minutes ago, read only now (an outage, a restart on another day).
    signal.ts = Timestamp::from_datetime(chrono::Utc::now() - chrono::Duration::seconds(120));
    let position = RecordPosition {
        topic: Arc::from(TopicMap::new(Broker::Zerodha).signals_validated().as_str()),
        partition: 0,
        offset: 0,
    };
    let outputs = engine
        .handle(Input {
            envelope: &signal,
            position: &position,
            now: Timestamp::from_datetime(chrono::Utc::now()),
        })
        .await
        .unwrap();
    assert_eq!(types(&outputs), ["order_submitted", "order_failed"]);
    let Payload::OrderFailed(failed) = &outputs[1].payload else {
        panic!("{:?}", outputs[1].payload)
    };
    assert!(
        failed.reason.starts_with("signal_too_old"),
        "{}",
        failed.reason
    );
    assert!(fake.orders().is_empty(), "an old signal reached Kite");
}

fn trader_with_sessions(fake: &FakeKite, store: &Store) -> ZerodhaTrader {
    trader(fake, Duration::from_secs(3600))
        .with_session_store(store.clone(), fake.config().api_key.clone())
}

fn alert_kinds(outputs: &[Output]) -> Vec<AlertKind> {
    outputs
        .iter()
        .filter_map(|o| match &o.payload {
            Payload::Alert(a) => {
                assert_eq!(o.topic, TopicMap::alerts());
                Some(a.kind)
            }
            _ => None,
        })
        .collect()
}

/// A token that expires mid-day halts the namespace (an alert, `session_expired` answers, no call
/// to Kite) and a new session stored by `kite login` resumes it without a restart.
#[tokio::test]
async fn an_expired_session_halts_zerodha_until_a_new_login_is_stored() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let store = store().await;
    let mut engine =
        TradingEngine::open_zerodha(trader_with_sessions(&fake, &store), store.clone())
            .await
            .unwrap();
    let first = handle(&mut engine, &validated(INFY, OrderType::Market, None), 0).await;
    assert_eq!(types(&first), ["order_submitted", "order_ack"]);

    fake.expire_token();
    let expired = handle(&mut engine, &validated(INFY, OrderType::Market, None), 1).await;
    assert_eq!(
        types(&expired),
        ["order_submitted", "order_failed", "alert"]
    );
    let Payload::OrderFailed(failed) = &expired[1].payload else {
        panic!("{:?}", expired[1].payload)
    };
    assert!(
        failed.reason.starts_with("session_expired"),
        "{}",
        failed.reason
    );
    assert_eq!(alert_kinds(&expired), [AlertKind::SessionExpired]);

    // Halted: the next signal is answered at once, without asking Kite.
    let requests = fake.requests();
    let halted = handle(&mut engine, &validated(INFY, OrderType::Market, None), 2).await;
    assert_eq!(types(&halted), ["order_submitted", "order_failed"]);
    assert_eq!(fake.requests(), requests, "a halted trader called Kite");

    // `alpha-panda kite login`: a new session, stored.
    let login = KiteClient::new(&fake.settings()).unwrap();
    let session = login
        .generate_session(&fake.config().request_token, &fake.config().api_secret)
        .await
        .unwrap();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    store
        .trading_sessions()
        .save(&TradingSession {
            api_key: fake.config().api_key.clone(),
            user_id: session.user_id.clone(),
            access_token: AccessToken::new(session.access_token.clone()),
            created_at: now,
            expires_at: alpha_panda_store::session_expiry(now),
        })
        .await
        .unwrap();
    let later = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(6));
    let resumed = engine.on_timer(later).await.unwrap();
    assert_eq!(alert_kinds(&resumed), [AlertKind::SessionRestored]);
    let placed = handle(&mut engine, &validated(INFY, OrderType::Market, None), 3).await;
    assert_eq!(types(&placed), ["order_submitted", "order_ack"]);
    assert_eq!(fake.orders().len(), 2);
}

/// An order filled in three trades, with a restart (the engine reopened from its checkpoint)
/// between the second and the third: each trade is one fill, none twice, none lost.
#[tokio::test]
async fn partial_fills_are_one_fill_per_trade_across_a_restart() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let log = Log::connect("memory://", &BTreeMap::new()).unwrap();
    for topic in TopicMap::all_topics(&[Broker::Zerodha]) {
        log.create_topic(&topic.name, 1, 1, 86_400_000)
            .await
            .unwrap();
    }
    let store = store().await;
    let config = ProcessorConfig {
        commit_batch: 1,
        commit_interval: Duration::from_millis(0),
        poll_timeout: Duration::from_millis(20),
        ..ProcessorConfig::default()
    };
    let run = |store: Store| {
        let log = log.clone();
        let config = config.clone();
        let fake = &fake;
        let trader = trader(fake, Duration::from_millis(50));
        async move {
            let engine = TradingEngine::open_zerodha(trader, store).await.unwrap();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(
                Processor::new(
                    engine,
                    log,
                    Arc::new(MemoryDedupStore::new()),
                    Arc::new(SystemClock),
                    config,
                )
                .run(shutdown.clone()),
            );
            (shutdown, task)
        }
    };
    let zerodha = TopicMap::new(Broker::Zerodha);
    let signal = validated(INFY, OrderType::Market, None);
    log.send(OutgoingRecord::event(
        zerodha.signals_validated(),
        signal.clone(),
    ))
    .await
    .unwrap();
    let (shutdown, task) = run(store.clone()).await;
    let placed = eventually("the order reaches Kite", || {
        fake.orders().into_iter().next()
    })
    .await;
    assert!(fake.fill(&placed.order_id, 2, dec!(1500.05)));
    assert!(fake.fill(&placed.order_id, 1, dec!(1500.10)));
    eventually_events(&log, &zerodha.orders_filled(), 2).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    // While the engine is down the last trade happens; the restarted one reports it, only it.
    assert!(fake.fill(&placed.order_id, 2, dec!(1500.20)));
    let (shutdown, task) = run(store.clone()).await;
    eventually_events(&log, &zerodha.orders_filled(), 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let fills = log.read_all(&zerodha.orders_filled()).await.unwrap();
    assert_eq!(fills.len(), 3, "a trade was reported twice or lost");
    let trades = &fake.orders()[0].trades;
    let mut quantities = Vec::new();
    for (record, trade) in fills.iter().zip(trades) {
        let alpha_panda_stream::RecordValue::Event(event) = &record.value else {
            panic!("not an event")
        };
        let Payload::OrderFilled(fill) = &event.payload else {
            panic!("not a fill")
        };
        assert_eq!(
            event.id,
            alpha_panda_services::trading_engine::zerodha::fill_event_id(
                signal.id,
                trade["trade_id"].as_str().unwrap()
            )
        );
        quantities.push(fill.quantity.0);
    }
    assert_eq!(quantities, [2, 1, 2]);
}

/// A placement whose answer is lost (Kite took the order, the answer never came) is not retried
/// blindly: it stays pending and is adopted from the order book by its tag; one that Kite never
/// took is failed, unplaced, once the grace has passed.
#[tokio::test]
async fn an_ambiguous_placement_is_resolved_by_its_tag() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let mut engine =
        TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(1)), store().await)
            .await
            .unwrap();
    // LIMIT orders: a protected MARKET order would also be cancelled after its timeout.
    let limit = Some(Price(dec!(1500)));
    let taken = validated(INFY, OrderType::Limit, limit);
    fake.fail_next_placement(true, 504, "NetworkException", "Gateway timeout");
    let outputs = handle(&mut engine, &taken, 0).await;
    assert_eq!(
        types(&outputs),
        ["order_submitted"],
        "no ack, no failure: pending"
    );
    assert_eq!(engine_open(&engine), 1);
    assert_eq!(fake.orders().len(), 1, "Kite took it");
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let resolved = engine.on_timer(now).await.unwrap();
    assert_eq!(types(&resolved), ["order_ack"]);
    assert_eq!(fake.orders().len(), 1, "placed once");

    let lost = validated(INFY, OrderType::Limit, limit);
    fake.fail_next_placement(false, 503, "NetworkException", "Service unavailable");
    let outputs = handle(&mut engine, &lost, 1).await;
    assert_eq!(types(&outputs), ["order_submitted"]);
    // Not in the book yet, within the grace: still pending.
    assert!(engine.on_timer(now).await.unwrap().is_empty());
    let after_grace = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(61));
    let failed = engine.on_timer(after_grace).await.unwrap();
    assert_eq!(types(&failed), ["order_failed"]);
    let Payload::OrderFailed(f) = &failed[0].payload else {
        panic!("{:?}", failed[0].payload)
    };
    assert!(
        f.reason.starts_with("placement_unconfirmed"),
        "{}",
        f.reason
    );
    assert_eq!(
        fake.orders().len(),
        1,
        "the lost placement was never placed again"
    );
}

/// A protected MARKET order that rests unfilled at its band is cancelled after the timeout, and
/// what did not fill is reported failed with the reason, and an alert.
#[tokio::test]
async fn a_protected_order_resting_at_its_band_is_cancelled() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let mut engine =
        TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(3600)), store().await)
            .await
            .unwrap();
    let signal = validated(INFY, OrderType::Market, None);
    assert_eq!(
        types(&handle(&mut engine, &signal, 0).await),
        ["order_submitted", "order_ack"]
    );
    let order_id = fake.orders()[0].order_id.clone();
    assert!(fake.fill(&order_id, 2, dec!(1500.05)));
    // Two of five filled, then nothing inside the band for 31 s.
    let later = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(31));
    // The cancel goes first, then the order's state is read: its trade and its end.
    let ended = engine.on_timer(later).await.unwrap();
    assert_eq!(types(&ended), ["order_filled", "order_failed", "alert"]);
    assert_eq!(fake.orders()[0].status(), Some("CANCELLED"));
    let Payload::OrderFailed(f) = &ended[1].payload else {
        panic!("{:?}", ended[1].payload)
    };
    assert_eq!(f.quantity, Quantity(3));
    assert!(f.reason.starts_with("rested_at_band"), "{}", f.reason);
    assert_eq!(alert_kinds(&ended), [AlertKind::OrderRestedAtBand]);
    assert_eq!(engine_open(&engine), 0);
}

fn engine_open(engine: &TradingEngine) -> usize {
    match engine.trader() {
        alpha_panda_services::trading_engine::Trader::Zerodha(live) => live.open_orders().len(),
        _ => 0,
    }
}

fn in_a_minute(minutes: i64) -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(61 * minutes))
}

/// Zerodha squares off the intraday position at 15:20 with an order the trader did not place: at
/// the next reconciliation its trade becomes the strategy's fill (id from the trade id), and the
/// positions agree with Kite's.
#[tokio::test]
async fn a_square_off_by_zerodha_becomes_the_strategys_fill() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let mut engine =
        TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(1)), store().await)
            .await
            .unwrap();
    let signal = validated(INFY, OrderType::Market, None);
    handle(&mut engine, &signal, 0).await;
    assert!(fake.complete_order(&fake.orders()[0].order_id, dec!(1500)));
    let filled = engine.on_timer(in_a_minute(0)).await.unwrap();
    assert_eq!(
        types(&filled),
        ["order_filled"],
        "no alert: the positions agree"
    );

    let square_off = fake.square_off("INFY", "MIS", dec!(1490)).unwrap();
    let reconciled = engine.on_timer(in_a_minute(1)).await.unwrap();
    assert_eq!(types(&reconciled), ["order_filled"]);
    let Payload::OrderFilled(fill) = &reconciled[0].payload else {
        panic!("{:?}", reconciled[0].payload)
    };
    assert_eq!((fill.side, fill.quantity), (Side::Sell, Quantity(5)));
    assert_eq!(fill.fill_price, Price(dec!(1490)));
    assert_eq!(fill.broker_order_id.as_deref(), Some(square_off.as_str()));
    assert_eq!(fill.strategy_id.as_str(), "ema_cross_infy");
    let order = fake
        .orders()
        .into_iter()
        .find(|o| o.order_id == square_off)
        .unwrap();
    let trade_id = order.trades[0]["trade_id"].as_str().unwrap().to_string();
    assert_eq!(
        reconciled[0].id,
        Some(
            alpha_panda_services::trading_engine::zerodha::external_fill_event_id(
                &trade_id,
                &fill.strategy_id
            )
        )
    );
    // Reconciled again: the trade is not applied twice.
    assert!(engine.on_timer(in_a_minute(2)).await.unwrap().is_empty());
    match engine.trader() {
        alpha_panda_services::trading_engine::Trader::Zerodha(live) => {
            assert!(live.held_positions().is_empty());
            assert!(live.mismatched().is_empty());
        }
        _ => unreachable!(),
    }
}

/// An order placed by hand in Kite that closes nothing of the namespace's: an alert, new entries
/// in the instrument refused (exits go), until the positions agree again.
#[tokio::test]
async fn a_manual_order_in_kite_halts_entries_until_the_positions_agree() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let mut engine =
        TradingEngine::open_zerodha(trader(&fake, Duration::from_secs(1)), store().await)
            .await
            .unwrap();
    handle(&mut engine, &validated(INFY, OrderType::Market, None), 0).await;
    assert!(fake.complete_order(&fake.orders()[0].order_id, dec!(1500)));
    engine.on_timer(in_a_minute(0)).await.unwrap();

    fake.place_manual("INFY", true, 3, dec!(1501));
    let flagged = engine.on_timer(in_a_minute(1)).await.unwrap();
    assert_eq!(alert_kinds(&flagged), [AlertKind::PositionMismatch]);

    let entry = handle(&mut engine, &validated(INFY, OrderType::Market, None), 1).await;
    assert_eq!(types(&entry), ["order_submitted", "order_failed"]);
    let Payload::OrderFailed(f) = &entry[1].payload else {
        panic!("{:?}", entry[1].payload)
    };
    assert!(f.reason.starts_with("position_mismatch"), "{}", f.reason);
    let exit = handle(
        &mut engine,
        &validated_side(INFY, Side::Sell, OrderType::Market, None),
        2,
    )
    .await;
    assert_eq!(
        types(&exit),
        ["order_submitted", "order_ack"],
        "an exit still goes"
    );

    // The person closes what they opened; the exit fills: Kite 0, the namespace 0.
    let exit_order = fake.orders().last().unwrap().order_id.clone();
    assert!(fake.complete_order(&exit_order, dec!(1502)));
    fake.place_manual("INFY", false, 3, dec!(1502));
    let agreed = engine.on_timer(in_a_minute(2)).await.unwrap();
    assert_eq!(alert_kinds(&agreed), [AlertKind::PositionReconciled]);
    let entry = handle(&mut engine, &validated(INFY, OrderType::Market, None), 3).await;
    assert_eq!(types(&entry), ["order_submitted", "order_ack"]);
}

/// The daily refresh writes the instruments master to the store; a running trader takes it up, so
/// a contract listed today can be traded without a restart.
#[tokio::test]
async fn a_running_trader_takes_up_the_refreshed_instruments_master() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let store = store().await;
    let client = KiteClient::new(&fake.settings())
        .unwrap()
        .with_access_token(fake.config().access_token.clone());
    // Built before the refresh: the registry knows nothing.
    let trader = ZerodhaTrader::new(
        Arc::new(client),
        Arc::new(InstrumentRegistry::from_rows(Vec::new())),
        ZerodhaConfig::default(),
    )
    .with_session_store(store.clone(), fake.config().api_key.clone());
    let mut engine = TradingEngine::open_zerodha(trader, store.clone())
        .await
        .unwrap();
    let start = Timestamp::from_datetime(chrono::Utc::now());
    engine.on_timer(start).await.unwrap();
    let unknown = handle(&mut engine, &validated(INFY, OrderType::Market, None), 0).await;
    assert_eq!(types(&unknown), ["order_submitted", "order_failed"]);

    store
        .instruments()
        .upsert_many(&parse_instruments_csv(DEFAULT_INSTRUMENTS_CSV.as_bytes()).unwrap())
        .await
        .unwrap();
    let later = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::minutes(16));
    engine.on_timer(later).await.unwrap();
    let placed = handle(&mut engine, &validated(INFY, OrderType::Market, None), 1).await;
    assert_eq!(types(&placed), ["order_submitted", "order_ack"]);
}

/// An order update from the websocket is applied at the next drain, without waiting for the poll
/// of Kite's order history.
#[tokio::test]
async fn order_updates_are_applied_between_polls() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let (updates, received) = tokio::sync::mpsc::channel(16);
    let trader = trader(&fake, Duration::from_secs(3600)).with_order_updates(received);
    let mut engine = TradingEngine::open_zerodha(trader, store().await)
        .await
        .unwrap();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    handle(&mut engine, &validated(INFY, OrderType::Market, None), 0).await;
    // The first timer asks Kite; the order is open, nothing to report.
    assert!(engine.on_timer(now).await.unwrap().is_empty());
    let order_id = fake.orders()[0].order_id.clone();
    assert!(fake.complete_order(&order_id, dec!(1500.5)));
    // Within the poll interval, without an update: nothing.
    let soon = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::milliseconds(200));
    assert!(engine.on_timer(soon).await.unwrap().is_empty());
    // The update arrives: applied at once.
    let client = KiteClient::new(&fake.settings())
        .unwrap()
        .with_access_token(fake.config().access_token.clone());
    let order = client
        .orders()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.order_id.as_str() == order_id)
        .unwrap();
    updates
        .send(alpha_panda_kite::OrderUpdate {
            order,
            raw: serde_json::Value::Null,
        })
        .await
        .unwrap();
    let applied = engine.on_timer(soon).await.unwrap();
    assert_eq!(types(&applied), ["order_filled"]);
}

fn fills_of(outputs: &[Output]) -> Vec<alpha_panda_core::OrderFilled> {
    outputs
        .iter()
        .filter_map(|o| match &o.payload {
            Payload::OrderFilled(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn fees_sum(fills: &[&alpha_panda_core::OrderFilled]) -> alpha_panda_core::FeeBreakdown {
    fills
        .iter()
        .fold(alpha_panda_core::FeeBreakdown::default(), |sum, f| {
            sum.plus(&f.fees)
        })
}

/// Above the instrument's freeze quantity the order goes with Kite's autoslice: five units at a
/// freeze quantity of two are three Kite orders (2, 2, 1), acknowledged once. Every trade of
/// every slice is one fill of the one order, charged per slice from Kite's contract note (the
/// ₹20 brokerage cap is per Kite order), and the order ends when every slice did: here one
/// slice is cancelled unfilled, so one unit is reported failed.
#[tokio::test]
async fn an_order_above_the_freeze_quantity_is_sliced_and_followed_to_its_end() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    fake.set_freeze_quantity("INFY", 2);
    let config = ZerodhaConfig {
        poll_interval: Duration::from_millis(1),
        freeze_quantities: [("INFY".to_string(), 2)].into_iter().collect(),
        ..ZerodhaConfig::default()
    };
    let mut engine = TradingEngine::open_zerodha(trader_with(&fake, config), store().await)
        .await
        .unwrap();
    let signal = validated(INFY, OrderType::Market, None);
    assert_eq!(
        types(&handle(&mut engine, &signal, 0).await),
        ["order_submitted", "order_ack"]
    );
    let slices = fake.orders();
    let quantities: Vec<u32> = slices.iter().map(|o| o.quantity()).collect();
    assert_eq!(quantities, [2, 2, 1]);
    let tag = order_tag(signal.id);
    assert!(slices
        .iter()
        .all(|o| o.form.get("tag") == Some(&tag) && !o.form.contains_key("autoslice")));
    // The first slice fills whole, the second in two trades, the third is cancelled unfilled.
    assert!(fake.fill(&slices[0].order_id, 2, dec!(1500.05)));
    assert!(fake.fill(&slices[1].order_id, 1, dec!(1500.10)));
    assert!(fake.fill(&slices[1].order_id, 1, dec!(1500.20)));
    fake.cancel(&slices[2].order_id).unwrap();
    let later = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(1));
    let ended = engine.on_timer(later).await.unwrap();
    let fills = fills_of(&ended);
    assert_eq!(fills.len(), 3, "{:?}", types(&ended));
    assert_eq!(
        fills.iter().map(|f| f.quantity.0).sum::<u32>(),
        4,
        "every trade once"
    );
    assert!(fills
        .iter()
        .all(|f| f.fees_source == alpha_panda_core::FeesSource::ContractNote));
    // The fees of the second slice's two fills add up to Kite's contract note of that slice.
    let client = KiteClient::new(&fake.settings())
        .unwrap()
        .with_access_token(fake.config().access_token.clone());
    let second: Vec<&alpha_panda_core::OrderFilled> = fills
        .iter()
        .filter(|f| f.broker_order_id.as_deref() == Some(slices[1].order_id.as_str()))
        .collect();
    assert_eq!(second.len(), 2);
    let note = client
        .contract_note(&[alpha_panda_kite::ContractNoteOrder {
            order_id: slices[1].order_id.clone(),
            exchange: "NSE".into(),
            tradingsymbol: "INFY".into(),
            transaction_type: "BUY".into(),
            variety: "regular".into(),
            product: "MIS".into(),
            order_type: "MARKET".into(),
            quantity: 2,
            average_price: dec!(1500.15),
        }])
        .await
        .unwrap();
    let paisa = |d: rust_decimal::Decimal| alpha_panda_core::Money(d).round_to_paisa();
    let charges = &note[0].charges;
    let expected = alpha_panda_core::FeeBreakdown::itemised(
        paisa(charges.brokerage),
        paisa(charges.transaction_tax),
        paisa(charges.exchange_turnover_charge),
        paisa(charges.sebi_turnover_charge),
        paisa(charges.gst.total),
        paisa(charges.stamp_duty),
    );
    assert_eq!(fees_sum(&second), expected);
    let failed: Vec<&Output> = ended
        .iter()
        .filter(|o| matches!(o.payload, Payload::OrderFailed(_)))
        .collect();
    assert_eq!(failed.len(), 1);
    let Payload::OrderFailed(f) = &failed[0].payload else {
        unreachable!()
    };
    assert_eq!(f.quantity, Quantity(1));
    assert!(f.reason.starts_with("1 of 3 slices failed"), "{}", f.reason);
    assert_eq!(engine_open(&engine), 0);
    // Nothing more comes of it.
    let again = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(2));
    assert!(engine.on_timer(again).await.unwrap().is_empty());
}

/// An order that would need more than ten slices of its freeze quantity is not sent.
#[tokio::test]
async fn an_order_needing_more_than_ten_slices_is_refused_before_kite() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let config = ZerodhaConfig {
        freeze_quantities: [("INFY".to_string(), 2)].into_iter().collect(),
        ..ZerodhaConfig::default()
    };
    let mut engine = TradingEngine::open_zerodha(trader_with(&fake, config), store().await)
        .await
        .unwrap();
    let signal = validated_units(INFY, Side::Buy, 21, OrderType::Market, None);
    let out = handle(&mut engine, &signal, 0).await;
    assert_eq!(types(&out), ["order_submitted", "order_failed"]);
    let Payload::OrderFailed(f) = &out[1].payload else {
        unreachable!()
    };
    assert!(f.reason.starts_with("exceeds_freeze_limit"), "{}", f.reason);
    assert!(
        f.reason.contains("zerodha.freeze_quantities"),
        "{}",
        f.reason
    );
    assert!(fake.orders().is_empty());
}

/// Without Kite's contract note the fills carry the charge schedule's figures, marked as an
/// estimate; a CNC bought and sold on the same day is charged as intraday: the day's two fills
/// add up to an intraday buy and an intraday sell, though the buy was charged as delivery when it
/// filled.
#[tokio::test]
async fn without_the_contract_note_fees_are_estimates_and_a_same_day_cnc_is_intraday() {
    use alpha_panda_services::trading_engine::charges::{
        ChargeSchedule, Exchange, Fill, OrderFills, OrderTerms, Segment,
    };
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    fake.set_contract_note_unavailable(true);
    let config = ZerodhaConfig {
        product: "CNC".into(),
        poll_interval: Duration::from_millis(1),
        ..ZerodhaConfig::default()
    };
    let mut engine = TradingEngine::open_zerodha(trader_with(&fake, config), store().await)
        .await
        .unwrap();
    let buy = validated_units(INFY, Side::Buy, 500, OrderType::Market, None);
    handle(&mut engine, &buy, 0).await;
    assert!(fake.complete_order(&fake.orders()[0].order_id, dec!(1000)));
    let at = |s: i64| Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(s));
    let bought = fills_of(&engine.on_timer(at(1)).await.unwrap());
    assert_eq!(bought.len(), 1);
    assert_eq!(
        bought[0].fees_source,
        alpha_panda_core::FeesSource::Estimate
    );
    let sell = validated_units(INFY, Side::Sell, 500, OrderType::Market, None);
    handle(&mut engine, &sell, 1).await;
    assert!(fake.complete_order(&fake.orders()[1].order_id, dec!(1000)));
    let sold = fills_of(&engine.on_timer(at(2)).await.unwrap());
    assert_eq!(sold.len(), 1);
    assert_eq!(sold[0].fees_source, alpha_panda_core::FeesSource::Estimate);

    let schedule = ChargeSchedule::zerodha();
    // The IST trading day.
    let date = (bought[0].filled_at.as_datetime() + chrono::Duration::minutes(330)).date_naive();
    let charge = |side: Side, segment: Segment| {
        schedule
            .charge_order(OrderFills {
                terms: OrderTerms {
                    exchange: Exchange::Nse,
                    segment,
                    side,
                    trade_date: date,
                },
                fills: &[Fill {
                    quantity: Quantity(500),
                    price: Price(dec!(1000)),
                }],
            })
            .unwrap()
    };
    // When it filled, the buy was a delivery buy.
    assert_eq!(bought[0].fees, charge(Side::Buy, Segment::EquityDelivery));
    let day = fees_sum(&[&bought[0], &sold[0]]);
    let intraday = charge(Side::Buy, Segment::EquityIntraday)
        .plus(&charge(Side::Sell, Segment::EquityIntraday));
    assert_eq!(day, intraday);
}

/// A sell from delivery (CNC shares held overnight) pays the depository charge once per scrip
/// and day, on top of the contract note's lines and in the fill's total; the day's second sell of
/// the scrip pays none.
#[tokio::test]
async fn a_delivery_sell_pays_the_dp_charge_once_per_scrip_and_day() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let config = ZerodhaConfig {
        product: "CNC".into(),
        poll_interval: Duration::from_millis(1),
        ..ZerodhaConfig::default()
    };
    let mut engine = TradingEngine::open_zerodha(trader_with(&fake, config), store().await)
        .await
        .unwrap();
    let at = |s: i64| Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(s));
    let mut sold = Vec::new();
    for n in 0..2 {
        let sell = validated_units(INFY, Side::Sell, 10, OrderType::Market, None);
        handle(&mut engine, &sell, n).await;
        let order_id = fake.orders()[n as usize].order_id.clone();
        assert!(fake.complete_order(&order_id, dec!(1500)));
        sold.extend(fills_of(&engine.on_timer(at(n + 1)).await.unwrap()));
    }
    assert_eq!(sold.len(), 2);
    let date = (sold[0].filled_at.as_datetime() + chrono::Duration::minutes(330)).date_naive();
    let dp = alpha_panda_services::trading_engine::ChargeSchedule::zerodha()
        .dp_charge(date)
        .unwrap();
    assert_eq!(sold[0].fees.dp_charges, dp.total);
    assert_eq!(
        sold[0].fees.total.0,
        sold[0].fees.brokerage.0
            + sold[0].fees.stt.0
            + sold[0].fees.exchange_charges.0
            + sold[0].fees.sebi_charges.0
            + sold[0].fees.gst.0
            + sold[0].fees.stamp_duty.0
            + dp.total.0
    );
    assert_eq!(
        sold[0].fees_source,
        alpha_panda_core::FeesSource::ContractNote
    );
    assert!(sold[1].fees.dp_charges.is_zero(), "{:?}", sold[1].fees);
}
