//! The pipeline as separate processes on real components — a Kafka-protocol broker (tansu),
//! PostgreSQL and Redis — compared with the single-process run on the embedded defaults over the same
//! recorded ticks. The strategy runner and risk manager, the trading engine and the portfolio
//! manager are killed with SIGKILL mid-stream and restarted; a malformed record is written to `market.ticks`. The run must still end with exactly the
//! fills and PnL of the uninterrupted single-process run, and the malformed record in its DLQ.

use std::collections::BTreeMap;
use std::time::Duration;

use alpha_panda_core::{Broker, Envelope, Payload, TopicMap};
use alpha_panda_store::testing::fresh_postgres_url;
use alpha_panda_stream::testing::TansuBroker;
use alpha_panda_stream::{Log, OutgoingRecord, RecordValue};

const TICKS: usize = 4_000;

mod fleet;

use fleet::{ledger_fills, record_ticks, uuid_like, wait, Deployment};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_survive_kill_9_and_match_the_single_process_run() {
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("ticks.csv");
    record_ticks(&csv, TICKS);
    let source = format!("csv:{}", csv.display());

    // The reference: one process, embedded defaults, no interruption.
    let reference_dir = work.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    let reference = Deployment {
        dir: reference_dir.clone(),
        env: vec![
            ("ALPHA_PANDA__MARKET_FEED__SOURCE".into(), source.clone()),
            (
                "ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND".into(),
                "0".into(),
            ),
            (
                "ALPHA_PANDA__DATA_DIR".into(),
                reference_dir.join("data").display().to_string(),
            ),
        ],
    };
    let expected: serde_json::Value = tokio::task::block_in_place(|| {
        serde_json::from_slice(&reference.output(&["run", "--json"]).stdout).unwrap()
    });
    let expected_fills = ledger_fills(&format!(
        "sqlite://{}",
        reference_dir.join("data/alpha-panda.db").display()
    ))
    .await;
    assert!(!expected_fills.is_empty(), "the reference run made no fill");

    // The fleet: tansu, PostgreSQL (own schema), Redis (own prefix), one process per service group.
    let broker = TansuBroker::start().unwrap();
    let postgres = fresh_postgres_url().await.unwrap();
    let fleet_dir = work.path().join("fleet");
    std::fs::create_dir_all(&fleet_dir).unwrap();
    let prefix = format!("ap_test_{}:", uuid_like());
    let cache_prefix = prefix.clone();
    let fleet = Deployment {
        dir: fleet_dir,
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
            ("ALPHA_PANDA__CACHE__PREFIX".into(), prefix),
            ("ALPHA_PANDA__MARKET_FEED__SOURCE".into(), source.clone()),
            // Slow enough that the kills land mid-stream.
            (
                "ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND".into(),
                "400".into(),
            ),
            (
                "ALPHA_PANDA__RUNTIME__COMMIT_INTERVAL".into(),
                "100ms".into(),
            ),
            // A killed writer's lease lapses after 3 s, so its restarted successor takes over soon.
            ("ALPHA_PANDA__RUNTIME__LEASE_TTL".into(), "3s".into()),
        ],
    };
    tokio::task::block_in_place(|| {
        fleet.output(&["bootstrap"]);
        fleet.output(&["migrate"]);
    });

    let idle = ["--stop-when-idle", "10s"];
    let mut strategy = fleet.spawn(
        "strategy",
        &[
            &["run", "--services", "strategy_runner,risk_manager"][..],
            &idle,
        ]
        .concat(),
    );
    let mut trading = fleet.spawn("trading-1", &["run", "--services", "trading_engine"]);
    let mut portfolio = fleet.spawn("portfolio-1", &["run", "--services", "portfolio_manager"]);
    // Let the consumers join their groups before the ticks flow.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut feed = fleet.spawn("feed", &["run", "--services", "market_feed"]);

    // A malformed record on market.ticks: every consumer must dead-letter it and carry on.
    let log = Log::connect(&broker.log_url(), &BTreeMap::new()).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    log.send(OutgoingRecord {
        topic: TopicMap::market_ticks().into(),
        key: Some("408065".into()),
        value: RecordValue::Bytes(bytes::Bytes::from_static(b"{\"this is\": not an envelope")),
        headers: Vec::new(),
    })
    .await
    .unwrap();

    // Mid-stream: SIGKILL every stateful process — strategy runner + risk manager, trading engine,
    // portfolio manager — then restart them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    strategy.kill().unwrap();
    trading.kill().unwrap();
    portfolio.kill().unwrap();
    let _ = strategy.wait();
    let _ = trading.wait();
    let _ = portfolio.wait();
    assert!(
        feed.try_wait().unwrap().is_none(),
        "the feed finished before the kill; the test would prove nothing"
    );
    let mut strategy = fleet.spawn(
        "strategy-2",
        &[
            &["run", "--services", "strategy_runner,risk_manager"][..],
            &idle,
        ]
        .concat(),
    );
    let mut trading = fleet.spawn(
        "trading-2",
        &[&["run", "--services", "trading_engine"][..], &idle].concat(),
    );
    let mut portfolio = fleet.spawn(
        "portfolio-2",
        &[&["run", "--services", "portfolio_manager"][..], &idle].concat(),
    );

    tokio::task::block_in_place(|| {
        let limit = Duration::from_secs(240);
        wait(&mut feed, "feed", limit, &fleet);
        wait(
            &mut strategy,
            "strategy runner + risk manager",
            limit,
            &fleet,
        );
        wait(&mut trading, "trading engine", limit, &fleet);
        wait(&mut portfolio, "portfolio manager", limit, &fleet);
    });

    let actual: serde_json::Value = tokio::task::block_in_place(|| {
        serde_json::from_slice(&fleet.output(&["summary", "--json"]).stdout).unwrap()
    });
    assert_eq!(
        actual,
        expected,
        "the fleet's summary differs from the single-process run:\n{}",
        fleet.logs()
    );
    let fleet_fills = ledger_fills(postgres.url()).await;
    assert_eq!(fleet_fills, expected_fills, "the ledgers differ");

    // The malformed record went to market.ticks.dlq, classified as poison, by every consumer.
    // Read up to five times: tansu reports a high watermark one past the first record of the last
    // batch written, so one read may end before the rest of that batch. A dead letter that is not
    // in the log fails every read.
    let expected_services = [
        "portfolio_manager",
        "risk_manager",
        "strategy_runner",
        "trading_engine",
    ];
    let mut reads = 0;
    let (dlq, services) = loop {
        reads += 1;
        let dlq = log
            .read_all(&TopicMap::dlq(&TopicMap::market_ticks()))
            .await
            .unwrap();
        let mut services: Vec<String> = dlq
            .iter()
            .filter_map(|r| match &r.value {
                RecordValue::Bytes(b) => Envelope::from_json(b).ok(),
                RecordValue::Event(e) => Some(Envelope::clone(e)),
            })
            .filter_map(|e| match e.payload {
                Payload::DlqMessage(m) => {
                    assert_eq!(m.error_class.as_str(), "poison");
                    Some(m.service)
                }
                _ => None,
            })
            .collect();
        services.sort();
        services.dedup();
        if services == expected_services || reads == 5 {
            break (dlq, services);
        }
        eprintln!("read {reads} of the DLQ found {services:?}; reading again");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(
        services,
        expected_services,
        "every consumer of market.ticks dead-letters the malformed record ({} records on the DLQ \
         after {reads} reads):\n{}",
        dlq.len(),
        fleet.logs()
    );

    // Every service published its counters to the cache the dashboard reads.
    let cache = alpha_panda_cache::Cache::connect("redis://127.0.0.1:6379", &cache_prefix)
        .await
        .unwrap();
    let services: Vec<String> = cache
        .metrics()
        .list(Broker::Paper)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.service)
        .collect();
    for service in ["portfolio_manager", "risk_manager", "trading_engine"] {
        assert!(
            services.iter().any(|s| s == service),
            "{service} missing from {services:?}"
        );
    }
    postgres.drop_schema().await.unwrap();
}
