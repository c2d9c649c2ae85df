//! Which services let the runtime conflate ticks: the risk manager and the portfolio manager always
//! (they keep last prices), the paper trading engine only while no LIMIT order rests (a resting
//! order may be filled by any tick), and the strategy runner never.

use std::collections::HashMap;
use std::sync::Arc;

use alpha_panda_core::{
    Broker, Envelope, EventBroker, EventId, EventType, InstrumentToken, OrderType, Payload, Price,
    Quantity, Side, StrategyId, TickRef, TradingSignal, ValidatedSignal,
};
use alpha_panda_services::risk_manager::service::RiskManager;
use alpha_panda_services::strategy_runner::StrategyRunner;
use alpha_panda_services::trading_engine::service::TradingEngine;
use alpha_panda_services::{nse_universe, PaperConfig, PaperTrader, RiskLimits};
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::SqlBackend;
use alpha_panda_stream::Handler;
use rust_decimal::Decimal;

mod common;

use common::{at, infy_tick, open_portfolio_manager, INFY};

fn limit_buy(limit: i64) -> Envelope {
    let signal = TradingSignal {
        strategy_id: StrategyId::new("s1").unwrap(),
        instrument_token: InstrumentToken(INFY),
        side: Side::Buy,
        quantity: Quantity(1),
        target_quantity: 1,
        order_type: OrderType::Limit,
        limit_price: Some(Price(Decimal::from(limit))),
        reason: "test".into(),
        tick: TickRef {
            instrument_token: InstrumentToken(INFY),
            last_price: Price(Decimal::from(limit + 5)),
            exchange_timestamp: at(1),
            event_id: EventId::new_root(),
        },
    };
    Envelope::root(
        Payload::ValidatedSignal(ValidatedSignal {
            signal,
            signal_event_id: EventId::new_root(),
            rules_checked: Vec::new().into(),
        }),
        format!("s1:{INFY}"),
        EventBroker::Paper,
        "risk_manager",
        at(1),
    )
}

async fn deliver<H: Handler>(handler: &mut H, topic: &str, offset: i64, envelope: &Envelope) {
    common::deliver(handler, topic, offset, envelope, at(300))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_paper_engine_conflates_ticks_only_while_no_limit_order_rests() {
    let db = TestStore::new(SqlBackend::Sqlite).await.unwrap();
    let trader = PaperTrader::new(PaperConfig::default(), &nse_universe());
    let mut engine = TradingEngine::open_paper(trader, db.store.clone())
        .await
        .unwrap();
    assert!(engine.conflates(EventType::MarketTick));
    assert!(!engine.conflates(EventType::ValidatedSignal));

    deliver(&mut engine, "paper.signals.validated", 0, &limit_buy(100)).await;
    assert!(
        !engine.conflates(EventType::MarketTick),
        "a resting LIMIT order needs every tick"
    );

    // A tick above the limit leaves it resting; one through it fills it.
    deliver(&mut engine, "market.ticks", 0, &infy_tick(2, 101)).await;
    assert!(!engine.conflates(EventType::MarketTick));
    deliver(&mut engine, "market.ticks", 1, &infy_tick(3, 99)).await;
    assert!(engine.conflates(EventType::MarketTick));
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn last_price_services_conflate_ticks_and_nothing_else_and_strategies_never_do() {
    let db = TestStore::new(SqlBackend::Sqlite).await.unwrap();
    let instruments: Arc<HashMap<_, _>> = Arc::new(
        nse_universe()
            .into_iter()
            .map(|i| (i.instrument_token, i))
            .collect(),
    );
    let risk = RiskManager::open(
        Broker::Paper,
        RiskLimits::default(),
        instruments,
        db.store.clone(),
        None,
    )
    .await
    .unwrap();
    let portfolio = open_portfolio_manager(&db.store).await;
    let runner = StrategyRunner::open(Vec::new(), &[Broker::Paper], db.store.clone())
        .await
        .unwrap();
    for event_type in EventType::ALL {
        let is_tick = event_type == EventType::MarketTick;
        assert_eq!(risk.conflates(event_type), is_tick, "risk: {event_type}");
        assert_eq!(
            portfolio.conflates(event_type),
            is_tick,
            "portfolio: {event_type}"
        );
        assert!(!runner.conflates(event_type), "strategies: {event_type}");
    }
    db.cleanup().await.unwrap();
}
