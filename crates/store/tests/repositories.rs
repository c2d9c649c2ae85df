//! Every repository exercised on both backends: real PostgreSQL (a fresh schema per test) and SQLite
//! (a file in a temporary directory).

use std::future::Future;
use std::str::FromStr;

use alpha_panda_core::{
    Broker, Environment, ErrorClass, EventId, ExecutionMode, FeeBreakdown, Instrument,
    InstrumentToken, Money, OrderAck, OrderFailed, OrderFilled, OrderId, OrderSubmitted, OrderType,
    PnlSnapshot, PortfolioId, PositionSnapshot, Price, Quantity, Side, SnapshotType, StrategyId,
    Timestamp,
};
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::{
    apply_policy, session_expiry, AccessToken, Checkpoint, CheckpointOffset, KillSwitch,
    OrderRecord, OrderStatus, Role, SqlBackend, Store, StoreError, StrategyConfiguration,
    TradingSession, ValidationStatus,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

/// Runs `case` on a fresh migrated store of `backend`, cleans up, then re-raises any panic.
async fn on<F, Fut>(backend: SqlBackend, case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestStore::new(backend).await.unwrap();
    let outcome = tokio::spawn(case(db.store.clone())).await;
    db.cleanup().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Like [`on`], but without applying migrations first.
async fn on_unmigrated<F, Fut>(backend: SqlBackend, case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestStore::unmigrated(backend).await.unwrap();
    let outcome = tokio::spawn(case(db.store.clone())).await;
    db.cleanup().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! on_both_backends {
    ($harness:ident: $($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::*;

                #[tokio::test]
                async fn postgres() {
                    $harness(SqlBackend::Postgres, super::$case).await;
                }

                #[tokio::test]
                async fn sqlite() {
                    $harness(SqlBackend::Sqlite, super::$case).await;
                }
            }
        )*
    };
}

on_both_backends!(on_unmigrated: pending_before_migrate_and_none_after, production_policy_refuses_pending);
on_both_backends!(on:
    ping_answers,
    decimals_round_trip_exactly,
    order_writes_are_idempotent_on_event_id,
    fill_writes_are_idempotent_and_keep_every_field,
    pnl_snapshot_writes_are_idempotent_and_ordered,
    checkpoint_and_effects_share_one_transaction,
    users_verify_with_argon2,
    kill_switches_and_refresh_tokens_persist,
    strategy_seed_only_once,
    instruments_upsert_by_exchange_and_symbol,
    trading_session_expires,
    a_lease_has_one_holder_until_it_lapses,
);

// ---------- fixtures ----------

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros).unwrap()
}

fn fill(order: &str, strategy: &str, price: Decimal, fees: FeeBreakdown) -> OrderFilled {
    OrderFilled {
        order_id: OrderId::new(order).unwrap(),
        broker_order_id: Some(format!("kite-{order}")),
        strategy_id: StrategyId::new(strategy).unwrap(),
        instrument_token: InstrumentToken(408_065),
        tradingsymbol: Some("INFY".into()),
        side: Side::Buy,
        quantity: Quantity(25),
        fill_price: Price(price),
        fees,
        fees_source: Default::default(),
        execution_mode: ExecutionMode::Paper,
        filled_at: ts(1_763_800_000_123_456),
    }
}

fn fees() -> FeeBreakdown {
    FeeBreakdown {
        brokerage: Money(dec!(20)),
        stt: Money(dec!(61.25)),
        exchange_charges: Money(dec!(1.8375)),
        sebi_charges: Money(dec!(0.0245)),
        gst: Money(dec!(3.9550)),
        stamp_duty: Money(dec!(3.68)),
        dp_charges: Default::default(),
        total: Money(dec!(90.747)),
    }
}

