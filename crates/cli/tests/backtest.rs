//! `alpha-panda backtest` as the binary: the same fills and PnL as `run` on the same ticks, the exact
//! `ema_cross` reference, byte-identical outputs run after run, Parquet equal to CSV, bad input
//! answered clearly, and `bench backtest`'s report consistent with its own figures.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use alpha_panda_core::{Broker, MarketTick, Timestamp};
use alpha_panda_store::{Store, StrategyConfiguration};
use rust_decimal::Decimal;

/// 09:15 IST on a trading day.
const START_MICROS: i64 = 1_767_584_700_000_000;
const TOKENS: [u32; 3] = [408065, 738561, 341249];

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
}

fn checked(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// A simulated session over three instruments, one tick every 10 ms, as a replay CSV.
fn session(dir: &Path, ticks: i64) -> (std::path::PathBuf, Vec<MarketTick>) {
    let mut simulator =
        alpha_panda_services::TickSimulator::new(5, alpha_panda_services::nse_universe()).unwrap();
    let ticks: Vec<MarketTick> = (0..ticks)
        .map(|n| {
            simulator.next_tick(Timestamp::from_unix_micros(START_MICROS + n * 10_000).unwrap())
        })
        .filter(|t| TOKENS.contains(&t.instrument_token.0))
        .collect();
    let path = dir.join("ticks.csv");
    std::fs::write(&path, alpha_panda_services::ticks_to_csv(&ticks)).unwrap();
    (path, ticks)
}

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("data/alpha-panda.db").display())
}

