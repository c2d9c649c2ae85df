//! `alpha-panda run` with brokers paper + zerodha against the fake Kite server, end to end through
//! the binary: the session stored by `kite login`, the instruments master refreshed from Kite at
//! start-up, ticks from the fake's websocket (`market_feed.source = "kite"`), a strategy with
//! `zerodha_trading_enabled` trading on Kite (MIS, tagged orders), fills arriving both at once
//! (COMPLETE) and later through websocket order updates only, and the paper and zerodha namespaces
//! kept apart; and a whole day's faults: a kill -9 between two trades of one order, a session that
//! expires mid-run and a new `kite login`, Zerodha's square-off. Unix only: the run is stopped with
//! signals, as a service manager stops it.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use alpha_panda_core::{Broker, Clock, ExecutionMode, Price, Side, SystemClock};
use alpha_panda_kite::fake::{FakeKite, FakeKiteConfig, FillBehaviour, RandomWalk};
use alpha_panda_kite::ZerodhaSettings;
use alpha_panda_store::{LedgerFill, Store, StrategyConfiguration};
use rust_decimal::Decimal;

const STRATEGY: &str = "ema_fast_infy";
const INFY: u32 = 408065;
const INITIAL_CASH: i64 = 1_000_000;
/// Generous: the binary shares two cores with other builds and tests.
const DEADLINE: Duration = Duration::from_secs(150);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn command(dir: &Path, envs: &[(String, String)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
    command
        .current_dir(dir)
        .args(args)
        .env("ALPHA_PANDA__DATA_DIR", dir.join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

fn database(dir: &Path) -> PathBuf {
    dir.join("data/alpha-panda.db")
}

async fn open_store(dir: &Path) -> Store {
    Store::connect(&format!("sqlite://{}", database(dir).display()))
        .await
        .unwrap()
}

async fn fills(store: &Store, broker: Broker) -> Vec<LedgerFill> {
    store.ledger().fills(broker, 1_000_000).await.unwrap()
}

/// The signed quantity the fills add up to.
fn net_quantity(fills: &[LedgerFill]) -> i64 {
    fills
        .iter()
        .map(|f| {
            let q = i64::from(f.fill.quantity.0);
            match f.fill.side {
                Side::Buy => q,
                Side::Sell => -q,
            }
        })
        .sum()
}

/// The cash a portfolio starting with [`INITIAL_CASH`] holds after `fills` and their fees.
fn cash_after(fills: &[LedgerFill]) -> Decimal {
    fills.iter().fold(Decimal::from(INITIAL_CASH), |cash, f| {
        let notional = f.fill.fill_price.0 * Decimal::from(f.fill.quantity.0);
        let cash = match f.fill.side {
            Side::Buy => cash - notional,
            Side::Sell => cash + notional,
        };
        cash - f.fill.fees.total.0
    })
}

/// A portfolio's (cash, position in INFY) from the summary.
fn portfolio(summary: &serde_json::Value, broker: &str) -> (Decimal, i64) {
    let portfolios = summary["brokers"][broker]["portfolios"].as_array().unwrap();
    let portfolio = portfolios
        .iter()
        .find(|p| p["strategy_id"] == STRATEGY)
        .unwrap_or_else(|| panic!("no {broker} portfolio for {STRATEGY}: {summary}"));
    assert_eq!(portfolio["id"], format!("{broker}:{STRATEGY}"));
    let cash: Decimal = portfolio["cash"].as_str().unwrap().parse().unwrap();
    let quantity = portfolio["positions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["instrument_token"] == INFY)
        .map(|p| p["quantity"].as_i64().unwrap())
        .sum();
    (cash, quantity)
}

/// The settings of a run against the fake Kite `kite`: brokers paper + zerodha, the Kite feed, fast
/// retries, no market hours (tests run at any hour) and no daily trade cap (the random walk crosses
/// often); then `extra`.
fn kite_envs(kite: &ZerodhaSettings, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("ALPHA_PANDA__BROKERS", "[\"paper\",\"zerodha\"]"),
        ("ALPHA_PANDA__ZERODHA__API_KEY", kite.api_key.as_str()),
        ("ALPHA_PANDA__ZERODHA__API_SECRET", kite.api_secret.as_str()),
        ("ALPHA_PANDA__ZERODHA__API_URL", kite.api_url.as_str()),
        ("ALPHA_PANDA__ZERODHA__LOGIN_URL", kite.login_url.as_str()),
        ("ALPHA_PANDA__ZERODHA__WS_URL", kite.ws_url.as_str()),
        ("ALPHA_PANDA__ZERODHA__MAX_RETRIES", "1"),
        ("ALPHA_PANDA__ZERODHA__RETRY_BASE_DELAY", "20ms"),
        ("ALPHA_PANDA__ZERODHA__WS_READ_IDLE_TIMEOUT", "30s"),
        ("ALPHA_PANDA__MARKET_FEED__SOURCE", "kite"),
        ("ALPHA_PANDA__RISK__ZERODHA__ENFORCE_MARKET_HOURS", "false"),
        (
            "ALPHA_PANDA__RISK__ZERODHA__MAX_DAILY_TRADES_PER_STRATEGY",
            "100000",
        ),
        (
            "ALPHA_PANDA__RISK__PAPER__MAX_DAILY_TRADES_PER_STRATEGY",
            "100000",
        ),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One `ema_cross` strategy over INFY trading `quantity` units, allowed on zerodha; being the
/// only configuration, no defaults are seeded.
async fn allow_on_zerodha(store: &Store, quantity: u32) {
    let now = SystemClock.now();
    store
        .strategy_configurations()
        .upsert(&StrategyConfiguration {
            id: STRATEGY.into(),
            strategy_type: "ema_cross".into(),
            instruments: vec![INFY],
            parameters: serde_json::json!({"fast": 2, "slow": 4, "quantity": quantity}),
            is_active: true,
            zerodha_trading_enabled: true,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
}

/// Polls `done` every 100 ms until it holds, failing with `what` at the deadline.
async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_trades_paper_and_zerodha_apart_on_kite_ticks_and_order_updates() {
    let market_price = Decimal::new(150_000, 2);
    let late_price = Decimal::new(150_050, 2);
    let fake = FakeKite::start(FakeKiteConfig {
        random_walk: Some(RandomWalk {
            seed: 11,
            interval: Duration::from_millis(100),
            start_price: Price(market_price),
        }),
        ..FakeKiteConfig::default()
    })
    .await
    .unwrap();
    fake.set_fill(FillBehaviour::Complete { market_price });
    let kite = fake.settings();
    let dir = tempfile::tempdir().unwrap();
    let initial_cash = INITIAL_CASH.to_string();
    let envs = kite_envs(
        &kite,
        &[("ALPHA_PANDA__PORTFOLIO__INITIAL_CASH", &initial_cash)],
    );

    // 1. The session, stored by `kite login` (which also creates and migrates the database).
    let login = command(
        dir.path(),
        &envs,
        &[
            "kite",
            "login",
            "--request-token",
            &fake.config().request_token,
        ],
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut login = login;
        login.output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "login failed: {}", text(&out.stderr));

    // 2. One strategy, allowed on zerodha; being the only configuration, no defaults are seeded.
    let store = open_store(dir.path()).await;
    allow_on_zerodha(&store, 1).await;
    assert_eq!(
        store.instruments().count().await.unwrap(),
        0,
        "nothing loaded the instruments master yet"
    );

    // 3. Run until stopped (the duration is only a safety net).
    let mut child = command(dir.path(), &envs, &["run", "--json", "--duration", "300s"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read_stdout = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut { stdout }, &mut bytes).unwrap();
        bytes
    });
    let read_stderr = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut { stderr }, &mut bytes).unwrap();
        bytes
    });
    let waited = tokio::task::spawn_blocking(move || child.wait().unwrap());

    // Phase 1: orders fill at once (COMPLETE), seen through updates or polling.
    wait_until("a zerodha fill at the market price", || async {
        fills(&store, Broker::Zerodha)
            .await
            .iter()
            .any(|f| f.fill.fill_price == Price(market_price))
    })
    .await;
    // The start-up refresh loaded Kite's master (the fake serves 4 instruments).
    assert_eq!(store.instruments().count().await.unwrap(), 4);

    // Phase 2: order history is down and orders stay OPEN until the exchange fills them; the
    // fills can only reach the trader through the websocket order updates.
    fake.set_order_history_unavailable(true);
    fake.set_fill(FillBehaviour::Open);
    let mut completed_late: BTreeSet<String> = BTreeSet::new();
    wait_until("a zerodha fill pushed as a websocket order update", || {
        for order in fake.orders() {
            if order.status() == Some("OPEN") && fake.complete_order(&order.order_id, late_price) {
                completed_late.insert(order.order_id.clone());
            }
        }
        let store = store.clone();
        async move {
            fills(&store, Broker::Zerodha)
                .await
                .iter()
                .any(|f| f.fill.fill_price == Price(late_price))
        }
    })
    .await;

    // A clean stop, as a service manager does it.
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, waited)
        .await
        .expect("run did not stop after SIGTERM")
        .unwrap();
    let out = Output {
        status,
        stdout: read_stdout.await.unwrap(),
        stderr: read_stderr.await.unwrap(),
    };
    let log = text(&out.stderr);
    assert!(out.status.success(), "run failed: {log}");
    assert!(
        !log.contains(&fake.config().access_token),
        "the access token leaked in the logs"
    );
    assert!(
        log.contains("instruments master refreshed from Kite"),
        "no refresh logged: {log}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {}", text(&out.stdout)));

    // Ticks came from the Kite feed.
    assert!(
        summary["brokers"]["zerodha"]["ticks"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(fake.subscriptions().contains_key(&INFY));

    // Orders on Kite: the registry's exchange and symbol, MIS, one distinct tag per order.
    let orders = fake.orders();
    assert!(!orders.is_empty());
    let mut tags = BTreeSet::new();
    for order in &orders {
        let field = |name: &str| order.form.get(name).map(String::as_str);
        assert_eq!(field("exchange"), Some("NSE"), "{:?}", order.form);
        assert_eq!(field("tradingsymbol"), Some("INFY"), "{:?}", order.form);
        assert_eq!(field("product"), Some("MIS"), "{:?}", order.form);
        assert_eq!(field("order_type"), Some("MARKET"), "{:?}", order.form);
        // Kite rejects a MARKET order without market protection; the default is automatic.
        assert_eq!(field("market_protection"), Some("-1"), "{:?}", order.form);
        assert_eq!(field("quantity"), Some("1"), "{:?}", order.form);
        let tag = field("tag").unwrap_or_else(|| panic!("untagged order {:?}", order.form));
        assert!(
            tag.len() == 20
                && tag.starts_with("AP")
                && tag.chars().all(|c| c.is_ascii_alphanumeric()),
            "{tag}"
        );
        assert!(tags.insert(tag.to_string()), "tag {tag} placed twice");
    }
    let kite_ids: BTreeSet<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();

    // Zerodha fills: every one from a Kite order, the late ones from the pushed updates.
    let zerodha = fills(&store, Broker::Zerodha).await;
    let filled = summary["brokers"]["zerodha"]["orders"]["filled"]
        .as_u64()
        .unwrap();
    assert!(filled > 0, "{summary}");
    assert!(!zerodha.is_empty() && zerodha.len() as u64 <= filled);
    let mut late_fills = 0;
    for f in &zerodha {
        assert_eq!(f.fill.execution_mode, ExecutionMode::Zerodha);
        assert_eq!(f.portfolio_id.to_string(), format!("zerodha:{STRATEGY}"));
        assert_eq!(f.fill.tradingsymbol.as_deref(), Some("INFY"));
        let kite_id = f.fill.broker_order_id.as_deref().unwrap();
        assert!(
            kite_ids.contains(kite_id),
            "fill of unknown Kite order {kite_id}"
        );
        if f.fill.fill_price == Price(late_price) {
            assert!(completed_late.contains(kite_id));
            late_fills += 1;
        }
    }
    assert!(late_fills > 0);
    eprintln!(
        "kite orders {}, zerodha fills {} ({late_fills} through order updates), summary {summary}",
        orders.len(),
        zerodha.len()
    );

    // Paper fills never carry a Kite order, and the two namespaces never share an order.
    let paper = fills(&store, Broker::Paper).await;
    assert!(!paper.is_empty(), "the strategy also trades on paper");
    let zerodha_orders: BTreeSet<String> = zerodha
        .iter()
        .map(|f| f.fill.order_id.to_string())
        .collect();
    for f in &paper {
        assert_eq!(f.fill.execution_mode, ExecutionMode::Paper);
        assert_eq!(f.portfolio_id.to_string(), format!("paper:{STRATEGY}"));
        assert!(
            f.fill
                .broker_order_id
                .as_deref()
                .is_none_or(|id| !kite_ids.contains(id)),
            "a paper fill carries a Kite order id: {:?}",
            f.fill
        );
        assert!(!zerodha_orders.contains(&f.fill.order_id.to_string()));
    }

    // Each namespace's portfolio holds exactly its own fills.
    assert_eq!(
        portfolio(&summary, "zerodha"),
        (cash_after(&zerodha), net_quantity(&zerodha)),
        "{summary}"
    );
    assert_eq!(
        portfolio(&summary, "paper"),
        (cash_after(&paper), net_quantity(&paper)),
        "{summary}"
    );
    let by_portfolio: BTreeMap<String, usize> =
        zerodha
            .iter()
            .chain(&paper)
            .fold(BTreeMap::new(), |mut m, f| {
                *m.entry(f.portfolio_id.to_string()).or_default() += 1;
                m
            });
    assert_eq!(by_portfolio.len(), 2, "{by_portfolio:?}");
    store.close().await;
}

/// A running `alpha-panda run` and its output, read in the background.
struct Running {
    pid: u32,
    waited: tokio::task::JoinHandle<std::process::ExitStatus>,
    stdout: tokio::task::JoinHandle<Vec<u8>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

impl Drop for Running {
    /// A test that fails midway leaves no process behind.
    fn drop(&mut self) {
        if !self.waited.is_finished() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

impl Running {
    fn start(dir: &Path, envs: &[(String, String)]) -> Running {
        let mut child = command(dir, envs, &["run", "--json", "--duration", "600s"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        Running {
            pid,
            stdout: tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut { stdout }, &mut bytes).unwrap();
                bytes
            }),
            stderr: tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut { stderr }, &mut bytes).unwrap();
                bytes
            }),
            waited: tokio::task::spawn_blocking(move || child.wait().unwrap()),
        }
    }

    /// Sends `signal` and waits for the process to end; returns its output.
    async fn stop(mut self, signal: &str) -> Output {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(DEADLINE, &mut self.waited)
            .await
            .expect("run did not stop")
            .unwrap();
        Output {
            status,
            stdout: (&mut self.stdout).await.unwrap(),
            stderr: (&mut self.stderr).await.unwrap(),
        }
    }
}

/// The day the issue describes, through the binary: brokers paper + zerodha on the Kite feed, an
/// order filled in two trades with a `kill -9` of the whole process between them, the session
/// expiring mid-run and a new `kite login`, and Zerodha's square-off. At the end every Kite trade
/// is one fill, the namespace's position equals the fake's trades, no order was placed twice, and
/// paper traded beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kite_day_survives_kill_9_an_expired_session_and_the_square_off() {
    let fake = FakeKite::start(FakeKiteConfig {
        random_walk: Some(RandomWalk {
            seed: 5,
            interval: Duration::from_millis(100),
            start_price: Price(Decimal::new(150_000, 2)),
        }),
        ..FakeKiteConfig::default()
    })
    .await
    .unwrap();
    fake.set_fill(FillBehaviour::Open);
    let kite = fake.settings();
    let dir = tempfile::tempdir().unwrap();
    let envs = kite_envs(
        &kite,
        &[
            // Orders rest here until the test fills them: no cancelling at the band.
            ("ALPHA_PANDA__ZERODHA__PROTECTED_ORDER_TIMEOUT", "600s"),
            ("ALPHA_PANDA__ZERODHA__RECONCILE_INTERVAL", "2s"),
        ],
    );
    let login = || {
        let mut login = command(
            dir.path(),
            &envs,
            &[
                "kite",
                "login",
                "--request-token",
                &fake.config().request_token,
            ],
        );
        tokio::task::spawn_blocking(move || login.output().unwrap())
    };
    let out = login().await.unwrap();
    assert!(out.status.success(), "login failed: {}", text(&out.stderr));
    let store = open_store(dir.path()).await;
    allow_on_zerodha(&store, 4).await;

    // 1. The first Kite order fills one unit; then the process is killed.
    let run = Running::start(dir.path(), &envs);
    let mut first = None;
    wait_until("the first order resting at Kite", || {
        first = fake
            .orders()
            .into_iter()
            .find(|o| o.status() == Some("OPEN"));
        let found = first.is_some();
        async move { found }
    })
    .await;
    let first = first.unwrap();
    assert_eq!(first.quantity(), 4);
    assert!(fake.fill(&first.order_id, 1, Decimal::new(150_010, 2)));
    wait_until("the first trade in the ledger", || async {
        fills(&store, Broker::Zerodha)
            .await
            .iter()
            .any(|f| f.fill.broker_order_id.as_deref() == Some(first.order_id.as_str()))
    })
    .await;
    // Every service checkpoints within a moment; the embedded memory log dies with the process,
    // so what a service had not checkpointed when it died would be gone with it (a deployment on
    // Kafka keeps it: the fleet's kill loop). What this kill tests is the trader between two
    // trades of one order.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = run.stop("KILL").await;
    assert!(!killed.status.success());

    // 2. The rest fills while nothing runs; the restarted run reports that trade, only it.
    assert!(fake.fill(&first.order_id, 3, Decimal::new(150_020, 2)));
    fake.set_fill(FillBehaviour::Complete {
        market_price: Decimal::new(150_030, 2),
    });
    let run = Running::start(dir.path(), &envs);
    wait_until("the second trade in the ledger", || async {
        fills(&store, Broker::Zerodha)
            .await
            .iter()
            .filter(|f| f.fill.broker_order_id.as_deref() == Some(first.order_id.as_str()))
            .count()
            >= 2
    })
    .await;

    // A broker message on the ticker becomes an alert.
    fake.send_text("message", "Markets will close at 15:00 today");

    // 3. The session expires: zerodha halts (the Kite feed pauses too: its ticker is refused);
    // a new login resumes both.
    fake.expire_token();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let placed_while_expired = fake.orders().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fake.orders().len(),
        placed_while_expired,
        "an order reached Kite without a session"
    );
    let out = login().await.unwrap();
    assert!(out.status.success(), "login failed: {}", text(&out.stderr));
    wait_until("a zerodha order after the new login", || {
        let placed = fake.orders().len() > placed_while_expired;
        async move { placed }
    })
    .await;

    // 4. No more orders; then Zerodha squares the position off, and the trader takes it up.
    fake.reject_orders(Some("RMS:Blocked for the test".into()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let square_off = fake.square_off("INFY", "MIS", Decimal::new(149_900, 2));
    if let Some(square_off) = &square_off {
        wait_until("the square-off in the ledger", || async {
            fills(&store, Broker::Zerodha)
                .await
                .iter()
                .any(|f| f.fill.broker_order_id.as_deref() == Some(square_off.as_str()))
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = run.stop("TERM").await;
    let log = text(&out.stderr);
    assert!(out.status.success(), "run failed: {log}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {}", text(&out.stdout)));

    // Every Kite trade is one fill, and nothing else is.
    let zerodha = fills(&store, Broker::Zerodha).await;
    let trades: usize = fake.orders().iter().map(|o| o.trades.len()).sum();
    assert_eq!(
        zerodha.len(),
        trades,
        "fills and Kite trades differ: {summary}"
    );
    let mut first_fills: Vec<u32> = zerodha
        .iter()
        .filter(|f| f.fill.broker_order_id.as_deref() == Some(first.order_id.as_str()))
        .map(|f| f.fill.quantity.0)
        .collect();
    first_fills.sort_unstable();
    assert_eq!(first_fills, [1, 3], "the killed order's trades");
    // The namespace holds what Kite holds.
    let kite_net: i64 = fake
        .orders()
        .iter()
        .flat_map(|o| {
            let sign = if o.form.get("transaction_type").map(String::as_str) == Some("BUY") {
                1
            } else {
                -1
            };
            o.trades
                .iter()
                .map(move |t| sign * t["quantity"].as_i64().unwrap_or(0))
        })
        .sum();
    assert_eq!(net_quantity(&zerodha), kite_net, "{summary}");
    if square_off.is_some() {
        assert_eq!(kite_net, 0, "the square-off flattens the position");
    }
    assert_eq!(portfolio(&summary, "zerodha").1, kite_net, "{summary}");
    // No order placed twice.
    let mut tags = BTreeSet::new();
    for order in fake.orders() {
        if let Some(tag) = order.form.get("tag") {
            assert!(tags.insert(tag.clone()), "tag {tag} placed twice");
        }
    }
    // The halt and the resumption were raised, and paper traded on.
    let kinds: Vec<&str> = summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"session_expired"), "{kinds:?}");
    assert!(kinds.contains(&"session_restored"), "{kinds:?}");
    assert!(kinds.contains(&"broker_message"), "{kinds:?}");
    assert!(!fills(&store, Broker::Paper).await.is_empty());
    store.close().await;
}