fn snapshot(strategy: &str, as_of: i64, cash: Decimal) -> PnlSnapshot {
    let strategy_id = StrategyId::new(strategy).unwrap();
    PnlSnapshot {
        portfolio_id: PortfolioId::for_strategy(Broker::Paper, &strategy_id),
        strategy_id,
        broker: Broker::Paper,
        as_of: ts(as_of),
        realized_pnl: Money(dec!(120.50)),
        unrealized_pnl: Money(dec!(-30.25)),
        fees: Money(dec!(9.10)),
        total_pnl: Money(dec!(81.15)),
        cash: Money(cash),
        positions: vec![PositionSnapshot {
            instrument_token: InstrumentToken(408_065),
            quantity: -5,
            average_price: Price(dec!(1500.05)),
            last_price: Price(dec!(1506.10)),
            realized_pnl: Money(dec!(120.50)),
            unrealized_pnl: Money(dec!(-30.25)),
        }],
        snapshot_type: SnapshotType::Periodic,
        checksum: String::new(),
    }
    .seal()
}

fn instrument(token: u32, exchange: &str, symbol: &str, price: Decimal) -> Instrument {
    Instrument {
        instrument_token: InstrumentToken(token),
        exchange_token: token >> 8,
        tradingsymbol: symbol.into(),
        name: format!("{symbol} LTD"),
        last_price: price,
        expiry: None,
        strike: None,
        tick_size: dec!(0.05),
        lot_size: 1,
        instrument_type: "EQ".into(),
        segment: exchange.into(),
        exchange: exchange.into(),
    }
}

fn config(id: &str, active: bool) -> StrategyConfiguration {
    StrategyConfiguration {
        id: id.into(),
        strategy_type: "ema_cross".into(),
        instruments: vec![408_065, 738_561],
        parameters: json!({"fast": 10, "slow": 30, "quantity": 1}),
        is_active: active,
        zerodha_trading_enabled: false,
        created_at: ts(1_700_000_000_000_000),
        updated_at: ts(1_700_000_000_000_000),
    }
}

// ---------- migrations ----------

#[tokio::test]
async fn migrations_are_equivalent_across_backends() {
    let pg = TestStore::new(SqlBackend::Postgres).await.unwrap();
    let lite = TestStore::new(SqlBackend::Sqlite).await.unwrap();
    let pg_schema = pg.store.describe_schema().await.unwrap();
    let lite_schema = lite.store.describe_schema().await.unwrap();
    pg.cleanup().await.unwrap();
    lite.cleanup().await.unwrap();

    assert_eq!(pg_schema, lite_schema);
    let tables: Vec<&str> = pg_schema.tables.keys().map(String::as_str).collect();
    assert_eq!(
        tables,
        [
            "fills",
            "instruments",
            "kill_switches",
            "orders",
            "pnl_snapshots",
            "refresh_tokens",
            "service_checkpoints",
            "service_leases",
            "strategy_configurations",
            "trading_sessions",
            "users",
        ]
    );
    assert!(pg_schema.indexes.contains("instruments_token_idx"));
    assert!(pg_schema
        .indexes
        .contains("pnl_snapshots_portfolio_as_of_idx"));
    assert!(pg_schema.indexes.contains("pnl_snapshots_broker_idx"));
    for (table, columns) in &pg_schema.tables {
        for column in columns {
            assert!(!column.starts_with("live_"), "{table}.{column}");
        }
    }
    assert!(!pg_schema.tables["users"].contains(&"password".to_string()));
}

async fn pending_before_migrate_and_none_after(store: Store) {
    let all = [
        "0001_initial_schema",
        "0002_checkpoint_log_identity",
        "0003_service_leases",
        "0004_fill_fees_source_and_dp_charges",
        "0005_operator_surface",
    ];
    assert_eq!(store.pending_migrations().await.unwrap(), all);
    assert_eq!(store.migrate().await.unwrap(), all);
    assert!(store.pending_migrations().await.unwrap().is_empty());
    assert!(
        store.migrate().await.unwrap().is_empty(),
        "second run applies nothing"
    );
    // Now current: production accepts it.
    assert!(apply_policy(&store, Environment::Production)
        .await
        .unwrap()
        .is_empty());
}

