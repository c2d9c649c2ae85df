//! The multi-process deployment: `alpha-panda run` (the services, no API) and `alpha-panda api`
//! (the API alone) as two processes on one Kafka-protocol broker (tansu), PostgreSQL and Redis.
//! The API process sees what the services publish — fills from the store, service metrics and
//! portfolios from Redis, events from the log — and a kill switch it sets stops the other
//! process's new entries.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alpha_panda_store::testing::TestStore;
use alpha_panda_store::SqlBackend;
use alpha_panda_stream::testing::TansuBroker;
use serde_json::{json, Value};

fn spawn(dir: &std::path::Path, env: &[(String, String)], args: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
    command
        .args(args)
        .current_dir(dir)
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "a process did not stop cleanly: {status}");
}

async fn until<F, Fut>(what: &str, mut probe: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_as_its_own_process_follows_and_steers_the_services_of_another() {
    let broker = TansuBroker::start().unwrap();
    let db = TestStore::new(SqlBackend::Postgres).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "alpha_panda_test:{}:",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let env: Vec<(String, String)> = [
        ("ALPHA_PANDA__LOG__URL", broker.log_url()),
        ("ALPHA_PANDA__DATABASE__URL", db.url().to_string()),
        (
            "ALPHA_PANDA__CACHE__URL",
            "redis://127.0.0.1:6379".to_string(),
        ),
        ("ALPHA_PANDA__CACHE__PREFIX", prefix),
        (
            "ALPHA_PANDA__DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut services_env = env.clone();
    services_env.push(("ALPHA_PANDA__API__ENABLED".into(), "false".into()));
    services_env.push((
        "ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND".into(),
        "200".into(),
    ));
    let services = spawn(
        dir.path(),
        &services_env,
        &["run", "--duration", "600s", "--status-every", "1s"],
    );

    let mut api_env = env.clone();
    api_env.push(("ALPHA_PANDA__API__BIND".into(), "127.0.0.1:0".into()));
    let mut api = spawn(dir.path(), &api_env, &["api"]);
    let mut lines = BufReader::new(api.stderr.take().unwrap()).lines();
    let (mut base, mut password) = (None, None);
    while base.is_none() || password.is_none() {
        let line = lines.next().expect("the api process ended").unwrap();
        if let Some(url) = line.split("dashboard and API: ").nth(1) {
            base = Some(url.trim().trim_end_matches('/').to_string());
        }
        if let Some(p) = line.split("created the first user: admin / ").nth(1) {
            password = Some(p.trim().to_string());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let (base, password) = (base.unwrap(), password.unwrap());
    let http = reqwest::Client::new();
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
    let get = |path: &'static str| {
        let (http, url, token) = (http.clone(), format!("{base}{path}"), token.clone());
        async move {
            let r = http.get(url).bearer_auth(token).send().await.ok()?;
            (r.status() == 200).then_some(())?;
            r.json::<Value>().await.ok()
        }
    };

    // Fills from the store, the pipeline and portfolios from Redis, written by the other process.
    until("fills", || async {
        get("/api/v1/paper/fills")
            .await
            .filter(|f| f.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let pipeline = until("the services' figures", || async {
        get("/api/v1/pipeline").await.filter(|p| {
            p.as_array().is_some_and(|a| {
                a.iter()
                    .any(|s| s["service"] == "risk_manager" && s["status"] == "running")
            })
        })
    })
    .await;
    assert!(pipeline
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["service"] == "market_feed"));
    until("portfolios", || async {
        get("/api/v1/paper/portfolios")
            .await
            .filter(|p| p.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let ready = http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    // The kill switch set here stops the other process's new entries.
    let response = http
        .post(format!("{base}/api/v1/paper/kill-switch"))
        .bearer_auth(&token)
        .json(&json!({"engaged": true, "reason": "drill across processes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = http
        .get(format!(
            "{base}/api/v1/events?type=rejected_signal&access_token={token}"
        ))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !text.contains("kill_switch") {
        assert!(
            Instant::now() < deadline,
            "no signal rejected by the kill switch: {text}"
        );
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(stream);

    stop(api);
    stop(services);
    db.cleanup().await.unwrap();
}
