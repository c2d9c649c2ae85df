//! A real Prometheus (Debian's `prometheus` package) scrapes `alpha-panda run`'s `/metrics` and a
//! query reads the series back: the text format is one Prometheus accepts, not only one our own
//! parser does. The shipped scrape configuration passes `promtool check config`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn binary(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's `prometheus` package (.ci/run does)"
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_shipped_scrape_configuration_is_valid() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus.yml");
    let out = Command::new(binary("promtool"))
        .args(["check", "config", config])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics_and_a_query_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
        .args(["run", "--duration", "300s", "--status-every", "1s"])
        .current_dir(dir.path())
        .env("ALPHA_PANDA__DATA_DIR", dir.path().join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .env("ALPHA_PANDA__API__BIND", "127.0.0.1:0")
        .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("run ended before serving").unwrap();
        if let Some(url) = line.split("dashboard and API: http://").nth(1) {
            break url.trim().trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: alpha-panda\n    \
             static_configs:\n      - targets: [\"{address}\"]\n"
        ),
    )
    .unwrap();
    let mut prometheus = Command::new(binary("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let query = |q: &'static str| {
        let http = http.clone();
        async move {
            let answer: serde_json::Value = http
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let result = answer["data"]["result"].as_array()?.clone();
            (!result.is_empty()).then_some(result)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let up = loop {
        if let Some(result) = query("alpha_panda_up").await {
            break result;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped alpha_panda_up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(up[0]["value"][1], "1");
    // A per-service counter, labelled by broker and service, grows as the pipeline runs.
    let events = loop {
        if let Some(result) =
            query("alpha_panda_events_in_total{broker=\"paper\",service=\"risk_manager\"}").await
        {
            break result;
        }
        assert!(Instant::now() < deadline, "no per-service counter scraped");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(events[0]["metric"]["broker"], "paper");
    // The handler latency histogram, per service.
    loop {
        if query("alpha_panda_handler_latency_seconds_count{service=\"risk_manager\"} > 0")
            .await
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no handler latency scraped");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let kill = query("alpha_panda_kill_switch_engaged").await.unwrap();
    assert!(kill.iter().all(|s| s["value"][1] == "0"));

    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    assert!(run.wait().unwrap().success());
}