async fn production_policy_refuses_pending(store: Store) {
    let err = apply_policy(&store, Environment::Production)
        .await
        .unwrap_err();
    match &err {
        StoreError::MigrationsPending { pending } => {
            assert_eq!(
                pending,
                &[
                    "0001_initial_schema",
                    "0002_checkpoint_log_identity",
                    "0003_service_leases",
                    "0004_fill_fees_source_and_dp_charges",
                    "0005_operator_surface"
                ]
            );
        }
        other => panic!("expected MigrationsPending, got {other:?}"),
    }
    assert!(err.to_string().contains("alpha-panda migrate"));
    // Production did not migrate anything.
    assert_eq!(store.pending_migrations().await.unwrap().len(), 5);
    // Reading a table before migrating says what to do.
    let missing = store.checkpoints().load("x").await.unwrap_err();
    assert!(
        matches!(missing, StoreError::SchemaMissing { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("alpha-panda migrate"));
    // Development applies.
    assert_eq!(
        apply_policy(&store, Environment::Development)
            .await
            .unwrap(),
        [
            "0001_initial_schema",
            "0002_checkpoint_log_identity",
            "0003_service_leases",
            "0004_fill_fees_source_and_dp_charges",
            "0005_operator_surface"
        ]
    );
}

// ---------- repositories ----------

async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
}

async fn decimals_round_trip_exactly(store: Store) {
    let extremes = [
        Decimal::MAX,         // 79228162514264337593543950335
        Decimal::MIN,         // -79228162514264337593543950335
        Decimal::new(1, 28),  // 1e-28
        Decimal::new(-1, 28), // -1e-28
        Decimal::from_str("7.9228162514264337593543950335").unwrap(), // 28-digit scale
        dec!(-0.05),
        dec!(2450.50),
        Decimal::ZERO,
    ];
    let fees = FeeBreakdown {
        brokerage: Money(extremes[2]),
        stt: Money(extremes[1]),
        exchange_charges: Money(extremes[3]),
        sebi_charges: Money(extremes[4]),
        gst: Money(extremes[5]),
        stamp_duty: Money(extremes[7]),
        dp_charges: Default::default(),
        total: Money(extremes[6]),
    };
    let original = fill("ord-dec", "extremes", extremes[0], fees);
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .record_fill(Broker::Paper, EventId::new_root(), &original)
        .await
        .unwrap());
    tx.commit().await.unwrap();
    let stored = store.ledger().fills(Broker::Paper, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    let back = &stored[0].fill;
    assert_eq!(back, &original);
    // Not only equal: the same digits and scale.
    assert_eq!(
        back.fill_price.0.to_string(),
        "79228162514264337593543950335"
    );
    assert_eq!(
        back.fees.brokerage.0.to_string(),
        "0.0000000000000000000000000001"
    );
    assert_eq!(
        back.fees.stt.0.to_string(),
        "-79228162514264337593543950335"
    );
    assert_eq!(back.fees.total.0.to_string(), "2450.50");

    // Instruments: NUMERIC / text columns and the optional strike.
    let mut option = instrument(12_345_678, "NFO", "NIFTY25JAN24000CE", Decimal::new(1, 28));
    option.strike = Some(Decimal::MAX);
    option.expiry = Some(NaiveDate::from_ymd_opt(2025, 1, 30).unwrap());
    option.tick_size = dec!(0.0025);
    store
        .instruments()
        .upsert_many(&[option.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.instruments().by_token(12_345_678).await.unwrap(),
        Some(option)
    );
}

async fn order_writes_are_idempotent_on_event_id(store: Store) {
    let submitted = OrderSubmitted {
        order_id: OrderId::new("ord-1").unwrap(),
        signal_event_id: EventId::new_root(),
        strategy_id: StrategyId::new("ema").unwrap(),
        instrument_token: InstrumentToken(408_065),
        side: Side::Sell,
        quantity: Quantity(10),
        order_type: OrderType::Limit,
        limit_price: Some(Price(dec!(1500.05))),
        execution_mode: ExecutionMode::Zerodha,
    };
    let ack = OrderAck {
        order_id: submitted.order_id.clone(),
        broker_order_id: "2501010001".into(),
        strategy_id: submitted.strategy_id.clone(),
        instrument_token: submitted.instrument_token,
        execution_mode: ExecutionMode::Zerodha,
    };
    let failed = OrderFailed {
        order_id: OrderId::new("ord-2").unwrap(),
        broker_order_id: None,
        strategy_id: submitted.strategy_id.clone(),
        instrument_token: submitted.instrument_token,
        side: Side::Buy,
        quantity: Quantity(3),
        reason: "Insufficient funds".into(),
        retryable: false,
        execution_mode: ExecutionMode::Zerodha,
    };
    let records = [
        (
            EventId::new_root(),
            OrderRecord::submitted(&submitted, ts(1_000_000)),
        ),
        (
            EventId::new_root(),
            OrderRecord::acknowledged(&ack, ts(2_000_000)),
        ),
        (
            EventId::new_root(),
            OrderRecord::failed(&failed, ts(3_000_000)),
        ),
    ];
    let mut tx = store.begin().await.unwrap();
    for (id, record) in &records {
        assert!(tx.record_order(Broker::Zerodha, *id, record).await.unwrap());
    }
    tx.commit().await.unwrap();
    // The replay changes nothing.
    let mut tx = store.begin().await.unwrap();
    for (id, record) in &records {
        assert!(!tx.record_order(Broker::Zerodha, *id, record).await.unwrap());
    }
    tx.commit().await.unwrap();

    let orders = store.ledger().orders(Broker::Zerodha, 10).await.unwrap();
    assert_eq!(orders.len(), 3);
    // Newest first.
    let newest_first: Vec<_> = records.iter().rev().collect();
    for (stored, (id, record)) in orders.iter().zip(newest_first) {
        assert_eq!(stored.event_id, *id);
        assert_eq!(stored.broker, Broker::Zerodha);
        assert_eq!(&stored.record, record);
    }
    assert!(store
        .ledger()
        .orders(Broker::Paper, 10)
        .await
        .unwrap()
        .is_empty());
    let history = store
        .ledger()
        .order_history(Broker::Zerodha, &submitted.order_id)
        .await
        .unwrap();
    let statuses: Vec<_> = history.iter().map(|o| o.record.status).collect();
    assert_eq!(
        statuses,
        [OrderStatus::Submitted, OrderStatus::Acknowledged]
    );
    assert_eq!(
        store
            .ledger()
            .orders(Broker::Zerodha, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn fill_writes_are_idempotent_and_keep_every_field(store: Store) {
    let first = fill("ord-a", "ema", dec!(1500.05), fees());
    let mut second = fill("ord-b", "ema", dec!(1499.95), FeeBreakdown::default());
    second.broker_order_id = None;
    second.tradingsymbol = None;
    second.side = Side::Sell;
    let mut other = fill("ord-c", "momentum", dec!(10), fees());
    other.fees_source = alpha_panda_core::FeesSource::ContractNote;
    other.fees = other
        .fees
        .with_dp_charges(alpha_panda_core::Money(dec!(15.34)));
    let (id1, id2, id3) = (
        EventId::new_root(),
        EventId::new_root(),
        EventId::new_root(),
    );

    let mut tx = store.begin().await.unwrap();
    assert!(tx.record_fill(Broker::Paper, id1, &first).await.unwrap());
    assert!(!tx.record_fill(Broker::Paper, id1, &first).await.unwrap());
    assert!(tx.record_fill(Broker::Paper, id2, &second).await.unwrap());
    assert!(tx.record_fill(Broker::Zerodha, id3, &other).await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.record_fill(Broker::Paper, id2, &second).await.unwrap());
    tx.commit().await.unwrap();

    let paper = store.ledger().fills(Broker::Paper, 10).await.unwrap();
    assert_eq!(paper.len(), 2);
    assert_eq!((paper[0].event_id, &paper[0].fill), (id2, &second));
    assert_eq!((paper[1].event_id, &paper[1].fill), (id1, &first));
    assert_eq!(paper[1].portfolio_id.as_str(), "paper:ema");

    let portfolio = PortfolioId::new("zerodha:momentum").unwrap();
    let zerodha = store
        .ledger()
        .fills_for_portfolio(&portfolio, 10)
        .await
        .unwrap();
    assert_eq!(zerodha.len(), 1);
    assert_eq!(zerodha[0].fill, other);
    assert_eq!(zerodha[0].broker, Broker::Zerodha);
}

async fn pnl_snapshot_writes_are_idempotent_and_ordered(store: Store) {
    let older = snapshot("ema", 1_000_000, dec!(100000));
    let newer = snapshot("ema", 2_000_000, dec!(99000.55));
    let other = snapshot("momentum", 3_000_000, dec!(5));
    let (id_old, id_new, id_other) = (
        EventId::new_root(),
        EventId::new_root(),
        EventId::new_root(),
    );
    let mut tx = store.begin().await.unwrap();
    // Written out of order: `latest` goes by as_of, not by arrival.
    assert!(tx
        .record_pnl_snapshot(id_new, &newer, ValidationStatus::Valid)
        .await
        .unwrap());
    assert!(tx
        .record_pnl_snapshot(id_old, &older, ValidationStatus::Pending)
        .await
        .unwrap());
    assert!(tx
        .record_pnl_snapshot(id_other, &other, ValidationStatus::ChecksumMismatch)
        .await
        .unwrap());
    assert!(!tx
        .record_pnl_snapshot(id_new, &newer, ValidationStatus::Diverged)
        .await
        .unwrap());
    tx.commit().await.unwrap();

    let latest = store
        .pnl_snapshots()
        .latest(&newer.portfolio_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.event_id, id_new);
    assert_eq!(latest.snapshot, newer);
    assert!(latest.snapshot.checksum_is_valid());
    assert_eq!(latest.validation_status, ValidationStatus::Valid);

    let history = store
        .pnl_snapshots()
        .list(&newer.portfolio_id, 10)
        .await
        .unwrap();
    let ids: Vec<_> = history.iter().map(|s| s.event_id).collect();
    assert_eq!(ids, [id_new, id_old]);
    assert_eq!(history[1].validation_status, ValidationStatus::Pending);

    let by_broker = store
        .pnl_snapshots()
        .list_by_broker(Broker::Paper, 2)
        .await
        .unwrap();
    let ids: Vec<_> = by_broker.iter().map(|s| s.event_id).collect();
    assert_eq!(ids, [id_other, id_new]);
    assert_eq!(
        by_broker[0].validation_status,
        ValidationStatus::ChecksumMismatch
    );
    assert!(store
        .pnl_snapshots()
        .list_by_broker(Broker::Zerodha, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn checkpoint_and_effects_share_one_transaction(store: Store) {
    let key = "portfolio_manager:paper";
    let checkpoint = Checkpoint {
        service_key: key.into(),
        state: json!({"portfolios": {"paper:ema": {"cash": "100000.00", "positions": []}}}),
        offsets: vec![
            CheckpointOffset {
                topic: "paper.orders.filled".into(),
                partition: 0,
                next_offset: 42,
                last_event_id: Some(EventId::new_root()),
            },
            CheckpointOffset {
                topic: "market.ticks".into(),
                partition: 3,
                next_offset: 9_000_000_000,
                last_event_id: None,
            },
        ],
        log_identity: Some("memory:0192a4b0-0000-7000-8000-000000000001".into()),
        updated_at: ts(1_763_800_000_000_001),
    };
    let effect = fill("ord-tx", "ema", dec!(1500), fees());
    let event_id = EventId::new_root();

    // A transaction dropped without commit leaves neither the effect nor the checkpoint.
    {
        let mut tx = store.begin().await.unwrap();
        assert!(tx
            .record_fill(Broker::Paper, event_id, &effect)
            .await
            .unwrap());
        tx.save_checkpoint(&checkpoint).await.unwrap();
        drop(tx);
    }
    assert_eq!(store.checkpoints().load(key).await.unwrap(), None);
    assert!(store
        .ledger()
        .fills(Broker::Paper, 10)
        .await
        .unwrap()
        .is_empty());

    // Committed, both are there.
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .record_fill(Broker::Paper, event_id, &effect)
        .await
        .unwrap());
    tx.save_checkpoint(&checkpoint).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.checkpoints().load(key).await.unwrap(),
        Some(checkpoint.clone())
    );
    assert_eq!(
        store.ledger().fills(Broker::Paper, 10).await.unwrap().len(),
        1
    );

    // A later checkpoint replaces the earlier one.
    let mut next = checkpoint.clone();
    next.offsets[0].next_offset = 43;
    next.state = json!({"portfolios": {}});
    next.updated_at = ts(1_763_800_000_000_002);
    let mut tx = store.begin().await.unwrap();
    tx.save_checkpoint(&next).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.checkpoints().load(key).await.unwrap(), Some(next));
    assert_eq!(
        store
            .checkpoints()
            .load("risk_manager:paper")
            .await
            .unwrap(),
        None
    );
}

async fn users_verify_with_argon2(store: Store) {
    let users = store.users();
    assert_eq!(users.count().await.unwrap(), 0);
    let created = users
        .create("admin", "correct horse battery", Role::Admin)
        .await
        .unwrap();
    assert_eq!(created.username, "admin");
    assert_eq!(created.role, Role::Admin);
    assert_eq!(
        users
            .verify("admin", "correct horse battery")
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        users.verify("admin", "wrong horse battery").await.unwrap(),
        None
    );
    assert_eq!(
        users
            .verify("nobody", "correct horse battery")
            .await
            .unwrap(),
        None
    );
    assert_eq!(users.get("admin").await.unwrap(), Some(created));
    assert_eq!(users.count().await.unwrap(), 1);

    let duplicate = users
        .create("admin", "another password", Role::Viewer)
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, StoreError::AlreadyExists { .. }),
        "{duplicate:?}"
    );
    assert_eq!(duplicate.class(), ErrorClass::Business);
    let short = users
        .create("trader", "short", Role::Trader)
        .await
        .unwrap_err();
    assert!(matches!(
        short,
        StoreError::InvalidInput {
            field: "password",
            ..
        }
    ));
    assert_eq!(users.count().await.unwrap(), 1);

    // Listing, a new password, removal.
    users
        .create("watcher", "watching all day", Role::Viewer)
        .await
        .unwrap();
    let names: Vec<(String, Role)> = users
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.username, u.role))
        .collect();
    assert_eq!(
        names,
        [
            ("admin".to_string(), Role::Admin),
            ("watcher".to_string(), Role::Viewer)
        ]
    );
    assert!(users
        .set_password("watcher", "a brand new password")
        .await
        .unwrap());
    assert!(users
        .verify("watcher", "watching all day")
        .await
        .unwrap()
        .is_none());
    assert!(users
        .verify("watcher", "a brand new password")
        .await
        .unwrap()
        .is_some());
    assert!(!users
        .set_password("nobody", "whatever it is")
        .await
        .unwrap());
    assert!(users.remove("watcher").await.unwrap());
    assert!(!users.remove("watcher").await.unwrap());
    assert_eq!(users.count().await.unwrap(), 1);
}

async fn kill_switches_and_refresh_tokens_persist(store: Store) {
    let switches = store.kill_switches();
    assert!(!switches.engaged(Broker::Zerodha).await.unwrap());
    let engaged = KillSwitch {
        broker: Broker::Zerodha,
        engaged: true,
        reason: "exchange glitch".into(),
        changed_by: "admin".into(),
        changed_at: ts(1_700_000_000_000_000),
    };
    switches.set(&engaged).await.unwrap();
    assert!(switches.engaged(Broker::Zerodha).await.unwrap());
    assert!(!switches.engaged(Broker::Paper).await.unwrap());
    assert_eq!(
        switches.get(Broker::Zerodha).await.unwrap(),
        Some(engaged.clone())
    );
    let released = KillSwitch {
        engaged: false,
        reason: "resolved".into(),
        ..engaged.clone()
    };
    switches.set(&released).await.unwrap();
    assert!(!switches.engaged(Broker::Zerodha).await.unwrap());
    let no_reason = KillSwitch {
        reason: " ".into(),
        ..engaged
    };
    assert!(matches!(
        switches.set(&no_reason).await.unwrap_err(),
        StoreError::InvalidInput {
            field: "reason",
            ..
        }
    ));

    let tokens = store.refresh_tokens();
    let (now, later) = (ts(1_700_000_000_000_000), ts(1_700_000_100_000_000));
    tokens.issue("hash-a", "admin", now, later).await.unwrap();
    tokens.issue("hash-b", "admin", now, later).await.unwrap();
    // Used once: the second use finds nothing.
    assert_eq!(
        tokens.redeem("hash-a", now).await.unwrap().as_deref(),
        Some("admin")
    );
    assert_eq!(tokens.redeem("hash-a", now).await.unwrap(), None);
    // Expired.
    assert_eq!(tokens.redeem("hash-b", later).await.unwrap(), None);
    tokens.issue("hash-c", "admin", now, later).await.unwrap();
    assert!(tokens.revoke("hash-c").await.unwrap());
    assert!(!tokens.revoke("hash-c").await.unwrap());
    assert_eq!(tokens.redeem("hash-c", now).await.unwrap(), None);
    tokens.issue("hash-d", "admin", now, later).await.unwrap();
    assert_eq!(tokens.revoke_all("admin").await.unwrap(), 2);
    assert_eq!(tokens.redeem("hash-d", now).await.unwrap(), None);
}

async fn strategy_seed_only_once(store: Store) {
    let configs = store.strategy_configurations();
    let seeds = [config("ema_nifty", true), config("ema_bank", false)];
    assert_eq!(configs.seed_if_empty(&seeds).await.unwrap(), 2);
    assert_eq!(
        configs
            .seed_if_empty(&[config("ema_other", true)])
            .await
            .unwrap(),
        0
    );
    let all = configs.list().await.unwrap();
    assert_eq!(all, [seeds[1].clone(), seeds[0].clone()]);
    assert_eq!(configs.list_active().await.unwrap(), [seeds[0].clone()]);

    let mut changed = seeds[1].clone();
    changed.is_active = true;
    changed.zerodha_trading_enabled = true;
    changed.parameters = json!({"fast": 5, "slow": 20});
    changed.instruments = vec![u32::MAX];
    changed.created_at = ts(1_800_000_000_000_000);
    changed.updated_at = ts(1_800_000_000_000_000);
    configs.upsert(&changed).await.unwrap();
    let stored = configs.get("ema_bank").await.unwrap().unwrap();
    // Upsert keeps the original creation time.
    assert_eq!(stored.created_at, seeds[1].created_at);
    changed.created_at = seeds[1].created_at;
    assert_eq!(stored, changed);
    assert_eq!(configs.list_active().await.unwrap().len(), 2);
    assert_eq!(configs.get("missing").await.unwrap(), None);
}

async fn instruments_upsert_by_exchange_and_symbol(store: Store) {
    let instruments = store.instruments();
    let infy = instrument(408_065, "NSE", "INFY", dec!(1500.05));
    let infy_bse = instrument(500_209, "BSE", "INFY", dec!(1500.10));
    let tcs = instrument(2_953_217, "NSE", "TCS", dec!(3900));
    assert_eq!(
        instruments
            .upsert_many(&[infy.clone(), infy_bse.clone(), tcs.clone()])
            .await
            .unwrap(),
        3
    );
    assert_eq!(instruments.count().await.unwrap(), 3);

    // The same (exchange, tradingsymbol) with a new token and price updates in place; a repeat inside
    // one batch keeps the last.
    let mut relisted = infy.clone();
    relisted.instrument_token = InstrumentToken(999_001);
    relisted.last_price = dec!(1510);
    let mut stale = relisted.clone();
    stale.last_price = dec!(1);
    instruments
        .upsert_many(&[stale, relisted.clone()])
        .await
        .unwrap();
    assert_eq!(instruments.count().await.unwrap(), 3);
    assert_eq!(
        instruments.by_token(999_001).await.unwrap(),
        Some(relisted.clone())
    );
    assert_eq!(instruments.by_token(408_065).await.unwrap(), None);
    assert_eq!(
        instruments.by_symbol("BSE", "INFY").await.unwrap(),
        Some(infy_bse.clone())
    );
    assert_eq!(instruments.all().await.unwrap(), [infy_bse, relisted, tcs]);

    // A batch larger than one statement.
    let many: Vec<Instrument> = (0..1_201u32)
        .map(|i| {
            instrument(
                1_000_000 + i,
                "NFO",
                &format!("SYM{i:05}"),
                Decimal::from(i),
            )
        })
        .collect();
    assert_eq!(instruments.upsert_many(&many).await.unwrap(), 1_201);
    assert_eq!(instruments.count().await.unwrap(), 1_204);
    assert_eq!(instruments.upsert_many(&[]).await.unwrap(), 0);
}

async fn trading_session_expires(store: Store) {
    let now = ts(1_763_800_000_000_000); // 2025-11-22 08:26:40 UTC = 13:56 IST
    let session = TradingSession {
        api_key: "kite_api_key".into(),
        user_id: "AB1234".into(),
        access_token: AccessToken::new("token-abc"),
        created_at: now,
        expires_at: session_expiry(now),
    };
    assert_eq!(
        session.expires_at.to_string(),
        "2025-11-23T00:30:00.000000Z"
    );
    let sessions = store.trading_sessions();
    sessions.save(&session).await.unwrap();
    assert_eq!(
        sessions.current("kite_api_key", now).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        sessions
            .current("kite_api_key", session.expires_at)
            .await
            .unwrap(),
        None,
        "expired at 06:00 IST"
    );
    assert_eq!(sessions.current("other_key", now).await.unwrap(), None);

    // A new login replaces the token.
    let mut renewed = session.clone();
    renewed.access_token = AccessToken::new("token-def");
    sessions.save(&renewed).await.unwrap();
    let current = sessions
        .current("kite_api_key", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.access_token.expose(), "token-def");
    assert!(!format!("{current:?}").contains("token-def"));
    assert!(sessions.delete("kite_api_key").await.unwrap());
    assert_eq!(sessions.current("kite_api_key", now).await.unwrap(), None);
}

// ---------- connecting ----------

#[tokio::test]
async fn bad_urls_say_what_to_fix_without_echoing_secrets() {
    let err = Store::connect("mysql://root:hunter2@localhost/alpha")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedScheme { .. }));
    assert!(!err.to_string().contains("hunter2"));
    assert!(err.to_string().contains("sqlite://PATH"));

    let err = Store::connect("postgres://trader:hunter2@127.0.0.1:1/alpha")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Infrastructure);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn sqlite_creates_missing_directories_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("deeper").join("alpha.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), SqlBackend::Sqlite);
    store.migrate().await.unwrap();
    store
        .strategy_configurations()
        .upsert(&config("persisted", true))
        .await
        .unwrap();
    store.close().await;
    assert!(path.exists());

    let reopened = Store::connect(&url).await.unwrap();
    assert!(reopened.pending_migrations().await.unwrap().is_empty());
    assert_eq!(
        reopened
            .strategy_configurations()
            .get("persisted")
            .await
            .unwrap(),
        Some(config("persisted", true))
    );
    reopened.close().await;
}

