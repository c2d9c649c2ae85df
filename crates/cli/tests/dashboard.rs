//! The dashboard in a real browser: `alpha-panda run` against a Kafka-protocol broker (tansu), with
//! a viewer, a strategy that signals often and one dead letter set up through the API and the log;
//! then `tests/browser/journey.mjs` (playwright-core driving Debian's Chromium) logs in, sees fills
//! arrive live, disables the strategy and sees its signals stop, engages the kill switch, replays
//! the dead letter, takes a screenshot of every page and checks what a viewer may not do.
//!
//! Needs `/usr/bin/chromium` (`apt-get install chromium`) and playwright-core
//! (`npm ci --prefix tests/browser`). `UPDATE_SCREENSHOTS=1` copies the overview and portfolio
//! screenshots to `docs/` (the README shows the latter).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use alpha_panda_stream::testing::TansuBroker;
use alpha_panda_stream::{Log, OutgoingRecord, RecordValue};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const FAST_STRATEGY: &str = "fast_infy";
const VIEWER: &str = "viewer1";
const VIEWER_PASSWORD: &str = "viewer password 1";
const PAGES: [&str; 8] = [
    "overview",
    "portfolios",
    "orders",
    "signals",
    "strategies",
    "risk",
    "dlq",
    "logs",
];
/// The longest the journey may take (it takes about a minute and a half).
const JOURNEY_DEADLINE: Duration = Duration::from_secs(150);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The browser and its driver are installed, or the test fails saying how to install them.
fn require_browser(browser_dir: &Path) {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!(
            "{CHROMIUM} is missing: run `apt-get install chromium` (Debian's Chromium; no browser is downloaded)"
        ));
    }
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "{} is missing: run `npm ci --prefix tests/browser` (in the workspace root)",
            browser_dir.join("node_modules/playwright-core").display()
        ));
    }
    if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        missing.push("node is missing: install Node.js 20 or newer".into());
    }
    assert!(
        missing.is_empty(),
        "the browser test cannot run:\n  {}",
        missing.join("\n  ")
    );
}

/// A running `alpha-panda run` and the lines of its stderr as they come; killed if dropped
/// before [`Running::stop`] (a failing test leaves no process behind).
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stopped: bool,
}

impl Running {
    fn start(dir: &Path, log_url: &str) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
            .args(["run", "--duration", "600s", "--status-every", "1s"])
            .current_dir(dir)
            .env("ALPHA_PANDA__LOG__URL", log_url)
            .env("ALPHA_PANDA__DATA_DIR", dir.join("data"))
            .env("ALPHA_PANDA__API__BIND", "127.0.0.1:0")
            .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "200")
            .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
            // Equity points every 2 s rather than every minute: the portfolio page has a chart to
            // show (and to screenshot) within seconds.
            .env("ALPHA_PANDA__PORTFOLIO__SNAPSHOT_INTERVAL", "2s")
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
            stopped: false,
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

    /// SIGTERM; the run must exit cleanly. Its stderr lines.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "run did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        self.stopped = true;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        assert!(status.success(), "run failed ({status}): {:?}", self.seen);
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The API at `base` as one user.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(base: &str, username: &str, password: &str) -> Api {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let tokens: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "logging in as {username}: {tokens}");
        Api {
            http,
            base: base.to_string(),
            token: tokens["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs `body`; a success status, or the test fails naming the route and the answer.
    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "POST {path} {body} answered {status}: {answer}"
        );
        serde_json::from_str(&answer).unwrap_or(Value::Null)
    }
}

