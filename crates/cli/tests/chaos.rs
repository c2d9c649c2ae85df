//! The kill -9 loop of the fault suite: the pipeline as separate processes on tansu, PostgreSQL and
//! Redis, while a seeded loop kills a random stateful process (strategy runner + risk manager,
//! trading engine, portfolio manager) at a random moment and starts it again, over and over. At the
//! end the summary (fills, PnL, snapshots, every count) and the ledger must equal an uninterrupted
//! single-process run over the same ticks: no fill lost or doubled.
//!
//! 20 kills in CI; `scripts/chaos.sh 100` runs more (`ALPHA_PANDA_CHAOS_KILLS`,
//! `ALPHA_PANDA_CHAOS_SEED`) and prints the table of kills.

use std::process::Child;
use std::time::{Duration, Instant};

use alpha_panda_store::testing::fresh_postgres_url;
use alpha_panda_stream::testing::TansuBroker;
use rand::{Rng, SeedableRng};

mod fleet;

use fleet::{ledger_fills, record_ticks, uuid_like, wait, Deployment};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const GROUPS: [(&str, &str); 3] = [
    ("strategy", "strategy_runner,risk_manager"),
    ("trading", "trading_engine"),
    ("portfolio", "portfolio_manager"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_kills_of_stateful_processes_lose_and_double_nothing() {
    let kills = env_number("ALPHA_PANDA_CHAOS_KILLS", 20);
    let seed = env_number("ALPHA_PANDA_CHAOS_SEED", 7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // The feed must outlast the kills: about 1.5 s between two, at 400 ticks/s.
    let ticks = ((kills as usize) * 600).max(4_000);

    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("ticks.csv");
    record_ticks(&csv, ticks);
    let source = format!("csv:{}", csv.display());

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

    let broker = TansuBroker::start().unwrap();
    let postgres = fresh_postgres_url().await.unwrap();
    let fleet_dir = work.path().join("fleet");
    std::fs::create_dir_all(&fleet_dir).unwrap();
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
            (
                "ALPHA_PANDA__CACHE__PREFIX".into(),
                format!("ap_chaos_{}:", uuid_like()),
            ),
            ("ALPHA_PANDA__MARKET_FEED__SOURCE".into(), source),
            (
                "ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND".into(),
                "400".into(),
            ),
            (
                "ALPHA_PANDA__RUNTIME__COMMIT_INTERVAL".into(),
                "100ms".into(),
            ),
            ("ALPHA_PANDA__RUNTIME__LEASE_TTL".into(), "2s".into()),
        ],
    };
    tokio::task::block_in_place(|| {
        fleet.output(&["bootstrap"]);
        fleet.output(&["migrate"]);
    });
    let idle = ["--stop-when-idle", "12s"];
    let start = |name: &str, services: &str| {
        fleet.spawn(
            name,
            &[&["run", "--services", services][..], &idle].concat(),
        )
    };
    let mut processes: Vec<Child> = GROUPS
        .iter()
        .map(|(name, services)| start(&format!("{name}-0"), services))
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let begun = Instant::now();
    let mut feed = fleet.spawn("feed", &["run", "--services", "market_feed"]);

    let mut table = Vec::new();
    let mut lives = [0u32; 3];
    for kill in 0..kills {
        let pause = Duration::from_millis(rng.gen_range(300..2_700));
        tokio::time::sleep(pause).await;
        let which = rng.gen_range(0..GROUPS.len());
        processes[which].kill().unwrap();
        let _ = processes[which].wait();
        lives[which] += 1;
        let (name, services) = GROUPS[which];
        processes[which] = start(&format!("{name}-{}", lives[which]), services);
        table.push((kill + 1, begun.elapsed(), name));
    }
    assert!(
        feed.try_wait().unwrap().is_none(),
        "the feed finished before the last kill; the loop proved less than it claims"
    );

    tokio::task::block_in_place(|| {
        let limit = Duration::from_secs(300);
        wait(&mut feed, "feed", limit, &fleet);
        for (process, (name, _)) in processes.iter_mut().zip(GROUPS) {
            wait(process, name, limit, &fleet);
        }
    });
    println!("kill  at      process");
    for (n, at, name) in &table {
        println!("{n:>4}  {:>6.1}s  {name}", at.as_secs_f64());
    }

    let actual: serde_json::Value = tokio::task::block_in_place(|| {
        serde_json::from_slice(&fleet.output(&["summary", "--json"]).stdout).unwrap()
    });
    assert_eq!(
        actual,
        expected,
        "after {kills} kills (seed {seed}) the fleet's summary differs from the single-process \
         run:\n{}",
        fleet.logs()
    );
    assert_eq!(
        ledger_fills(postgres.url()).await,
        expected_fills,
        "the ledgers differ after {kills} kills (seed {seed})"
    );
    println!(
        "{kills} kills (seed {seed}): {} fills, every one once",
        expected_fills.len()
    );
    postgres.drop_schema().await.unwrap();
}
