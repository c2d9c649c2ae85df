//! A schema-driven fuzzer (schemathesis, from PyPI) against a running `alpha-panda run`: every
//! route of `/openapi.json`, with generated inputs, as an admin, must answer with a status the
//! document lists, a body its schema describes, and never a server error.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The `schemathesis` command: on the PATH, or in the scripts folder of the `python3` it was
/// installed with (a PATH that lacks it, or a pyenv not yet rehashed).
fn schemathesis_binary() -> std::path::PathBuf {
    let works = |path: &std::path::Path| {
        Command::new(path)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let on_path = std::path::PathBuf::from("schemathesis");
    if works(&on_path) {
        return on_path;
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let installed = std::path::Path::new(&scripts).join("schemathesis");
    assert!(
        works(&installed),
        "schemathesis is missing: `python3 -m pip install schemathesis==4.32.5` (scripts/test.sh does)"
    );
    installed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_answer_the_openapi_document_does_not_describe() {
    let schemathesis = schemathesis_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
        .args(["run", "--duration", "600s"])
        .current_dir(dir.path())
        .env("ALPHA_PANDA__DATA_DIR", dir.path().join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .env("ALPHA_PANDA__API__BIND", "127.0.0.1:0")
        .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "50")
        // The fuzzer's logins must not lock the admin out.
        .env("ALPHA_PANDA__API__MAX_FAILED_LOGINS", "100000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stderr.take().unwrap()).lines();
    let (mut base, mut password) = (None, None);
    while base.is_none() || password.is_none() {
        let line = lines.next().expect("run ended before serving").unwrap();
        if let Some(url) = line.split("dashboard and API: ").nth(1) {
            base = Some(url.trim().trim_end_matches('/').to_string());
        }
        if let Some(p) = line.split("created the first user: admin / ").nth(1) {
            password = Some(p.trim().to_string());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let (base, password) = (base.unwrap(), password.unwrap());
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_string();

    let out = tokio::task::block_in_place(|| {
        Command::new(&schemathesis)
            // It keeps a cache in its working folder.
            .current_dir(dir.path())
            .args([
                "run",
                &format!("{base}/openapi.json"),
                "--header",
                &format!("Authorization: Bearer {token}"),
                "--checks",
                "all",
                // A schema cannot say everything a handler checks (a strategy's parameter rules,
                // the password policy, one's own user): a schema-valid request may still get a
                // 422 that names the rule. Everything else the fuzzer checks holds.
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "25",
                "--seed",
                "7",
                "--generation-deterministic",
                // The streams never end; their access is tested elsewhere.
                "--exclude-path-regex",
                "^/api/v1/(events|logs)$",
                "--workers",
                "1",
                "--no-color",
            ])
            .output()
            .unwrap()
    });
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let _ = run.wait();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
}
