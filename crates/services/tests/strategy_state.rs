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