/// `node journey.mjs` with `vars`, within [`JOURNEY_DEADLINE`]: success, and its output.
fn run_journey(browser_dir: &Path, out_dir: &Path, vars: &[(&str, &str)]) -> (bool, String) {
    let stdout = out_dir.join("journey.stdout");
    let stderr = out_dir.join("journey.stderr");
    let mut child = Command::new("node")
        .arg("journey.mjs")
        .current_dir(browser_dir)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .expect("starting node journey.mjs");
    let deadline = Instant::now() + JOURNEY_DEADLINE;
    let (success, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status.success(), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (false, true);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut output = format!(
        "--- journey stdout ---\n{}\n--- journey stderr ---\n{}",
        std::fs::read_to_string(&stdout).unwrap_or_default(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    if timed_out {
        output.push_str(&format!(
            "\njourney killed: still running after {JOURNEY_DEADLINE:?}"
        ));
    }
    (success, output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser_follows_and_steers_the_pipeline() {
    let started = Instant::now();
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    require_browser(&browser_dir);

    let broker = TansuBroker::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let mut run = tokio::task::block_in_place(|| Running::start(dir.path(), &broker.log_url()));
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
    eprintln!("dashboard: run serves {base} ({:?})", started.elapsed());

    let admin = Api::login(&base, "admin", &password).await;
    admin
        .post(
            "/api/v1/users",
            json!({"username": VIEWER, "password": VIEWER_PASSWORD, "role": "viewer"}),
        )
        .await;
    admin
        .post(
            "/api/v1/strategies",
            json!({
                "id": FAST_STRATEGY,
                "strategy_type": "ema_cross",
                "instruments": [408065],
                "parameters": {"fast": 2, "slow": 3},
            }),
        )
        .await;

    // The pipeline trades (so the risk manager reads the raw signals) before the poison goes in.
    eventually("a paper fill in the API", || async {
        let (status, fills) = admin.get("/api/v1/paper/fills?limit=1").await;
        (status == 200 && fills.as_array().is_some_and(|f| !f.is_empty())).then_some(fills)
    })
    .await;
    let log = Log::connect(&broker.log_url(), &Default::default()).unwrap();
    log.send(OutgoingRecord {
        topic: "paper.signals.raw".into(),
        key: Some(Arc::from("poison:1")),
        value: RecordValue::Bytes(bytes::Bytes::from_static(b"not an envelope")),
        headers: Vec::new(),
    })
    .await
    .unwrap();
    log.flush().await;
    let dlq = eventually("the poison record in GET /api/v1/dlq", || async {
        let (status, list) = admin.get("/api/v1/dlq").await;
        (status == 200 && list.as_array().is_some_and(|l| !l.is_empty())).then_some(list)
    })
    .await;
    eprintln!(
        "dashboard: {} dead letter(s) listed ({:?})",
        dlq.as_array().unwrap().len(),
        started.elapsed()
    );

    let shots = tempfile::tempdir().unwrap();
    let shots_dir = shots.path().to_str().unwrap().to_string();
    let (success, output) = tokio::task::block_in_place(|| {
        run_journey(
            &browser_dir,
            dir.path(),
            &[
                ("BASE_URL", base.as_str()),
                ("ADMIN_PASSWORD", password.as_str()),
                ("VIEWER_USER", VIEWER),
                ("VIEWER_PASSWORD", VIEWER_PASSWORD),
                ("FAST_STRATEGY", FAST_STRATEGY),
                ("SCREENSHOT_DIR", shots_dir.as_str()),
            ],
        )
    });
    assert!(success, "the browser journey failed:\n{output}");
    println!("{output}");

    for page in PAGES {
        let file = shots.path().join(format!("{page}.png"));
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("no screenshot {}: {e}", file.display()));
        assert!(
            bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG screenshot",
            file.display()
        );
    }
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = root.join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        for page in ["portfolios", "overview"] {
            let target = docs.join(format!("dashboard-{page}.png"));
            std::fs::copy(shots.path().join(format!("{page}.png")), &target).unwrap();
            eprintln!("dashboard: updated {}", target.display());
        }
    }

    let seen = tokio::task::block_in_place(|| run.stop());
    assert!(!seen
        .iter()
        .any(|l| l.contains(&password) && !l.contains("created the first user")));
    eprintln!("dashboard: done in {:?}", started.elapsed());
}
