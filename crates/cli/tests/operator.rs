//! The operator surface as users meet it: `alpha-panda run` on the embedded defaults serves the
//! dashboard and the API (the URL printed at start-up, the first admin's password printed once),
//! fills reach the API and its event stream while the run trades, the kill switch set through the
//! API stops new entries within seconds, metrics and readiness answer; and the `user`,
//! `kill-switch` and `strategy` commands change the same state.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
    command
        .args(args)
        .current_dir(data_dir)
        .env("ALPHA_PANDA__DATA_DIR", data_dir.join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .env("ALPHA_PANDA__API__BIND", "127.0.0.1:0");
    command
}

/// A running `alpha-panda run` and the lines of its stderr as they come.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(data_dir: &Path) -> Running {
        let mut child = command(
            data_dir,
            &["run", "--duration", "300s", "--status-every", "1s"],
        )
        .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "400")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stderr line containing `needle` (waiting for it).
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?} on stderr: {:?}", self.seen),
            }
        }
    }

    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        assert!(status.success(), "run failed: {:?}", self.seen);
        self.seen
    }
}

async fn eventually<F, Fut>(what: &str, mut probe: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_dashboard_and_an_api_that_follows_and_steers_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = tokio::task::block_in_place(|| Running::start(dir.path()));
    let url_line = tokio::task::block_in_place(|| run.wait_for("dashboard and API: http://"));
    let base = url_line
        .split("dashboard and API: ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('/')
        .to_string();
    let admin_line =
        tokio::task::block_in_place(|| run.wait_for("created the first user: admin / "));
    let password = admin_line.rsplit(" / ").next().unwrap().trim().to_string();
    let http = reqwest::Client::new();

    // The dashboard, from the binary itself.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Alpha Panda"));

    let tokens: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let get = |path: &str| {
        let (http, url, token) = (http.clone(), format!("{base}{path}"), token.clone());
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // A fill reaches the ledger and the API while the run trades.
    eventually("a paper fill in the API", || async {
        let (status, fills) = get("/api/v1/paper/fills?limit=5").await;
        (status == 200 && fills.as_array().is_some_and(|f| !f.is_empty())).then_some(fills)
    })
    .await;
    // The event stream carries the next ones.
    let mut stream = http
        .get(format!(
            "{base}/api/v1/events?type=order_filled&access_token={token}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text.contains("event: order_filled") {
        assert!(
            Instant::now() < deadline,
            "no fill on the event stream: {text}"
        );
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(stream);
    // The services' figures come as `service_status` events too.
    let mut status = http
        .get(format!(
            "{base}/api/v1/events?type=service_status&access_token={token}"
        ))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(text.contains("event: service_status") && text.contains("risk_manager")) {
        assert!(
            Instant::now() < deadline,
            "no service status on the event stream: {text}"
        );
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), status.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(status);
    // The risk answers and the last prices, from the log as the API read it.
    eventually("risk answers", || async {
        let (status, signals) = get("/api/v1/paper/signals?limit=10").await;
        (status == 200 && signals.as_array().is_some_and(|s| !s.is_empty())).then_some(signals)
    })
    .await;
    let (status, last) = get("/api/v1/market/last?tokens=408065").await;
    assert_eq!(status, 200);
    assert_eq!(last[0]["instrument_token"], 408065, "{last}");

    // The kill switch: new entries are rejected with `kill_switch` within seconds.
    let response = http
        .post(format!("{base}/api/v1/paper/kill-switch"))
        .bearer_auth(&token)
        .json(&json!({"engaged": true, "reason": "drill"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut rejections = http
        .get(format!(
            "{base}/api/v1/events?type=rejected_signal&broker=paper&access_token={token}"
        ))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !text.contains("kill_switch") {
        assert!(
            Instant::now() < deadline,
            "no signal rejected by the kill switch: {text}"
        );
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), rejections.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(rejections);

    // Metrics and readiness.
    let metrics = eventually("service metrics", || async {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.contains("alpha_panda_events_in_total{broker=\"paper\",service=\"risk_manager\"}")
            .then_some(Value::String(text))
    })
    .await;
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("alpha_panda_kill_switch_engaged{broker=\"paper\"} 1"));
    assert!(metrics.contains(
        "alpha_panda_handler_latency_seconds_bucket{broker=\"paper\",service=\"risk_manager\",le=\"+Inf\"}"
    ));
    assert!(metrics.contains(
        "alpha_panda_consumer_partition_lag{broker=\"paper\",service=\"risk_manager\",topic=\"paper.signals.raw\",partition=\"0\"}"
    ));
    let ready = http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    for check in ["database", "cache", "log", "topics"] {
        assert_eq!(ready["checks"][check]["status"], "ok", "{ready}");
    }

    let seen = tokio::task::block_in_place(|| run.stop());
    assert!(!seen
        .iter()
        .any(|l| l.contains(&password) && !l.contains("created the first user")));

    // A second run in the same folder creates no user and prints no password.
    let mut again = tokio::task::block_in_place(|| Running::start(dir.path()));
    tokio::task::block_in_place(|| again.wait_for("dashboard and API: http://"));
    let seen = tokio::task::block_in_place(|| again.stop());
    assert!(
        !seen.iter().any(|l| l.contains("created the first user")),
        "{seen:?}"
    );
}

fn cli(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_user_kill_switch_and_strategy_commands_change_the_stored_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, out, err) = cli(
        d,
        &["user", "add", "ops", "--role", "trader", "--password-stdin"],
        Some("a long password\n"),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("added ops (trader)") && !out.contains("password:"),
        "{out}"
    );
    let (ok, out, _) = cli(d, &["user", "add", "eve", "--role", "viewer"], None);
    assert!(ok);
    assert!(
        out.contains("password: ") && out.contains("shown this once"),
        "{out}"
    );
    let (ok, _, err) = cli(d, &["user", "add", "ops", "--role", "viewer"], None);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(d, &["user", "add", "x", "--role", "boss"], None);
    assert!(!ok && err.contains("unknown role"), "{err}");
    let (_, out, _) = cli(d, &["user", "list"], None);
    assert!(
        out.contains("ops") && out.contains("trader") && out.contains("eve"),
        "{out}"
    );
    let (ok, out, _) = cli(d, &["user", "password", "eve"], None);
    assert!(ok && out.contains("password: "), "{out}");
    let (ok, _, _) = cli(d, &["user", "remove", "eve"], None);
    assert!(ok);
    let (ok, _, err) = cli(d, &["user", "remove", "eve"], None);
    assert!(!ok && err.contains("no user `eve`"), "{err}");

    let (ok, out, err) = cli(
        d,
        &[
            "kill-switch",
            "engage",
            "--broker",
            "paper",
            "--reason",
            "drill",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("paper: kill switch engaged"), "{out}");
    let (_, out, _) = cli(d, &["kill-switch", "show"], None);
    assert!(out.contains("paper: engaged (drill"), "{out}");
    let (ok, _, err) = cli(
        d,
        &[
            "kill-switch",
            "engage",
            "--broker",
            "paper",
            "--reason",
            " ",
        ],
        None,
    );
    assert!(!ok && err.contains("reason"), "{err}");
    let (ok, _, err) = cli(
        d,
        &["kill-switch", "engage", "--broker", "nse", "--reason", "x"],
        None,
    );
    assert!(!ok && err.contains("nse"), "{err}");

    let (ok, out, err) = cli(
        d,
        &[
            "strategy",
            "add",
            "ema_test",
            "--type",
            "ema_cross",
            "--instruments",
            "408065",
            "--params",
            r#"{"fast": 5, "slow": 20}"#,
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("ema_test"), "{out}");
    let (ok, _, err) = cli(
        d,
        &[
            "strategy",
            "set",
            "ema_test",
            "--params",
            r#"{"fast": 40, "slow": 10}"#,
        ],
        None,
    );
    assert!(!ok && err.contains("fast"), "{err}");
    let (ok, out, _) = cli(d, &["strategy", "disable", "ema_test"], None);
    assert!(ok && out.contains("disabled"), "{out}");
    let (ok, out, _) = cli(
        d,
        &["strategy", "set", "ema_test", "--zerodha", "true"],
        None,
    );
    assert!(ok && out.contains("zerodha=true"), "{out}");
    let (_, out, _) = cli(d, &["strategy", "list", "--json"], None);
    let row: Value =
        serde_json::from_str(out.lines().find(|l| l.contains("ema_test")).unwrap()).unwrap();
    assert_eq!(row["is_active"], false);
    assert_eq!(row["zerodha_trading_enabled"], true);
}
