//! What operators change while the pipeline runs: the kill switch stops new entries in its
//! namespace within a timer tick (exits still go, the other namespace trades on), and the strategy
//! runner follows the stored configurations without a restart.

use std::collections::HashMap;
use std::sync::Arc;

use alpha_panda_core::{
    Broker, Envelope, EventBroker, EventId, InstrumentToken, OrderType, Payload, Price, Quantity,
    Side, StrategyId, TickRef, Timestamp, TradingSignal,
};
use alpha_panda_services::risk_manager::service::RiskManager;
use alpha_panda_services::risk_manager::RiskLimits;
use alpha_panda_services::strategy_runner::StrategyRunner;
use alpha_panda_services::{build_strategy, nse_universe};
use alpha_panda_store::{KillSwitch, Store, StrategyConfiguration};
use alpha_panda_stream::Handler;
use rust_decimal::Decimal;
use serde_json::json;

mod common;

const INFY: InstrumentToken = InstrumentToken(common::INFY);

async fn store() -> Store {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn risk_manager(store: &Store, broker: Broker) -> RiskManager {
    let instruments: HashMap<_, _> = nse_universe()
        .into_iter()
        .map(|i| (i.instrument_token, i))
        .collect();
    let limits = RiskLimits {
        enforce_market_hours: false,
        ..RiskLimits::default_for(broker)
    };
    RiskManager::open(broker, limits, Arc::new(instruments), store.clone(), None)
        .await
        .unwrap()
}

fn signal(broker: Broker, target: i64, second: i64) -> Envelope {
    let side = if target > 0 { Side::Buy } else { Side::Sell };
    let tick = TickRef {
        instrument_token: INFY,
        last_price: Price(Decimal::from(1500)),
        exchange_timestamp: common::at(second),
        event_id: EventId::new_root(),
    };
    Envelope::root(
        Payload::TradingSignal(TradingSignal {
            strategy_id: StrategyId::new("ema_infy").unwrap(),
            instrument_token: INFY,
            side,
            quantity: Quantity(1),
            target_quantity: target,
            order_type: OrderType::Market,
            limit_price: None,
            reason: "test".into(),
            tick,
        }),
        "ema_infy:408065".into(),
        EventBroker::from(broker),
        "strategy_runner",
        common::at(second),
    )
}

fn answer(outputs: &[alpha_panda_stream::Output]) -> (&'static str, Vec<String>) {
    match &outputs[0].payload {
        Payload::ValidatedSignal(_) => ("validated", Vec::new()),
        Payload::RejectedSignal(r) => (
            "rejected",
            r.violations.iter().map(|v| v.rule.clone()).collect(),
        ),
        other => (other.event_type().as_str(), Vec::new()),
    }
}

fn switch(broker: Broker, engaged: bool) -> KillSwitch {
    KillSwitch {
        broker,
        engaged,
        reason: "drill".into(),
        changed_by: "test".into(),
        changed_at: Timestamp::from_datetime(chrono::Utc::now()),
    }
}

#[tokio::test]
async fn the_kill_switch_halts_new_entries_in_its_namespace_only() {
    let store = store().await;
    let mut paper = risk_manager(&store, Broker::Paper).await;
    let mut zerodha = risk_manager(&store, Broker::Zerodha).await;
    let raw = |b: Broker| format!("{b}.signals.raw");
    // Released: an entry is validated.
    let out = common::deliver(
        &mut paper,
        &raw(Broker::Paper),
        0,
        &signal(Broker::Paper, 1, 1),
        common::at(1),
    )
    .await
    .unwrap();
    assert_eq!(answer(&out).0, "validated");

    store
        .kill_switches()
        .set(&switch(Broker::Paper, true))
        .await
        .unwrap();
    // Within one timer tick the manager knows.
    paper.on_timer(common::at(2)).await.unwrap();
    zerodha.on_timer(common::at(2)).await.unwrap();
    assert!(paper.kill_switch_engaged());
    assert!(!zerodha.kill_switch_engaged());
    // A further entry is rejected by the kill switch…
    let out = common::deliver(
        &mut paper,
        &raw(Broker::Paper),
        1,
        &signal(Broker::Paper, 2, 3),
        common::at(3),
    )
    .await
    .unwrap();
    assert_eq!(answer(&out), ("rejected", vec!["kill_switch".to_string()]));
    // …an exit is not (the position of one is still in flight, paper MARKET counts as filled).
    let out = common::deliver(
        &mut paper,
        &raw(Broker::Paper),
        2,
        &signal(Broker::Paper, 0, 4),
        common::at(4),
    )
    .await
    .unwrap();
    assert_eq!(answer(&out).0, "validated");
    // Zerodha trades on.
    let out = common::deliver(
        &mut zerodha,
        &raw(Broker::Zerodha),
        0,
        &signal(Broker::Zerodha, 1, 5),
        common::at(5),
    )
    .await
    .unwrap();
    assert_eq!(answer(&out).0, "validated");

    // Durable: a risk manager opened now starts halted.
    let reopened = risk_manager(&store, Broker::Paper).await;
    assert!(reopened.kill_switch_engaged());
    // Released: entries go again.
    store
        .kill_switches()
        .set(&switch(Broker::Paper, false))
        .await
        .unwrap();
    paper.on_timer(common::at(6)).await.unwrap();
    let out = common::deliver(
        &mut paper,
        &raw(Broker::Paper),
        3,
        &signal(Broker::Paper, 3, 7),
        common::at(7),
    )
    .await
    .unwrap();
    assert_eq!(answer(&out).0, "validated");
}

fn config(id: &str, fast: u32, active: bool, zerodha: bool) -> StrategyConfiguration {
    let now = Timestamp::from_datetime(chrono::Utc::now());
    StrategyConfiguration {
        id: id.into(),
        strategy_type: "ema_cross".into(),
        instruments: vec![INFY.0],
        parameters: json!({"fast": fast, "slow": 20}),
        is_active: active,
        zerodha_trading_enabled: zerodha,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn the_strategy_runner_follows_the_stored_configurations() {
    let store = store().await;
    let repository = store.strategy_configurations();
    repository
        .upsert(&config("a", 5, true, false))
        .await
        .unwrap();
    repository
        .upsert(&config("b", 5, true, false))
        .await
        .unwrap();
    let running: Vec<_> = repository
        .list_active()
        .await
        .unwrap()
        .into_iter()
        .map(|c| alpha_panda_services::strategy_runner::RunnerStrategy {
            strategy: build_strategy(&c.id, &c.strategy_type, &c.instruments, &c.parameters)
                .unwrap(),
            zerodha_trading_enabled: c.zerodha_trading_enabled,
            configuration: format!("{}:{}", c.strategy_type, c.parameters),
        })
        .collect();
    let mut runner =
        StrategyRunner::new(running, &[Broker::Paper, Broker::Zerodha]).with_reload(store.clone());
    assert!(runner.timer_interval().is_some());
    // Nothing changed: nothing happens.
    runner.on_timer(common::at(1)).await.unwrap();
    assert_eq!(runner.strategy_ids(), ["a", "b"]);
    // b is disabled, c added, a's Zerodha switch turned on.
    repository
        .upsert(&config("b", 5, false, false))
        .await
        .unwrap();
    repository
        .upsert(&config("c", 7, true, false))
        .await
        .unwrap();
    repository
        .upsert(&config("a", 5, true, true))
        .await
        .unwrap();
    runner.on_timer(common::at(2)).await.unwrap();
    assert_eq!(runner.strategy_ids(), ["a", "c"]);
    // A configuration that cannot be built stops that strategy, and only it.
    repository
        .upsert(&config("c", 30, true, false))
        .await
        .unwrap();
    runner.on_timer(common::at(3)).await.unwrap();
    assert_eq!(runner.strategy_ids(), ["a"]);
    // Signals follow: a now also routes to Zerodha (its ticks produce signals for both).
    let mut outputs = Vec::new();
    for (n, price) in (1500..1560).chain((1440..1500).rev()).enumerate() {
        let tick = common::infy_tick(n as i64, price);
        outputs.extend(
            common::deliver(
                &mut runner,
                "market.ticks",
                n as i64,
                &tick,
                common::at(n as i64),
            )
            .await
            .unwrap(),
        );
    }
    assert!(outputs.iter().any(|o| o.topic == "zerodha.signals.raw"));
    assert!(outputs.iter().any(|o| o.topic == "paper.signals.raw"));
}
