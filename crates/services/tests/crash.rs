//! Crash safety of a stateful service (ARCHITECTURE §4 rule 4), on both SQL backends: the portfolio
//! manager writes its ledger effects and its checkpoint in one transaction, the process dies before
//! the log commit, and the restarted service — which the log hands every uncommitted input again —
//! ends with each fill applied and recorded exactly once.

use std::sync::Arc;

use alpha_panda_core::{
    Envelope, EventBroker, ExecutionMode, FeeBreakdown, InstrumentToken, Money, OrderFilled,
    OrderId, Payload, PortfolioId, Price, Quantity, Side, StrategyId,
};
use alpha_panda_services::portfolio_manager::service::PortfolioManager;
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::{SqlBackend, Store};
use alpha_panda_stream::{checkpoint_now, CommitOffset, Handler};
use rust_decimal::Decimal;

mod common;

use common::{at, infy_tick, open_portfolio_manager};

const FILLS: &str = "paper.orders.filled";
const TICKS: &str = "market.ticks";

fn fill(n: i64, side: Side, quantity: u32, price: i64) -> Envelope {
    Envelope::root(
        Payload::OrderFilled(OrderFilled {
            order_id: OrderId::new(format!("paper-{n}")).unwrap(),
            broker_order_id: None,
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: InstrumentToken(408065),
            tradingsymbol: Some("INFY".into()),
            side,
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

/// The log as the service sees it: (topic, offset, event), in delivery order.
fn log() -> Vec<(&'static str, i64, Envelope)> {
    vec![
        (FILLS, 0, fill(1, Side::Buy, 10, 100)),
        (FILLS, 1, fill(2, Side::Buy, 10, 110)),
        (TICKS, 0, infy_tick(100, 120)),
        (FILLS, 2, fill(3, Side::Sell, 5, 130)),
        (FILLS, 3, fill(4, Side::Sell, 5, 90)),
        (TICKS, 1, infy_tick(100, 95)),
    ]
}

/// The order ids of every fill in the ledger, sorted.
async fn ledger_order_ids(store: &Store) -> Vec<String> {
    let ledger = store
        .ledger()
        .fills_for_portfolio(&PortfolioId::new("paper:s1").unwrap(), 100)
        .await
        .unwrap();
    let mut ids: Vec<String> = ledger.iter().map(|f| f.fill.order_id.to_string()).collect();
    ids.sort();
    ids
}

async fn deliver(manager: &mut PortfolioManager, topic: &str, offset: i64, envelope: &Envelope) {
    let outputs = common::deliver(manager, topic, offset, envelope, at(200))
        .await
        .unwrap();
    assert!(outputs.is_empty());
}

fn offsets(fills_next: i64, ticks_next: i64) -> Vec<CommitOffset> {
    vec![
        CommitOffset {
            topic: Arc::from(FILLS),
            partition: 0,
            next_offset: fills_next,
            last_event_id: None,
        },
        CommitOffset {
            topic: Arc::from(TICKS),
            partition: 0,
            next_offset: ticks_next,
            last_event_id: None,
        },
    ]
}

async fn killed_between_effects_and_commit(backend: SqlBackend) {
    let db = TestStore::new(backend).await.unwrap();
    let store = db.store.clone();
    let log = log();

    // First life: the first three inputs are handled and checkpointed (effects + state + offsets in
    // one transaction); the fourth is handled but not yet checkpointed; then the process dies before
    // the log commit, so the log will hand every input out again.
    let mut first = open_portfolio_manager(&store).await;
    for (topic, offset, event) in &log[..3] {
        deliver(&mut first, topic, *offset, event).await;
    }
    checkpoint_now(&mut first, &offsets(2, 1)).await.unwrap();
    deliver(&mut first, log[3].0, log[3].1, &log[3].2).await;
    drop(first);

    // Second life: everything is delivered again from the start.
    let mut second = open_portfolio_manager(&store).await;
    for (topic, offset, event) in &log {
        deliver(&mut second, topic, *offset, event).await;
    }
    checkpoint_now(&mut second, &offsets(4, 2)).await.unwrap();

    // The state shows each fill once: bought 10@100 and 10@110 (avg 105), sold 5@130 and 5@90.
    let portfolio = second.portfolios().next().expect("one portfolio");
    let position = &portfolio.positions[&InstrumentToken(408065)];
    assert_eq!(position.quantity, 10);
    assert_eq!(position.average_price, Decimal::from(105));
    assert_eq!(portfolio.realized_pnl, Decimal::from(5 * 25 + 5 * -15));
    assert_eq!(portfolio.fees, Decimal::from(4));
    assert_eq!(
        portfolio.cash,
        Decimal::from(1_000_000 - 1000 - 1100 + 650 + 450 - 4)
    );

    // The ledger holds each fill once.
    assert_eq!(
        ledger_order_ids(&store).await,
        ["paper-1", "paper-2", "paper-3", "paper-4"]
    );

    // A third life after the final checkpoint changes nothing.
    let mut third = open_portfolio_manager(&store).await;
    for (topic, offset, event) in &log {
        deliver(&mut third, topic, *offset, event).await;
    }
    let again = third.portfolios().next().unwrap();
    assert_eq!(again.realized_pnl, portfolio.realized_pnl);
    assert_eq!(again.cash, portfolio.cash);
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn sqlite_killed_between_effects_and_commit() {
    killed_between_effects_and_commit(SqlBackend::Sqlite).await;
}

#[tokio::test]
async fn postgres_killed_between_effects_and_commit() {
    killed_between_effects_and_commit(SqlBackend::Postgres).await;
}

/// A checkpoint write that fails (the database went away while it ran in the background) hands its
/// ledger effects back: the next checkpoint writes them, and the ledger holds every fill once.
async fn failed_background_write_keeps_its_effects(backend: SqlBackend) {
    let db = TestStore::new(backend).await.unwrap();
    let store = db.store.clone();
    let log = log();
    let mut manager = open_portfolio_manager(&store).await;
    for (topic, offset, event) in &log[..2] {
        deliver(&mut manager, topic, *offset, event).await;
    }
    // The write is begun (its snapshot taken) but never completes: the runtime reports a failure.
    let first = offsets(2, 0);
    let write = manager
        .begin_checkpoint(&first)
        .unwrap()
        .expect("two fills to write");
    drop(write);
    let failure = alpha_panda_stream::HandlerError::infrastructure("database went away");
    manager.end_checkpoint(&first, Err(&failure));

    // More inputs arrive; the next checkpoint carries the two earlier fills as well.
    for (topic, offset, event) in &log[2..] {
        deliver(&mut manager, topic, *offset, event).await;
    }
    checkpoint_now(&mut manager, &offsets(4, 2)).await.unwrap();
    assert_eq!(
        ledger_order_ids(&store).await,
        ["paper-1", "paper-2", "paper-3", "paper-4"]
    );

    // And the saved offsets are the second checkpoint's: a restart skips all six inputs.
    let mut restarted = open_portfolio_manager(&store).await;
    for (topic, offset, event) in &log {
        deliver(&mut restarted, topic, *offset, event).await;
    }
    let portfolio = restarted.portfolios().next().expect("one portfolio");
    assert_eq!(portfolio.positions[&InstrumentToken(408065)].quantity, 10);
    assert_eq!(portfolio.fees, Decimal::from(4));
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn sqlite_failed_background_write_keeps_its_effects() {
    failed_background_write_keeps_its_effects(SqlBackend::Sqlite).await;
}

#[tokio::test]
async fn postgres_failed_background_write_keeps_its_effects() {
    failed_background_write_keeps_its_effects(SqlBackend::Postgres).await;
}
