//! The portfolio manager reads its own PnL snapshots back from the log, stores each with a
//! validation verdict, and counts (never crashes on) a snapshot whose figures do not hold.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use alpha_panda_core::{
    Envelope, EventBroker, ExecutionMode, FeeBreakdown, InstrumentToken, Money, OrderFilled,
    OrderId, Payload, PnlSnapshot, PortfolioId, Price, Quantity, Side, StrategyId,
};
use alpha_panda_services::portfolio_manager::service::PortfolioManager;
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::{SqlBackend, ValidationStatus};
use alpha_panda_stream::{checkpoint_now, CommitOffset, Handler};
use rust_decimal::Decimal;

mod common;

use common::{at, open_portfolio_manager};

async fn deliver(manager: &mut PortfolioManager, topic: &str, offset: i64, payload: Payload) {
    let envelope = Envelope::root(payload, "k".into(), EventBroker::Paper, "test", at(offset));
    common::deliver(manager, topic, offset, &envelope, at(10))
        .await
        .expect("a bad snapshot is recorded, never an error");
}

#[tokio::test]
async fn snapshots_read_back_are_validated_and_mismatches_counted() {
    let db = TestStore::new(SqlBackend::Sqlite).await.unwrap();
    let mut manager = open_portfolio_manager(&db.store).await;
    deliver(
        &mut manager,
        "paper.orders.filled",
        0,
        Payload::OrderFilled(OrderFilled {
            order_id: OrderId::new("paper-1").unwrap(),
            broker_order_id: None,
            strategy_id: StrategyId::new("s1").unwrap(),
            instrument_token: InstrumentToken(408065),
            tradingsymbol: None,
            side: Side::Buy,
            quantity: Quantity(3),
            fill_price: Price(Decimal::from(100)),
            fees: FeeBreakdown::default(),
            fees_source: Default::default(),
            execution_mode: ExecutionMode::Paper,
            filled_at: at(1),
        }),
    )
    .await;

    let outputs = manager.on_timer(at(5)).await.unwrap();
    assert_eq!(outputs.len(), 1);
    let Payload::PnlSnapshot(produced) = outputs[0].payload.clone() else {
        panic!("a pnl snapshot")
    };
    assert!(produced.checksum_is_valid());

    // Read back: the genuine one, one whose figures were altered after sealing, and one resealed
    // with figures that differ from what this manager produced for that instant.
    let mut tampered = produced.clone();
    tampered.realized_pnl = Money(Decimal::from(1_000));
    let mut diverged: PnlSnapshot = produced.clone();
    diverged.cash = Money(diverged.cash.0 + Decimal::ONE);
    let diverged = diverged.seal();
    for (offset, snapshot) in [(0, produced.clone()), (1, tampered), (2, diverged)] {
        deliver(
            &mut manager,
            "paper.pnl.snapshots",
            offset,
            Payload::PnlSnapshot(snapshot),
        )
        .await;
    }
    assert_eq!(
        manager.stats().snapshot_mismatches.load(Ordering::Relaxed),
        2
    );

    checkpoint_now(
        &mut manager,
        &[CommitOffset {
            topic: Arc::from("paper.pnl.snapshots"),
            partition: 0,
            next_offset: 3,
            last_event_id: None,
        }],
    )
    .await
    .unwrap();
    let stored = db
        .store
        .pnl_snapshots()
        .list(&PortfolioId::new("paper:s1").unwrap(), 10)
        .await
        .unwrap();
    let mut statuses: Vec<ValidationStatus> = stored.iter().map(|s| s.validation_status).collect();
    statuses.sort_by_key(|s| s.as_str());
    assert_eq!(
        statuses,
        vec![
            ValidationStatus::ChecksumMismatch,
            ValidationStatus::Diverged,
            ValidationStatus::Valid
        ]
    );
    db.cleanup().await.unwrap();
}
