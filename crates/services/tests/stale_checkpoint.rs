//! Checkpoints know their log (ARCHITECTURE §4 rule 5): a portfolio manager checkpointed on one
//! memory log and restarted on a fresh one (what every second `alpha-panda run` in one folder does)
//! keeps its portfolios and skips none of the new log's fills, although their offsets are below the
//! saved ones.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    Broker, Envelope, EventBroker, ExecutionMode, FeeBreakdown, InstrumentToken, Money,
    OrderFilled, OrderId, Payload, PortfolioId, Price, Quantity, Side, StrategyId, SystemClock,
    TopicMap,
};
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::SqlBackend;
use alpha_panda_stream::memory::{MemoryLog, MemoryLogConfig};
use alpha_panda_stream::{Log, MemoryDedupStore, OutgoingRecord, Processor, ProcessorConfig};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

mod common;

use common::{at, open_portfolio_manager};

fn buy(n: i64, quantity: u32, price: i64) -> Envelope {
    Envelope::root(
        Payload::OrderFilled(OrderFilled {
            order_id: OrderId::new(format!("paper-{n}")).unwrap(),
            broker_order_id: None,
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: InstrumentToken(common::INFY),
            tradingsymbol: Some("INFY".into()),
            side: Side::Buy,
            quantity: Quantity(quantity),
            fill_price: Price(Decimal::from(price)),
            fees_source: Default::default(),
            fees: FeeBreakdown {
                total: Money(Decimal::ONE),
                brokerage: Money(Decimal::ONE),
                ..FeeBreakdown::default()
            },
            execution_mode: ExecutionMode::Paper,
            filled_at: at(n),
        }),
        "s1:408065".into(),
        EventBroker::Paper,
        "trading_engine",
        at(n),
    )
}

/// Runs the paper portfolio manager over `store` on a fresh memory log, publishes `fills` (one
/// key, so one partition, offsets from 0), waits until it applied them and stops it gracefully.
async fn run_on_fresh_log(store: &alpha_panda_store::Store, fills: Vec<Envelope>) -> u64 {
    let log = Log::Memory(MemoryLog::new(MemoryLogConfig::default()));
    run_on(&log, store, fills).await
}

/// As [`run_on_fresh_log`], on `log`.
async fn run_on(log: &Log, store: &alpha_panda_store::Store, fills: Vec<Envelope>) -> u64 {
    let manager = open_portfolio_manager(store).await;
    let stats = manager.stats();
    let config = ProcessorConfig {
        commit_interval: Duration::from_millis(10),
        poll_timeout: Duration::from_millis(10),
        ..ProcessorConfig::default()
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Processor::new(
            manager,
            log.clone(),
            Arc::new(MemoryDedupStore::new()),
            Arc::new(SystemClock),
            config,
        )
        .run(shutdown.clone()),
    );
    let expected = fills.len() as u64;
    let topic = TopicMap::new(Broker::Paper).orders_filled();
    for fill in fills {
        log.send(OutgoingRecord::event(topic.clone(), fill))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats.fills_applied.load(Ordering::Relaxed) < expected
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A little longer: a fill wrongly skipped would show as fewer applied, not as a hang.
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    stats.fills_applied.load(Ordering::Relaxed)
}

async fn second_run_on_a_fresh_log_skips_nothing(backend: SqlBackend) {
    let db = TestStore::new(backend).await.unwrap();
    assert_eq!(
        run_on_fresh_log(
            &db.store,
            vec![buy(1, 1, 100), buy(2, 1, 101), buy(3, 1, 102)]
        )
        .await,
        3
    );
    // The new log's offsets 0..3 are below the checkpoint's next offset 3 of the same partition.
    assert_eq!(
        run_on_fresh_log(
            &db.store,
            vec![buy(4, 1, 103), buy(5, 1, 104), buy(6, 1, 105)]
        )
        .await,
        3,
        "the second run must apply every fill of its own log"
    );
    let ledger = db
        .store
        .ledger()
        .fills_for_portfolio(&PortfolioId::new("paper:s1").unwrap(), 100)
        .await
        .unwrap();
    assert_eq!(ledger.len(), 6);

    // The state outlived the first log: the portfolio holds all six units.
    let manager = open_portfolio_manager(&db.store).await;
    let held: i64 = manager
        .portfolios()
        .flat_map(|p| p.positions.values())
        .map(|position| position.quantity)
        .sum();
    assert_eq!(held, 6);
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn sqlite_second_run_on_a_fresh_log_skips_nothing() {
    second_run_on_a_fresh_log_skips_nothing(SqlBackend::Sqlite).await;
}

#[tokio::test]
async fn postgres_second_run_on_a_fresh_log_skips_nothing() {
    second_run_on_a_fresh_log_skips_nothing(SqlBackend::Postgres).await;
}

/// A Kafka topic deleted and created again keeps its name and its cluster's id; only its records
/// differ. Two tansu brokers with one cluster id stand for that: the checkpoint's last event is
/// not at its offset in the new topic, so its offsets are dropped and nothing is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_anew_on_the_same_cluster_skips_nothing() {
    use alpha_panda_stream::testing::TansuBroker;
    let db = TestStore::new(SqlBackend::Postgres).await.unwrap();
    let mut applied = Vec::new();
    for (run, first) in [(0, 1), (1, 4)] {
        let broker = TansuBroker::start().unwrap();
        let log = Log::connect(&broker.log_url(), &Default::default()).unwrap();
        for topic in TopicMap::all_topics(&[Broker::Paper]) {
            log.create_topic(&topic.name, 1, 1, 86_400_000)
                .await
                .unwrap();
        }
        let fills = (first..first + 3).map(|n| buy(n, 1, 100 + n)).collect();
        applied.push(run_on(&log, &db.store, fills).await);
        assert_eq!(applied[run], 3, "run {run} applied {applied:?}");
    }
    let manager = open_portfolio_manager(&db.store).await;
    let held: i64 = manager
        .portfolios()
        .flat_map(|p| p.positions.values())
        .map(|position| position.quantity)
        .sum();
    assert_eq!(held, 6);
    db.cleanup().await.unwrap();
}
