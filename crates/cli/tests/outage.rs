//! Outages mid-stream (the fault suite's restarts): PostgreSQL, or Redis, is stopped while the
//! pipeline runs on it and started again; the Kafka broker hangs (stopped with SIGSTOP, so it
//! keeps its memory storage) and goes on. The services wait for it — checkpoints are retried, a
//! fill's ledger lookup or a dedup check waits rather than dead-lettering its input — and the run
//! ends with exactly the fills of a run without the outage.
//!
//! These stop the machine's PostgreSQL (`pg_ctlcluster`) and Redis, so no other test shares their
//! binary; each server is started again whatever happens.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use alpha_panda_core::OrderFilled;
use alpha_panda_store::testing::fresh_postgres_url;
use alpha_panda_stream::testing::TansuBroker;

mod fleet;

use fleet::{ledger_fills, record_ticks};

/// The local PostgreSQL cluster, started again when dropped.
struct Postgres {
    version: String,
}

impl Postgres {
    fn find() -> Self {
        let version = std::fs::read_dir("/etc/postgresql")
            .expect("PostgreSQL's clusters are under /etc/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .max()
            .expect("a PostgreSQL cluster");
        Self { version }
    }

    fn ctl(&self, action: &str) {
        let status = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.version, "main", action])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctlcluster");
        assert!(status.success(), "pg_ctlcluster {action} failed");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.version, "main", "start"])
            .status();
    }
}

/// The local Redis, started again (as the machine starts it) when dropped.
struct Redis;

impl Redis {
    fn stop(&self) {
        let status = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        // `shutdown` closes the connection it came on: its status says nothing.
        let _ = status;
        assert!(
            std::net::TcpStream::connect("127.0.0.1:6379").is_err(),
            "Redis is still up"
        );
    }

    fn start(&self) {
        let status = Command::new("redis-server")
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("redis-server");
        assert!(status.success(), "redis-server did not start");
        for _ in 0..50 {
            if std::net::TcpStream::connect("127.0.0.1:6379").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Redis did not come back");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
            self.start();
        }
    }
}

/// The fills of an uninterrupted run over `csv`, on SQLite under `work`.
async fn reference_fills(work: &Path, csv: &Path) -> Vec<OrderFilled> {
    let reference_dir = work.join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    let reference_db = format!("sqlite://{}", reference_dir.join("ref.db").display());
    let out = tokio::task::block_in_place(|| run(&reference_dir, &reference_db, csv, "0").output())
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ledger_fills(&reference_db).await
}

fn run(dir: &Path, database_url: &str, csv: &Path, ticks_per_second: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
    command
        .args(["run", "--json"])
        .current_dir(dir)
        .env("ALPHA_PANDA__DATA_DIR", dir.join("data"))
        .env("ALPHA_PANDA__DATABASE__URL", database_url)
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .env(
            "ALPHA_PANDA__MARKET_FEED__SOURCE",
            format!("csv:{}", csv.display()),
        )
        .env(
            "ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND",
            ticks_per_second,
        )
        .stdin(Stdio::null());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_waits_out_a_database_outage_and_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("ticks.csv");
    // 16 s of ticks: the feed ends while the database is away, and the run must not take the
    // quiet for a drained pipeline.
    record_ticks(&csv, 6_400);

    let expected = reference_fills(work.path(), &csv).await;
    assert!(!expected.is_empty());

    let postgres = fresh_postgres_url().await.unwrap();
    let dir = work.path().join("outage");
    std::fs::create_dir_all(&dir).unwrap();
    let server = Postgres::find();
    // The database is away from the 2nd to the 32nd second, longer than a connection is waited
    // for (10 s), so the services see it fail and must wait it out.
    let mut child = run(&dir, postgres.url(), &csv, "400")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.ctl("stop");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended during the outage; the test would prove nothing"
    );
    server.ctl("start");
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(ledger_fills(postgres.url()).await, expected, "{log}");
    // The outage was raised as an alert by the services that could not save, and cleared.
    assert_alerted(
        &out.stdout,
        &[("checkpoint_failing", "checkpoint_recovered")],
    );
    postgres.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_waits_out_a_cache_outage_and_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("ticks.csv");
    record_ticks(&csv, 12_000);

    let expected = reference_fills(work.path(), &csv).await;

    let dir = work.path().join("outage");
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite://{}", dir.join("outage.db").display());
    let redis = Redis;
    let mut child = run(&dir, &database, &csv, "400")
        .env("ALPHA_PANDA__CACHE__URL", "redis://127.0.0.1:6379")
        .env(
            "ALPHA_PANDA__CACHE__PREFIX",
            format!(
                "ap_outage_{}:",
                dir.display().to_string().len() + std::process::id() as usize
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| redis.stop());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended during the outage; the test would prove nothing"
    );
    tokio::task::block_in_place(|| redis.start());
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(ledger_fills(&database).await, expected, "{log}");
    // Redis holds the dedup store and the risk state: whichever a service met first is raised.
    assert_alerted(
        &out.stdout,
        &[
            ("dedup_store_unavailable", "dedup_store_recovered"),
            ("checkpoint_failing", "checkpoint_recovered"),
            ("dependency_down", "dependency_recovered"),
        ],
    );
}

/// The run summary `stdout` lists at least one alert of a `began` kind of `pairs`, and each
/// service that raised one also raised the matching `ended` kind.
fn assert_alerted(stdout: &[u8], pairs: &[(&str, &str)]) {
    let summary: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    let alerts = summary["alerts"].as_array().unwrap();
    let of = |kind: &str| {
        alerts
            .iter()
            .filter(|a| a["kind"] == kind)
            .map(|a| a["service"].as_str().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let mut raised_any = false;
    for (began, ended) in pairs {
        let raised = of(began);
        raised_any |= !raised.is_empty();
        assert_eq!(raised, of(ended), "{began} without {ended}: {alerts:?}");
    }
    assert!(raised_any, "no alert raised for the outage: {alerts:?}");
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A broker that hangs for 30 s mid-stream (every produce, fetch, commit and heartbeat waits; when
/// it goes on, the group's sessions have lapsed and every member rejoins): the services wait,
/// resume where they were, and the fills are those of a run without the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_waits_out_a_broker_outage_and_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("ticks.csv");
    record_ticks(&csv, 6_400);
    let expected = reference_fills(work.path(), &csv).await;

    let broker = TansuBroker::start().unwrap();
    let dir = work.path().join("outage");
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite://{}", dir.join("outage.db").display());
    let status = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
            .arg("bootstrap")
            .current_dir(&dir)
            .env("ALPHA_PANDA__LOG__URL", broker.log_url())
            .env("ALPHA_PANDA__DATA_DIR", dir.join("data"))
            .stdout(Stdio::null())
            .status()
    })
    .unwrap();
    assert!(status.success(), "bootstrap failed");
    let mut child = run(&dir, &database, &csv, "400")
        .env("ALPHA_PANDA__LOG__URL", broker.log_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(broker.pid(), "STOP");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let running = child.try_wait().unwrap().is_none();
    signal(broker.pid(), "CONT");
    assert!(
        running,
        "the run ended during the outage; the test would prove nothing"
    );
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(ledger_fills(&database).await, expected, "{log}");
}
