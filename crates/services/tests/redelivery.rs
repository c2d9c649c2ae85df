//! Dedup that outlives the cache (review H3): a fill re-sent after a restart, under a new offset and
//! with a dedup store that forgot it (a memory cache, an evicted Redis key), is not applied again;
//! the ledger, which holds every fill once, is what the portfolio manager asks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    Broker, Envelope, EventBroker, ExecutionMode, FeeBreakdown, InstrumentToken, Money,
    OrderFilled, OrderId, Payload, PortfolioId, Price, Quantity, Side, StrategyId, SystemClock,
    TopicMap,
};
use alpha_panda_services::portfolio_manager::service::PortfolioStats;
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::{SqlBackend, Store};
use alpha_panda_stream::memory::{MemoryLog, MemoryLogConfig};
use alpha_panda_stream::{Log, MemoryDedupStore, OutgoingRecord, Processor, ProcessorConfig};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

mod common;

use common::{at, open_portfolio_manager};

fn buy(n: i64) -> Envelope {
    Envelope::root(
        Payload::OrderFilled(OrderFilled {
            order_id: OrderId::new(format!("zerodha-{n}")).unwrap(),
            broker_order_id: Some(format!("2501010000000{n}")),
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: InstrumentToken(common::INFY),
            tradingsymbol: Some("INFY".into()),
            side: Side::Buy,
            quantity: Quantity(10),
            fill_price: Price(Decimal::from(1500)),
            fees_source: Default::default(),
            fees: FeeBreakdown {
                total: Money(Decimal::ONE),
                brokerage: Money(Decimal::ONE),
                ..FeeBreakdown::default()
            },
            execution_mode: ExecutionMode::Zerodha,
            filled_at: at(n),
        }),
        "s1:408065".into(),
        EventBroker::Paper,
        "trading_engine",
        at(n),
    )
}

/// The paper portfolio manager over `store` and `log` with a dedup store of its own (a process
/// start on a memory cache), until it has read `expected_reads` records; then a graceful stop.
async fn run_once(store: &Store, log: &Log, expected_reads: u64) -> Arc<PortfolioStats> {
    let manager = open_portfolio_manager(store).await;
    let stats = manager.stats();
    let processor = Processor::new(
        manager,
        log.clone(),
        Arc::new(MemoryDedupStore::new()),
        Arc::new(SystemClock),
        ProcessorConfig {
            commit_interval: Duration::from_millis(10),
            poll_timeout: Duration::from_millis(10),
            ..ProcessorConfig::default()
        },
    );
    let runtime = processor.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(processor.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alpha_panda_stream::ProcessorStats::get(&runtime.events_in) < expected_reads
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    stats
}

async fn a_fill_sent_again_after_a_restart_is_applied_once(backend: SqlBackend) {
    let db = TestStore::new(backend).await.unwrap();
    let log = Log::Memory(MemoryLog::new(MemoryLogConfig::default()));
    let topic = TopicMap::new(Broker::Paper).orders_filled();
    let fill = buy(1);
    log.send(OutgoingRecord::event(topic.clone(), fill.clone()))
        .await
        .unwrap();
    let first = run_once(&db.store, &log, 1).await;
    assert_eq!(first.fills_applied.load(Ordering::Relaxed), 1);

    // The trading engine restarted before its own checkpoint and reports the fill again, under
    // the same id, at the next offset; the portfolio manager restarts with an empty dedup store.
    log.send(OutgoingRecord::event(topic.clone(), fill.clone()))
        .await
        .unwrap();
    let second = run_once(&db.store, &log, 1).await;
    assert_eq!(second.fills_applied.load(Ordering::Relaxed), 0);
    assert_eq!(second.duplicate_fills.load(Ordering::Relaxed), 1);

    let manager = open_portfolio_manager(&db.store).await;
    let held: i64 = manager
        .portfolios()
        .flat_map(|p| p.positions.values())
        .map(|position| position.quantity)
        .sum();
    assert_eq!(held, 10, "the fill was applied twice");
    assert_eq!(manager.ledger_duplicates().load(Ordering::Relaxed), 0);
    let ledger = db
        .store
        .ledger()
        .fills_for_portfolio(&PortfolioId::new("paper:s1").unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(ledger.len(), 1);
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn sqlite_a_fill_sent_again_after_a_restart_is_applied_once() {
    a_fill_sent_again_after_a_restart_is_applied_once(SqlBackend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_fill_sent_again_after_a_restart_is_applied_once() {
    a_fill_sent_again_after_a_restart_is_applied_once(SqlBackend::Postgres).await;
}
