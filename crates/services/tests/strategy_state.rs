//! A strategy restored from its saved indicator state behaves exactly like one that never stopped.

mod common;

use alpha_panda_core::{EventId, MarketTick, Price};
use alpha_panda_services::build_strategy;
use common::infy_market_tick;
use rust_decimal::Decimal;

fn tick(n: i64) -> MarketTick {
    // A wave, so that both strategies trade.
    let cents = 150_000 + ((n as f64 / 7.0).sin() * 4_000.0) as i64 + (n % 5) * 35;
    infy_market_tick(n, Price(Decimal::new(cents - cents % 5, 2)))
}

#[test]
fn restored_strategies_continue_exactly() {
    for (kind, parameters) in [
        ("ema_cross", serde_json::json!({"fast": 3, "slow": 9})),
        (
            "mean_reversion",
            serde_json::json!({"window": 12, "entry_z": 1.2, "allow_short": true}),
        ),
    ] {
        let build = || build_strategy("s", kind, &[408065], &parameters).unwrap();
        let ids: Vec<EventId> = (0..400).map(|_| EventId::new_root()).collect();
        let mut uninterrupted = build();
        let mut first_life = build();
        let mut expected = Vec::new();
        let mut actual = Vec::new();
        for n in 0..200 {
            expected.extend(uninterrupted.on_tick(&tick(n), ids[n as usize]));
            actual.extend(first_life.on_tick(&tick(n), ids[n as usize]));
        }
        let saved = first_life.save_state();
        drop(first_life);
        let mut second_life = build();
        second_life.restore_state(saved).unwrap();
        for n in 200..400 {
            expected.extend(uninterrupted.on_tick(&tick(n), ids[n as usize]));
            actual.extend(second_life.on_tick(&tick(n), ids[n as usize]));
        }
        assert!(
            expected.len() > 2,
            "{kind} never traded: the test proves nothing"
        );
        assert_eq!(actual, expected, "{kind} diverged after a restore");
        assert!(build().restore_state(serde_json::json!("garbage")).is_err());
    }
}

/// A signal's id derives from its tick, its strategy and its namespace, not from where the strategy
/// stands in the active list (review M4): a runner restarted with one more strategy, sorting first,
/// re-emits the others' signals for the same tick under the ids they had, so the risk manager
/// recognises the repeats instead of trading them twice.
#[tokio::test]
async fn signal_ids_do_not_depend_on_the_order_of_strategies() {
    use alpha_panda_core::{Broker, Envelope, EventBroker, Payload};
    use alpha_panda_services::strategy_runner::{RunnerStrategy, StrategyRunner};

    let runner = |ids: &[&str]| {
        let strategies = ids
            .iter()
            .map(|id| RunnerStrategy {
                strategy: build_strategy(
                    id,
                    "ema_cross",
                    &[408065],
                    &serde_json::json!({"fast": 3, "slow": 9}),
                )
                .unwrap(),
                zerodha_trading_enabled: true,
                configuration: "ema_cross".into(),
            })
            .collect();
        StrategyRunner::new(strategies, &[Broker::Paper, Broker::Zerodha])
    };
    let ticks: Vec<Envelope> = (0..200)
        .map(|n| {
            Envelope::root(
                Payload::MarketTick(tick(n)),
                "408065".into(),
                EventBroker::Shared,
                "market_feed",
                common::at(n),
            )
        })
        .collect();
    let before = signals_of(runner(&["a", "b"]), &ticks).await;
    let after = signals_of(runner(&["c", "a", "b"]), &ticks).await;
    assert!(before.len() > 4, "no signals: the test proves nothing");
    let after_ab: Vec<_> = after
        .into_iter()
        .filter(|(who, _)| !who.starts_with("c@"))
        .collect();
    assert_eq!(after_ab, before);
    let distinct: std::collections::HashSet<_> = before.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), before.len(), "two signals share an id");
}

/// Each signal `runner` emits for `ticks`, as (`strategy@namespace`, event id).
async fn signals_of(
    mut runner: alpha_panda_services::strategy_runner::StrategyRunner,
    ticks: &[alpha_panda_core::Envelope],
) -> Vec<(String, EventId)> {
    let mut signals = Vec::new();
    for (offset, envelope) in ticks.iter().enumerate() {
        let outputs = common::deliver(
            &mut runner,
            "market.ticks",
            offset as i64,
            envelope,
            common::at(0),
        )
        .await
        .unwrap();
        for output in outputs {
            let alpha_panda_core::Payload::TradingSignal(signal) = &output.payload else {
                panic!("not a signal: {output:?}");
            };
            signals.push((
                format!("{}@{}", signal.strategy_id, output.broker.as_str()),
                output.id.expect("the runner names its signals' ids"),
            ));
        }
    }
    signals
}