#[tokio::test]
async fn in_memory_sqlite_works_for_quick_tests() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.instruments().count().await.unwrap(), 0);
}

async fn a_lease_has_one_holder_until_it_lapses(store: Store) {
    let leases = store.leases();
    let key = "portfolio_manager:paper";
    let (t0, t10, t20) = (ts(1_000_000), ts(11_000_000), ts(21_000_000));
    assert_eq!(
        leases
            .try_acquire(key, "pid 1 #a", "pid 1 ", t0, t10)
            .await
            .unwrap(),
        None
    );
    // Another process waits while the lease lives…
    let held = leases
        .try_acquire(key, "pid 2 #b", "pid 2 ", ts(5_000_000), ts(15_000_000))
        .await
        .unwrap()
        .expect("held by the first");
    assert_eq!(held.holder, "pid 1 #a");
    assert_eq!(held.expires_at, t10);
    // …a later instance of the same process takes it over at once…
    assert_eq!(
        leases
            .try_acquire(key, "pid 1 #c", "pid 1 ", ts(6_000_000), t20)
            .await
            .unwrap(),
        None
    );
    // …and the superseded instance can no longer renew it.
    assert!(!leases.renew(key, "pid 1 #a", t20).await.unwrap());
    assert!(leases.renew(key, "pid 1 #c", t20).await.unwrap());
    // Lapsed, it goes to whoever asks; and a checkpoint of the old holder is refused.
    assert_eq!(
        leases
            .try_acquire(key, "pid 2 #b", "pid 2 ", ts(30_000_000), ts(40_000_000))
            .await
            .unwrap(),
        None
    );
    let mut tx = store.begin().await.unwrap();
    assert!(!tx
        .renew_lease(key, "pid 1 #c", ts(50_000_000))
        .await
        .unwrap());
    drop(tx);
    // Released, it is free at once.
    leases.release(key, "pid 2 #b").await.unwrap();
    assert_eq!(leases.holder(key).await.unwrap(), None);
}
