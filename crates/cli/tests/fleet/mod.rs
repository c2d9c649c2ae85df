//! The fleet the Kafka tests run: Alpha Panda processes on tansu, PostgreSQL and Redis, with their
//! logs kept, and what the tests compare (recorded ticks, the paper ledger).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alpha_panda_core::{Broker, OrderFilled, Timestamp};
use alpha_panda_services::{nse_universe, ticks_to_csv, TickSimulator};
use alpha_panda_store::Store;

pub struct Deployment {
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Deployment {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
        command
            .args(args)
            .current_dir(&self.dir)
            .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    pub fn spawn(&self, name: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        self.command(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn output(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                out.push_str(&format!("--- {}\n", path.display()));
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        out
    }
}

pub fn record_ticks(path: &Path, count: usize) {
    let mut simulator = TickSimulator::new(11, nse_universe()).unwrap();
    let start = 1_767_584_700_000_000i64; // 2026-01-05 09:15 IST
    let ticks: Vec<_> = (0..count as i64)
        .map(|n| simulator.next_tick(Timestamp::from_unix_micros(start + n * 10_000).unwrap()))
        .collect();
    std::fs::write(path, ticks_to_csv(&ticks)).unwrap();
}

pub fn wait(child: &mut Child, name: &str, limit: Duration, deployment: &Deployment) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{name} exited with {status}:\n{}",
                deployment.logs()
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{name} did not finish within {limit:?}:\n{}",
                deployment.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The paper ledger's fills by order id. Compared as values: PostgreSQL NUMERIC may give `0` back
/// where SQLite's text keeps `0.00`, and the two are the same amount.
pub async fn ledger_fills(url: &str) -> Vec<OrderFilled> {
    let store = Store::connect(url).await.unwrap();
    let mut fills: Vec<OrderFilled> = store
        .ledger()
        .fills(Broker::Paper, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.fill)
        .collect();
    fills.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    store.close().await;
    fills
}

/// A name no other test run uses (cache prefixes).
pub fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