/// Stores the strategies both hosts run: the reference crossover and a mean reversion that also
/// goes short.
async fn store_strategies(dir: &Path) {
    let store = Store::connect(&database_url(dir)).await.unwrap();
    store.migrate().await.unwrap();
    let now = Timestamp::from_unix_micros(START_MICROS).unwrap();
    for (id, kind, parameters) in [
        (
            "reference",
            "ema_cross",
            serde_json::json!({"fast": 10, "slow": 30, "quantity": 2}),
        ),
        (
            "reversion",
            "mean_reversion",
            serde_json::json!({"window": 20, "entry_z": 1.5}),
        ),
    ] {
        store
            .strategy_configurations()
            .upsert(&StrategyConfiguration {
                id: id.into(),
                strategy_type: kind.into(),
                instruments: TOKENS.to_vec(),
                parameters,
                is_active: true,
                zerodha_trading_enabled: false,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
    }
    store.close().await;
}

fn env<'c>(command: &'c mut Command, dir: &Path) -> &'c mut Command {
    command
        .current_dir(dir)
        .env("ALPHA_PANDA__DATA_DIR", dir.join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .env("ALPHA_PANDA__API__ENABLED", "false")
        .env(
            "ALPHA_PANDA__RISK__PAPER__MAX_DAILY_TRADES_PER_STRATEGY",
            "1000000",
        )
}

fn backtest(dir: &Path, ticks: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut command = binary();
    env(&mut command, dir)
        .args(["backtest", "--ticks"])
        .arg(ticks)
        .arg("--out")
        .arg(out)
        .args(extra);
    checked(command.output().unwrap(), "backtest")
}

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The paper ledger's fills as the rows of fills.csv they share: the columns of
/// [`FILL_COLUMNS`], the order id last when `with_order_id`.
async fn ledger_fills(dir: &Path, with_order_id: bool) -> Vec<Vec<String>> {
    let store = Store::connect(&database_url(dir)).await.unwrap();
    let fills = store
        .ledger()
        .fills(Broker::Paper, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| {
            let fill = f.fill;
            let mut row = vec![
                fill.filled_at
                    .as_datetime()
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
                fill.instrument_token.0.to_string(),
                fill.strategy_id.to_string(),
                format!("{:?}", fill.side).to_uppercase(),
                fill.quantity.0.to_string(),
                fill.fill_price.0.to_string(),
                fill.fees.total.0.to_string(),
            ];
            if with_order_id {
                row.push(fill.order_id.to_string());
            }
            row
        })
        .collect();
    store.close().await;
    fills
}

/// The columns of fills.csv a run's ledger also has (with the order id).
const FILL_COLUMNS: [&str; 7] = [
    "exchange_timestamp",
    "instrument_token",
    "strategy_id",
    "side",
    "quantity",
    "price",
    "fees",
];

/// A backtest's fills.csv as rows of [`FILL_COLUMNS`], the order id last when `with_order_id`.
fn backtest_fills(out: &Path, with_order_id: bool) -> Vec<Vec<String>> {
    read_csv(&out.join("fills.csv"))
        .into_iter()
        .map(|row| {
            let mut columns: Vec<String> = FILL_COLUMNS.iter().map(|c| row[*c].clone()).collect();
            if with_order_id {
                columns.push(row["order_id"].clone());
            }
            columns
        })
        .collect()
}

fn decimal(value: &serde_json::Value) -> Decimal {
    value
        .as_str()
        .map(|s| s.parse().unwrap())
        .unwrap_or_else(|| panic!("not a decimal string: {value}"))
}

/// ARCHITECTURE §6a: a second host for the service cores, not a second implementation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_and_run_give_the_same_fills_and_pnl() {
    let dir = tempfile::tempdir().unwrap();
    let (ticks, _) = session(dir.path(), 30_000);
    store_strategies(dir.path()).await;

    let source = format!("csv:{}", ticks.display());
    let run = tokio::task::block_in_place(|| {
        let mut command = binary();
        env(&mut command, dir.path())
            .args(["run", "--json", "--duration", "120s"])
            .env("ALPHA_PANDA__MARKET_FEED__SOURCE", &source)
            .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "0");
        checked(command.output().unwrap(), "run")
    });
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let paper = &summary["brokers"]["paper"];

    let out = dir.path().join("out");
    tokio::task::block_in_place(|| backtest(dir.path(), &ticks, &out, &[]));

    // Fills: every field the ledger and fills.csv share.
    let mut from_run = ledger_fills(dir.path(), true).await;
    let mut from_backtest = backtest_fills(&out, true);
    from_run.sort();
    from_backtest.sort();
    assert!(from_run.len() > 50, "the strategies barely traded: {paper}");
    let shorts = from_backtest.iter().filter(|f| f[2] == "reversion").count();
    assert!(shorts > 0, "the mean reversion never traded");
    assert_eq!(from_backtest, from_run);

    // PnL: each portfolio's last point of the equity curve is the run's final snapshot.
    let equity = read_csv(&out.join("equity.csv"));
    for portfolio in paper["portfolios"].as_array().unwrap() {
        let id = portfolio["id"].as_str().unwrap();
        let last = equity
            .iter()
            .rev()
            .find(|p| p["portfolio_id"] == id)
            .unwrap_or_else(|| panic!("no equity point of {id}"));
        for (ours, theirs) in [
            ("cash", "cash"),
            ("realized_pnl", "realized_pnl"),
            ("unrealized_pnl", "unrealized_pnl"),
            ("fees", "fees"),
        ] {
            assert_eq!(
                last[ours].parse::<Decimal>().unwrap(),
                decimal(&portfolio[theirs]),
                "{id} {ours}"
            );
        }
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let total_run: Decimal = paper["portfolios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| decimal(&p["total_pnl"]))
        .sum();
    assert_eq!(decimal(&report["total"]["net_pnl"]), total_run);
    assert_eq!(
        report["counts"]["fills"].as_u64().unwrap() as usize,
        from_run.len()
    );
}

/// The exact reference (ARCHITECTURE §6), from its definition: fills at the causing tick, at its
/// price (no slippage), on exactly the crosses. The same command twice gives byte-identical
/// files, and the same ticks as Parquet give the same fills.
#[test]
fn the_reference_fills_its_crosses_and_the_outputs_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (csv_path, ticks) = session(dir.path(), 30_000);
    let parquet_path = dir.path().join("ticks.parquet");
    alpha_panda_backtest::parquet_ticks::write_ticks(&parquet_path, ticks.iter().cloned()).unwrap();
    let args = [
        "--strategy",
        "ema_cross",
        "--params",
        r#"{"fast":10,"slow":30,"quantity":1}"#,
    ];
    let no_slippage = |command: &mut Command| {
        command.env("ALPHA_PANDA__PAPER__SLIPPAGE_BPS_MAX", "0");
    };
    let run = |input: &Path, out: &Path| {
        let mut command = binary();
        env(&mut command, dir.path())
            .args(["backtest", "--ticks"])
            .arg(input)
            .arg("--out")
            .arg(out)
            .args(args);
        no_slippage(&mut command);
        checked(command.output().unwrap(), "backtest")
    };
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let parquet = dir.path().join("parquet");
    run(&csv_path, &first);
    run(&csv_path, &second);
    run(&parquet_path, &parquet);

    for file in [
        "fills.csv",
        "orders.csv",
        "equity.csv",
        "report.json",
        "report.html",
    ] {
        let a = std::fs::read(first.join(file)).unwrap();
        let b = std::fs::read(second.join(file)).unwrap();
        assert!(!a.is_empty(), "{file} is empty");
        assert!(a == b, "{file} differs between two runs of the same input");
    }
    let html = std::fs::read_to_string(first.join("report.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("http://") && !html.contains("https://"));

    // The reference, from its definition.
    let mut expected = Vec::new();
    let mut states: BTreeMap<u32, (f64, f64, u64, bool)> = BTreeMap::new();
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
        let at = tick
            .exchange_timestamp
            .as_datetime()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        if state.0 > state.1 && !state.3 {
            state.3 = true;
            expected.push((at, tick.instrument_token.0, "BUY", tick.last_price.0));
        } else if state.0 < state.1 && state.3 {
            state.3 = false;
            expected.push((at, tick.instrument_token.0, "SELL", tick.last_price.0));
        }
    }
    assert!(expected.len() > 20, "the reference barely traded");
    let fills = read_csv(&first.join("fills.csv"));
    let mut actual: Vec<(String, u32, &str, Decimal)> = fills
        .iter()
        .map(|f| {
            assert_eq!(f["quantity"], "1");
            let side = if f["side"] == "BUY" { "BUY" } else { "SELL" };
            (
                f["exchange_timestamp"].clone(),
                f["instrument_token"].parse().unwrap(),
                side,
                f["price"].parse().unwrap(),
            )
        })
        .collect();
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected);

    // Parquet: the same ticks, the same fills (the order ids derive from the file's bytes).
    let without_ids = |dir: &Path| -> Vec<Vec<String>> {
        read_csv(&dir.join("fills.csv"))
            .into_iter()
            .map(|mut row| {
                row.remove("order_id");
                row.into_values().collect()
            })
            .collect()
    };
    assert_eq!(without_ids(&parquet), without_ids(&first));
}

