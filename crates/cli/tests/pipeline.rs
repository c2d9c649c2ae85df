//! The whole pipeline on the embedded defaults, run as the binary: a fixed seed gives byte-identical
//! fills and PnL run after run, and a recorded CSV with bad rows replays the good ones.

use std::path::Path;
use std::process::{Command, Output};

use alpha_panda_core::{Broker, InstrumentToken, MarketTick, Price, Timestamp};
use alpha_panda_store::Store;
use rust_decimal::Decimal;

const START: &str = "2026-01-05T09:15:00+05:30";

fn run(data_dir: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
    command
        .args(["run", "--json", "--duration", "120s"])
        .current_dir(data_dir)
        .env("ALPHA_PANDA__DATA_DIR", data_dir.join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "0")
        .env("ALPHA_PANDA__MARKET_FEED__START_TIME", START);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn summary(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Every fill of the paper ledger as JSON text, in a stable order.
async fn fills(data_dir: &Path) -> Vec<String> {
    let url = format!(
        "sqlite://{}",
        data_dir.join("data/alpha-panda.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    let mut fills: Vec<String> = store
        .ledger()
        .fills(Broker::Paper, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| serde_json::to_string(&f.fill).unwrap())
        .collect();
    fills.sort();
    store.close().await;
    fills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_seed_gives_byte_identical_fills_and_pnl() {
    let env = [
        ("ALPHA_PANDA__MARKET_FEED__MAX_TICKS", "6000"),
        ("ALPHA_PANDA__MARKET_FEED__SEED", "7"),
    ];
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let first = tokio::task::block_in_place(|| run(first_dir.path(), &env));
    let second = tokio::task::block_in_place(|| run(second_dir.path(), &env));

    let a = summary(&first);
    let b = summary(&second);
    assert_eq!(a, b, "summaries differ between two runs of the same seed");
    let paper = &a["brokers"]["paper"];
    assert_eq!(paper["ticks"], 6000);
    let filled = paper["orders"]["filled"].as_u64().unwrap();
    assert!(filled > 0, "the default strategies traded nothing: {paper}");
    assert_eq!(
        paper["signals"]["validated"].as_u64().unwrap(),
        filled + paper["orders"]["failed"].as_u64().unwrap()
    );
    let portfolios = paper["portfolios"].as_array().unwrap();
    assert!(!portfolios.is_empty());
    for p in portfolios {
        for key in [
            "id",
            "strategy_id",
            "cash",
            "realized_pnl",
            "unrealized_pnl",
            "fees",
            "total_pnl",
        ] {
            assert!(p.get(key).is_some(), "portfolio lacks {key}: {p}");
        }
        let d = |k: &str| p[k].as_str().unwrap().parse::<Decimal>().unwrap();
        assert_eq!(
            d("total_pnl"),
            d("realized_pnl") + d("unrealized_pnl") - d("fees")
        );
    }

    let fills_a = fills(first_dir.path()).await;
    let fills_b = fills(second_dir.path()).await;
    assert_eq!(
        fills_a.len() as u64,
        filled,
        "the ledger holds every fill once"
    );
    assert_eq!(
        fills_a, fills_b,
        "fills differ between two runs of the same seed"
    );

    // A different seed is a different session.
    let other_dir = tempfile::tempdir().unwrap();
    let other = tokio::task::block_in_place(|| {
        run(
            other_dir.path(),
            &[
                ("ALPHA_PANDA__MARKET_FEED__MAX_TICKS", "6000"),
                ("ALPHA_PANDA__MARKET_FEED__SEED", "8"),
            ],
        )
    });
    assert_ne!(summary(&other), a);
}

fn tick(token: u32, price: &str, second: i64) -> MarketTick {
    MarketTick {
        instrument_token: InstrumentToken(token),
        tradingsymbol: None,
        last_price: Price(price.parse().unwrap()),
        last_traded_quantity: 1,
        average_traded_price: None,
        volume_traded: 100,
        total_buy_quantity: 0,
        total_sell_quantity: 0,
        ohlc: None,
        oi: None,
        exchange_timestamp: Timestamp::from_unix_micros(1_767_584_700_000_000 + second * 1_000_000)
            .unwrap(),
        depth: None,
    }
}

#[test]
fn a_csv_replay_skips_bad_rows_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let ticks: Vec<MarketTick> = (0..40)
        .map(|n| tick(408065, &format!("{}.05", 1500 + n), n))
        .collect();
    let mut csv = alpha_panda_services::ticks_to_csv(&ticks);
    csv.push_str("not-a-time,408065,,1500,,,,,,,,,,\n");
    csv.push_str("2026-01-05T03:46:00Z,notatoken,,1500,,,,,,,,,,\n");
    let path = dir.path().join("ticks.csv");
    std::fs::write(&path, csv).unwrap();
    let source = format!("csv:{}", path.display());
    let output = run(dir.path(), &[("ALPHA_PANDA__MARKET_FEED__SOURCE", &source)]);
    let summary = summary(&output);
    assert_eq!(summary["brokers"]["paper"]["ticks"], 40);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("line 42") || log.contains("line=42"),
        "bad row not reported: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategy_with_bad_parameters_is_refused_and_the_others_trade() {
    use alpha_panda_store::StrategyConfiguration;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("data/alpha-panda.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let now = Timestamp::from_unix_micros(1_767_584_700_000_000).unwrap();
    let config = |id: &str, parameters: serde_json::Value| StrategyConfiguration {
        id: id.into(),
        strategy_type: "ema_cross".into(),
        instruments: vec![408065, 738561, 341249],
        parameters,
        is_active: true,
        zerodha_trading_enabled: false,
        created_at: now,
        updated_at: now,
    };
    let configs = store.strategy_configurations();
    configs
        .upsert(&config(
            "broken",
            serde_json::json!({"fast": 30, "slow": 10}),
        ))
        .await
        .unwrap();
    configs
        .upsert(&config(
            "healthy",
            serde_json::json!({"fast": 3, "slow": 8}),
        ))
        .await
        .unwrap();
    store.close().await;

    let output = tokio::task::block_in_place(|| {
        run(
            dir.path(),
            &[
                ("ALPHA_PANDA__MARKET_FEED__MAX_TICKS", "3000"),
                ("ALPHA_PANDA__LOGGING__LEVEL", "error"),
            ],
        )
    });
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("broken"),
        "the refusal names the strategy: {log}"
    );
    let summary = summary(&output);
    let portfolios = summary["brokers"]["paper"]["portfolios"]
        .as_array()
        .unwrap();
    assert_eq!(portfolios.len(), 1, "{portfolios:?}");
    assert_eq!(portfolios[0]["strategy_id"], "healthy");
}

/// Two runs in one folder (ARCHITECTURE §4 rule 5): the second run's memory log is new, and its
/// offsets start below those the first run checkpointed. Nothing of the second run may be skipped,
/// and the portfolios, which outlive a run, must equal a recount of the ledger's fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_in_the_same_folder_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = tokio::task::block_in_place(|| {
        run(
            dir.path(),
            &[
                ("ALPHA_PANDA__MARKET_FEED__MAX_TICKS", "6000"),
                ("ALPHA_PANDA__MARKET_FEED__SEED", "7"),
            ],
        )
    });
    let second = tokio::task::block_in_place(|| {
        run(
            dir.path(),
            &[
                ("ALPHA_PANDA__MARKET_FEED__MAX_TICKS", "6000"),
                ("ALPHA_PANDA__MARKET_FEED__SEED", "8"),
                (
                    "ALPHA_PANDA__MARKET_FEED__START_TIME",
                    "2026-01-06T09:15:00+05:30",
                ),
            ],
        )
    });
    let (first, second) = (summary(&first), summary(&second));
    let count = |s: &serde_json::Value, path: &[&str]| {
        path.iter()
            .fold(&s["brokers"]["paper"], |v, k| &v[*k])
            .as_u64()
            .unwrap()
    };
    for s in [&first, &second] {
        assert_eq!(count(s, &["ticks"]), 6000);
        assert_eq!(
            count(s, &["signals", "raw"]),
            count(s, &["signals", "validated"])
                + count(s, &["signals", "rejected"])
                + count(s, &["signals", "at_target"]),
            "a raw signal vanished: {s}"
        );
        assert_eq!(
            count(s, &["signals", "validated"]),
            count(s, &["orders", "filled"]) + count(s, &["orders", "failed"]),
            "a validated signal was never traded: {s}"
        );
    }
    assert!(count(&second, &["orders", "filled"]) > 0);

    let url = format!(
        "sqlite://{}",
        dir.path().join("data/alpha-panda.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    let ledger = store
        .ledger()
        .fills(Broker::Paper, 1_000_000)
        .await
        .unwrap();
    store.close().await;
    assert_eq!(
        ledger.len() as u64,
        count(&first, &["orders", "filled"]) + count(&second, &["orders", "filled"]),
        "the ledger holds every fill of both runs once"
    );
    let mut recount: std::collections::BTreeMap<(String, u32), i64> = Default::default();
    for f in &ledger {
        let signed = i64::from(f.fill.quantity.0);
        let signed = match f.fill.side {
            alpha_panda_core::Side::Buy => signed,
            alpha_panda_core::Side::Sell => -signed,
        };
        *recount
            .entry((f.fill.strategy_id.to_string(), f.fill.instrument_token.0))
            .or_default() += signed;
    }
    recount.retain(|_, q| *q != 0);
    let mut held: std::collections::BTreeMap<(String, u32), i64> = Default::default();
    for p in second["brokers"]["paper"]["portfolios"].as_array().unwrap() {
        for pos in p["positions"].as_array().unwrap() {
            let quantity = pos["quantity"].as_i64().unwrap();
            if quantity != 0 {
                held.insert(
                    (
                        p["strategy_id"].as_str().unwrap().to_string(),
                        pos["instrument_token"].as_u64().unwrap() as u32,
                    ),
                    quantity,
                );
            }
        }
    }
    assert_eq!(held, recount, "portfolio positions differ from the ledger");
}

/// Ticks are input too (review M1): a replay in which 58 of 3,000 INFY rows carry an absurd price
/// publishes the 2,942 good ticks, refuses the 58 to `market.ticks.dlq`, and no strategy ever acts
/// on them: the long/flat strategies never end short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_prices_in_a_replay_are_refused_and_long_only_strategies_stay_long_or_flat() {
    let dir = tempfile::tempdir().unwrap();
    let ticks: Vec<MarketTick> = (0..3000)
        .map(|n| {
            let cents = 150_000 + ((n as f64 / 9.0).sin() * 3_000.0) as i64;
            let price = if n % 50 == 7 && n < 2900 {
                "99999999999999999999999.99".to_string()
            } else {
                format!("{}", Decimal::new(cents - cents % 5, 2))
            };
            tick(408065, &price, n)
        })
        .collect();
    let absurd = ticks
        .iter()
        .filter(|t| t.last_price.0 > Decimal::from(1_000_000))
        .count();
    assert_eq!(absurd, 58);
    let path = dir.path().join("ticks.csv");
    std::fs::write(&path, alpha_panda_services::ticks_to_csv(&ticks)).unwrap();
    let source = format!("csv:{}", path.display());
    let output = run(dir.path(), &[("ALPHA_PANDA__MARKET_FEED__SOURCE", &source)]);
    let summary = summary(&output);
    let paper = &summary["brokers"]["paper"];
    assert_eq!(paper["ticks"], 3000 - 58);
    assert_eq!(paper["ticks_refused"], 58);
    assert!(paper["orders"]["filled"].as_u64().unwrap() > 0, "{paper}");
    for p in paper["portfolios"].as_array().unwrap() {
        if p["strategy_id"].as_str().unwrap().starts_with("momentum") {
            for pos in p["positions"].as_array().unwrap() {
                assert!(pos["quantity"].as_i64().unwrap() >= 0, "short: {p}");
            }
        }
    }
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("tick refused"), "{log}");
}

/// The exact `ema_cross` reference (ARCHITECTURE §6), reimplemented here from its definition, over
/// a simulated session of three instruments: the run's fills are exactly the reference's crosses —
/// same instrument, side, unit and causing tick — now that orders are sized from targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ema_cross_reference_fills_exactly_its_crosses() {
    use alpha_panda_store::StrategyConfiguration;
    let dir = tempfile::tempdir().unwrap();
    let tokens = [408065u32, 738561, 341249];
    let mut simulator =
        alpha_panda_services::TickSimulator::new(5, alpha_panda_services::nse_universe()).unwrap();
    let start = 1_767_584_700_000_000i64;
    let ticks: Vec<MarketTick> = (0..30_000i64)
        .map(|n| simulator.next_tick(Timestamp::from_unix_micros(start + n * 10_000).unwrap()))
        .filter(|t| tokens.contains(&t.instrument_token.0))
        .collect();
    assert!(ticks.len() > 1000);
    let path = dir.path().join("ticks.csv");
    std::fs::write(&path, alpha_panda_services::ticks_to_csv(&ticks)).unwrap();

    let url = format!(
        "sqlite://{}",
        dir.path().join("data/alpha-panda.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let now = Timestamp::from_unix_micros(start).unwrap();
    store
        .strategy_configurations()
        .upsert(&StrategyConfiguration {
            id: "reference".into(),
            strategy_type: "ema_cross".into(),
            instruments: tokens.to_vec(),
            parameters: serde_json::json!({"fast": 10, "slow": 30, "quantity": 1}),
            is_active: true,
            zerodha_trading_enabled: false,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    store.close().await;
    let source = format!("csv:{}", path.display());
    let output = tokio::task::block_in_place(|| {
        run(
            dir.path(),
            &[
                ("ALPHA_PANDA__MARKET_FEED__SOURCE", &source),
                (
                    "ALPHA_PANDA__RISK__PAPER__MAX_DAILY_TRADES_PER_STRATEGY",
                    "1000000",
                ),
            ],
        )
    });
    let paper = &summary(&output)["brokers"]["paper"];
    assert_eq!(paper["signals"]["at_target"], 0, "{paper}");

    // The reference, from its definition.
    let mut expected = Vec::new();
    let mut states: std::collections::HashMap<u32, (f64, f64, u64, bool)> = Default::default();
    let (a_fast, a_slow) = (2.0 / 11.0, 2.0 / 31.0);
    for tick in &ticks {
        let x: f64 = tick.last_price.0.to_string().parse().unwrap();
        let state = states
            .entry(tick.instrument_token.0)
            .or_insert((x, x, 0, false));
        state.0 = a_fast * x + (1.0 - a_fast) * state.0;
        state.1 = a_slow * x + (1.0 - a_slow) * state.1;
        state.2 += 1;
        if state.2 < 30 {
            continue;
        }
        if state.0 > state.1 && !state.3 {
            state.3 = true;
            expected.push((tick.exchange_timestamp, tick.instrument_token.0, "BUY"));
        } else if state.0 < state.1 && state.3 {
            state.3 = false;
            expected.push((tick.exchange_timestamp, tick.instrument_token.0, "SELL"));
        }
    }
    assert!(expected.len() > 20, "the reference barely traded");

    let store = Store::connect(&url).await.unwrap();
    let mut actual: Vec<(Timestamp, u32, &str)> = store
        .ledger()
        .fills(Broker::Paper, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| {
            assert_eq!(f.fill.quantity.0, 1);
            let side = match f.fill.side {
                alpha_panda_core::Side::Buy => "BUY",
                alpha_panda_core::Side::Sell => "SELL",
            };
            (f.fill.filled_at, f.fill.instrument_token.0, side)
        })
        .collect();
    store.close().await;
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected);
}
