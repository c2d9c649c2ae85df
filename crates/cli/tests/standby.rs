//! One writer per state (ARCHITECTURE §4 rule 6), as separate processes on tansu, PostgreSQL and
//! Redis: a second portfolio manager of the same namespace waits as a standby while the first
//! holds the lease; the first is killed with SIGKILL; the standby takes over once the lease lapses
//! and carries on from the first one's checkpoint, losing and doubling nothing — fills re-sent
//! across the handover included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alpha_panda_core::{
    derive_event_id, Broker, Envelope, EventBroker, ExecutionMode, FeeBreakdown, InstrumentToken,
    Money, OrderFilled, OrderId, Payload, Price, Quantity, Side, StrategyId, Timestamp, TopicMap,
};
use alpha_panda_store::testing::fresh_postgres_url;
use alpha_panda_store::Store;
use alpha_panda_stream::testing::TansuBroker;
use alpha_panda_stream::{Log, OutgoingRecord};
use rust_decimal::Decimal;

struct Deployment {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Deployment {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
        command
            .args(args)
            .current_dir(&self.dir)
            .env("ALPHA_PANDA__LOGGING__LEVEL", "info")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    fn spawn(&self, name: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.log_path(name)).unwrap();
        self.command(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }
}

/// The `n`-th fill, under the same event id every time it is built (a re-sent fill).
fn fill(n: i64) -> Envelope {
    let at = Timestamp::from_unix_micros(1_767_590_400_000_000 + n * 1_000_000).unwrap();
    Envelope::root_with_id(
        derive_event_id(
            "01935f2a-7c00-7000-8000-000000000001".parse().unwrap(),
            "standby-fill",
            n as u32,
        ),
        Payload::OrderFilled(OrderFilled {
            order_id: OrderId::new(format!("paper-standby-{n}")).unwrap(),
            broker_order_id: None,
            strategy_id: StrategyId::new("standby").unwrap(),
            instrument_token: InstrumentToken(408065),
            tradingsymbol: Some("INFY".into()),
            side: Side::Buy,
            quantity: Quantity(1),
            fill_price: Price(Decimal::from(1500)),
            fees_source: Default::default(),
            fees: FeeBreakdown {
                total: Money(Decimal::ONE),
                brokerage: Money(Decimal::ONE),
                ..FeeBreakdown::default()
            },
            execution_mode: ExecutionMode::Paper,
            filled_at: at,
        }),
        "standby:408065".into(),
        EventBroker::Paper,
        "trading_engine",
        at,
    )
}

async fn ledger_count(url: &str) -> usize {
    let store = Store::connect(url).await.unwrap();
    let n = store
        .ledger()
        .fills(Broker::Paper, 1_000_000)
        .await
        .unwrap()
        .len();
    store.close().await;
    n
}

async fn eventually(what: &str, limit: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_killed_writer_and_loses_nothing() {
    let broker = TansuBroker::start().unwrap();
    let postgres = fresh_postgres_url().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment {
        dir: dir.path().to_path_buf(),
        env: vec![
            ("ALPHA_PANDA__LOG__URL".into(), broker.log_url()),
            (
                "ALPHA_PANDA__DATABASE__URL".into(),
                postgres.url().to_string(),
            ),
            (
                "ALPHA_PANDA__CACHE__URL".into(),
                "redis://127.0.0.1:6379".into(),
            ),
            (
                "ALPHA_PANDA__CACHE__PREFIX".into(),
                format!(
                    "ap_standby_{}:",
                    dir.path().file_name().unwrap().to_string_lossy()
                ),
            ),
            ("ALPHA_PANDA__RUNTIME__LEASE_TTL".into(), "3s".into()),
        ],
    };
    for args in [["bootstrap"], ["migrate"]] {
        let out = deployment.command(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut writer = deployment.spawn("writer", &["run", "--services", "portfolio_manager"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut standby = deployment.spawn(
        "standby",
        &[
            "run",
            "--services",
            "portfolio_manager",
            "--stop-when-idle",
            "8s",
        ],
    );
    eventually(
        "the second instance waits as a standby",
        Duration::from_secs(30),
        async || deployment.log("standby").contains("waiting as a standby"),
    )
    .await;

    let log = Log::connect(&broker.log_url(), &BTreeMap::new()).unwrap();
    let topic = TopicMap::new(Broker::Paper).orders_filled();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in 0..20 {
        log.send(OutgoingRecord::event(topic.clone(), fill(n)))
            .await
            .unwrap();
    }
    eventually(
        "the writer recorded the first fills",
        Duration::from_secs(60),
        async || ledger_count(postgres.url()).await == 20,
    )
    .await;
    assert!(
        !deployment.log("standby").contains("taking over"),
        "the standby took over while the writer lived:\n{}",
        deployment.log("standby")
    );

    writer.kill().unwrap();
    let _ = writer.wait();
    // While nobody writes: new fills, and five of the first ones again.
    for n in (20..40).chain(0..5) {
        log.send(OutgoingRecord::event(topic.clone(), fill(n)))
            .await
            .unwrap();
    }
    eventually(
        "the standby took over and recorded the rest",
        Duration::from_secs(90),
        async || ledger_count(postgres.url()).await >= 40,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = standby.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the standby never went idle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let standby_log = deployment.log("standby");
    assert!(status.success(), "{standby_log}");
    assert!(standby_log.contains("taking over"), "{standby_log}");
    assert_eq!(ledger_count(postgres.url()).await, 40);

    // The state the standby saved holds every fill once.
    let store = Store::connect(postgres.url())
        .await
        .unwrap()
        .with_lease_ttl(Duration::from_secs(3));
    let manager = alpha_panda_services::portfolio_manager::service::PortfolioManager::open(
        Broker::Paper,
        Default::default(),
        store.clone(),
        None,
    )
    .await
    .unwrap();
    let held: i64 = manager
        .portfolios()
        .flat_map(|p| p.positions.values())
        .map(|p| p.quantity)
        .sum();
    assert_eq!(held, 40, "{standby_log}");
    drop(manager);
    store.close().await;
    postgres.drop_schema().await.unwrap();
}