/// Bad rows are reported with their line and skipped; a file that cannot be read, a bad parameter
/// and a missing column are clear errors.
#[test]
fn bad_input_is_answered_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = session(dir.path(), 3_000);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("not-a-time,408065,,1500,,,,,,,,,,\n");
    text.push_str("2026-01-05T03:46:00Z,notatoken,,1500,,,,,,,,,,\n");
    let lines = text.lines().count() as u64;
    std::fs::write(&path, &text).unwrap();
    let out = dir.path().join("out");
    let output = backtest(
        dir.path(),
        &path,
        &out,
        &["--strategy", "ema_cross", "--json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["input"]["bad_rows"], 2);
    let bad = report["input"]["first_bad_rows"].as_array().unwrap();
    assert_eq!(bad[0]["line"].as_u64(), Some(lines - 1));
    assert_eq!(bad[1]["line"].as_u64(), Some(lines));
    assert!(bad[1]["reason"]
        .as_str()
        .unwrap()
        .contains("instrument_token"));
    assert_eq!(report["counts"]["ticks"].as_u64(), Some(lines - 3));

    let failing = |extra: &[&str], ticks: &Path| {
        let mut command = binary();
        env(&mut command, dir.path())
            .args(["backtest", "--ticks"])
            .arg(ticks)
            .arg("--out")
            .arg(dir.path().join("failed"))
            .args(extra);
        let output = command.output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let missing = failing(
        &["--strategy", "ema_cross"],
        Path::new("/nonexistent/ticks.csv"),
    );
    assert!(missing.contains("/nonexistent/ticks.csv"), "{missing}");
    let params = failing(&["--strategy", "ema_cross", "--params", "{fast"], &path);
    assert!(params.contains("--params"), "{params}");
    let bad_params = failing(
        &[
            "--strategy",
            "ema_cross",
            "--params",
            r#"{"fast":30,"slow":10}"#,
        ],
        &path,
    );
    assert!(bad_params.contains("slow"), "{bad_params}");
    let headerless = dir.path().join("headerless.csv");
    std::fs::write(&headerless, "exchange_timestamp,last_price\n").unwrap();
    let header = failing(&["--strategy", "ema_cross"], &headerless);
    assert!(header.contains("instrument_token"), "{header}");
}

/// The short form of `bench backtest`: its ratios are its own figures' ratios, and CSV and
/// Parquet agree.
#[test]
fn bench_backtest_reports_consistent_figures() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = binary();
    let output = env(&mut command, dir.path())
        .args([
            "bench", "backtest", "--ticks", "20000", "--runs", "1", "--json", "--keep",
        ])
        .arg(dir.path().join("bench"))
        .output()
        .unwrap();
    let output = checked(output, "bench backtest");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ticks"], 20000);
    assert_eq!(report["same_fills"], true);
    let inputs = report["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    for input in inputs {
        let rate = input["ticks_per_second"].as_f64().unwrap();
        let wall = input["wall_seconds"].as_f64().unwrap();
        assert!((rate * wall - 20000.0).abs() < 1.0, "{input}");
        let floor = input["against_floor"].as_f64().unwrap();
        assert!((floor - rate / 2_000_000.0).abs() < 1e-9, "{input}");
        let read = input["read_only_ticks_per_second"].as_f64().unwrap();
        assert!((input["against_input"].as_f64().unwrap() - rate / read).abs() < 1e-9);
        let peak = input["peak_resident_bytes"].as_u64().unwrap();
        assert!(peak > 1_000_000, "{input}");
        assert!(input["fills"].as_u64().unwrap() > 0, "{input}");
    }
}

/// report.html in Chromium (playwright-core, as the dashboard's test): its charts and tables show
/// with no request and no console error. `UPDATE_SCREENSHOTS=1` copies the screenshot to
/// `docs/backtest-report.png`, the README's picture.
#[test]
fn the_report_opens_in_a_browser_without_the_network() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let browser = root.join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run `apt-get install chromium`"
    );
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci --prefix tests/browser`"
    );
    let dir = tempfile::tempdir().unwrap();
    // The README's example (twelve days of a simulated session, one tick a second) for its
    // picture; a shorter session over as many days otherwise.
    let update = std::env::var_os("UPDATE_SCREENSHOTS").is_some();
    let (ticks, step) = if update {
        ("1000000", "1s")
    } else {
        ("200000", "5s")
    };
    let mut command = binary();
    let output = env(&mut command, dir.path())
        .args(["bench", "backtest", "--ticks", ticks, "--step", step])
        .args(["--runs", "1", "--keep"])
        .arg(dir.path().join("session"))
        .output()
        .unwrap();
    checked(output, "bench backtest");
    let out = dir.path().join("out");
    backtest(
        dir.path(),
        &dir.path().join("session/ticks.parquet"),
        &out,
        &[
            "--strategy",
            "ema_cross",
            "--params",
            r#"{"fast":10,"slow":30}"#,
            "--chart",
            "RELIANCE",
        ],
    );
    let screenshot = dir.path().join("report.png");
    let output = Command::new("node")
        .arg(browser.join("report.mjs"))
        .env("REPORT", out.join("report.html"))
        .env("SCREENSHOT", &screenshot)
        .output()
        .unwrap();
    checked(output, "the report in the browser");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
    if update {
        std::fs::copy(&screenshot, root.join("docs/backtest-report.png")).unwrap();
    }
}

/// A day traded on the log can be replayed: `run` on Kafka (tansu) from a CSV, `record` writes
/// its `market.ticks` to Parquet, and `backtest` of that file gives the run's fills (all but the
/// order ids, which derive from the file's bytes; no slippage, which derives from them too).
/// `report --broker paper` computes the report from the run's ledger: its trades and charges are
/// the backtest's, and the charges the run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_backtests_to_its_fills_and_its_ledger_reports_its_trades() {
    use alpha_panda_stream::testing::TansuBroker;
    let dir = tempfile::tempdir().unwrap();
    let (ticks, _) = session(dir.path(), 30_000);
    store_strategies(dir.path()).await;
    let broker = TansuBroker::start().unwrap();
    let log_url = broker.log_url();
    let source = format!("csv:{}", ticks.display());
    let on_kafka = |command: &mut Command| {
        command
            .env("ALPHA_PANDA__LOG__URL", &log_url)
            .env("ALPHA_PANDA__PAPER__SLIPPAGE_BPS_MAX", "0");
    };
    let run = tokio::task::block_in_place(|| {
        let mut command = binary();
        env(&mut command, dir.path())
            // Idle only once every consumer has joined its group and read the ticks.
            .args([
                "run",
                "--json",
                "--stop-when-idle",
                "20s",
                "--duration",
                "180s",
            ])
            .env("ALPHA_PANDA__MARKET_FEED__SOURCE", &source)
            .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "0");
        on_kafka(&mut command);
        checked(command.output().unwrap(), "run on Kafka")
    });
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let paper = &summary["brokers"]["paper"];

    let recorded = dir.path().join("recorded.parquet");
    tokio::task::block_in_place(|| {
        let mut command = binary();
        env(&mut command, dir.path())
            .args(["record", "--out"])
            .arg(&recorded);
        on_kafka(&mut command);
        checked(command.output().unwrap(), "record")
    });
    let out = dir.path().join("out");
    tokio::task::block_in_place(|| {
        let mut command = binary();
        env(&mut command, dir.path())
            .args(["backtest", "--ticks"])
            .arg(&recorded)
            .arg("--out")
            .arg(&out)
            .env("ALPHA_PANDA__PAPER__SLIPPAGE_BPS_MAX", "0");
        checked(command.output().unwrap(), "backtest of the recording")
    });

    let mut from_run = ledger_fills(dir.path(), false).await;
    let mut from_backtest = backtest_fills(&out, false);
    from_run.sort();
    from_backtest.sort();
    assert!(
        from_run.len() > 20,
        "the run barely traded: {paper}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(from_backtest, from_run);

    let report_dir = dir.path().join("report");
    let report = tokio::task::block_in_place(|| {
        let mut command = binary();
        env(&mut command, dir.path())
            .args(["report", "--broker", "paper", "--json", "--out"])
            .arg(&report_dir);
        checked(command.output().unwrap(), "report --broker paper")
    });
    let ledger: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let ledger = &ledger["report"]["total"];
    let backtest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let backtest = &backtest["total"];
    // The same fills make the same round trips, whatever marks the open positions: live and
    // backtest judged on the same terms.
    for figure in [
        "fills",
        "trades",
        "open_trades",
        "wins",
        "losses",
        "win_rate",
        "average_win",
        "average_loss",
        "largest_win",
        "largest_loss",
        "profit_factor",
        "expectancy",
        "fees",
        "long",
        "short",
        "per_instrument",
    ] {
        assert_eq!(ledger[figure], backtest[figure], "{figure}");
    }
    assert_eq!(ledger["fills"].as_u64().unwrap() as usize, from_run.len());
    // Charges are the run's, to the paisa.
    let fees_run: Decimal = paper["portfolios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| decimal(&p["fees"]))
        .sum();
    assert_eq!(decimal(&ledger["fees"]["total"]), fees_run);
    assert!(report_dir.join("report.html").exists());
}

/// Strategies from a TOML file (by symbol and over every instrument) and from the store by id,
/// and a window: every fill lies inside it, and the ticks outside are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_from_a_file_or_the_store_and_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let (ticks, all) = session(dir.path(), 30_000);
    store_strategies(dir.path()).await;
    let toml = dir.path().join("strategies.toml");
    std::fs::write(
        &toml,
        r#"
[[strategies]]
id = "infy_only"
type = "ema_cross"
params = { fast = 5, slow = 20 }
instruments = ["INFY"]

[[strategies]]
id = "everything"
type = "mean_reversion"
instruments = "all"
"#,
    )
    .unwrap();
    let first = all.first().unwrap().exchange_timestamp.unix_micros();
    let last = all.last().unwrap().exchange_timestamp.unix_micros();
    let at = |micros: i64| {
        Timestamp::from_unix_micros(micros)
            .unwrap()
            .as_datetime()
            .to_rfc3339()
    };
    let (from, to) = (
        at(first + (last - first) / 4),
        at(first + (last - first) * 3 / 4),
    );
    let out = dir.path().join("file");
    let output = tokio::task::block_in_place(|| {
        backtest(
            dir.path(),
            &ticks,
            &out,
            &[
                "--strategies",
                toml.to_str().unwrap(),
                "--from",
                &from,
                "--to",
                &to,
                "--json",
            ],
        )
    });
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["input"]["strategies"],
        serde_json::json!(["infy_only", "everything"])
    );
    assert!(report["counts"]["outside_window"].as_u64().unwrap() > 0);
    let fills = read_csv(&out.join("fills.csv"));
    assert!(fills.iter().any(|f| f["strategy_id"] == "everything"));
    for fill in &fills {
        if fill["strategy_id"] == "infy_only" {
            assert_eq!(fill["instrument_token"], "408065");
        }
    }
    let in_window = |f: &BTreeMap<String, String>| {
        let t = chrono::DateTime::parse_from_rfc3339(&f["exchange_timestamp"]).unwrap();
        let (a, b) = (
            chrono::DateTime::parse_from_rfc3339(&from).unwrap(),
            chrono::DateTime::parse_from_rfc3339(&to).unwrap(),
        );
        t >= a && t <= b
    };
    assert!(fills.iter().all(in_window));

    let stored = dir.path().join("stored");
    let output = tokio::task::block_in_place(|| {
        backtest(
            dir.path(),
            &ticks,
            &stored,
            &["--strategy-id", "reference", "--json"],
        )
    });
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["input"]["strategies"],
        serde_json::json!(["reference"])
    );
    let fills = read_csv(&stored.join("fills.csv"));
    assert!(!fills.is_empty() && fills.iter().all(|f| f["quantity"] == "2"));
    let unknown = tokio::task::block_in_place(|| {
        let mut command = binary();
        env(&mut command, dir.path())
            .args(["backtest", "--ticks"])
            .arg(&ticks)
            .args(["--out", "x", "--strategy-id", "nobody"])
            .output()
            .unwrap()
    });
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
}
