//! `alpha-panda kite …` end to end through the binary: decode the reference test vector, load the
//! reference instruments CSV offline, log in against the fake Kite server (the session is stored and
//! the token never printed), and refuse to run the zerodha namespace without a stored session.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use alpha_panda_core::{Clock, SystemClock};
use alpha_panda_kite::fake::{FakeKite, FakeKiteConfig};
use alpha_panda_store::Store;
use base64::Engine;

const REFERENCE: &str = "/work/shared/reference/kite-mocks";

/// Runs the binary in `dir` (an empty settings file there; its database under `dir/data`).
fn alpha_panda(dir: &Path, envs: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
    command
        .current_dir(dir)
        .args(args)
        .env("ALPHA_PANDA__DATA_DIR", dir.join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "debug")
        .stdin(Stdio::null());
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn reference_packet(name: &str) -> Vec<u8> {
    let encoded = std::fs::read_to_string(Path::new(REFERENCE).join(name)).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap()
}

/// One websocket message framing `packets`: u16 count, then u16 length + bytes per packet.
fn frame(packets: &[&[u8]]) -> Vec<u8> {
    let mut message = (packets.len() as u16).to_be_bytes().to_vec();
    for packet in packets {
        message.extend((packet.len() as u16).to_be_bytes());
        message.extend(*packet);
    }
    message
}

#[test]
fn decode_prints_one_json_line_per_packet_of_the_reference_vector() {
    let dir = tempfile::tempdir().unwrap();
    let full = reference_packet("ticker_full.packet");
    let quote = reference_packet("ticker_quote.packet");
    let file = dir.path().join("message.bin");
    std::fs::write(&file, frame(&[&full, &quote])).unwrap();
    let out = alpha_panda(dir.path(), &[], &["kite", "decode", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["instrument_token"], 408065);
    assert_eq!(lines[0]["mode"], "full");
    assert!(
        lines[0]["last_price"].is_string(),
        "prices are decimal strings"
    );
    assert!(lines[0]["depth"]["buy"].is_array());
    assert_eq!(lines[1]["mode"], "quote");

    // A heartbeat prints nothing.
    std::fs::write(&file, [0u8]).unwrap();
    let out = alpha_panda(dir.path(), &[], &["kite", "decode", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    // A truncated message fails naming the byte offset.
    let mut cut = frame(&[&full]);
    cut.truncate(100);
    std::fs::write(&file, cut).unwrap();
    let out = alpha_panda(dir.path(), &[], &["kite", "decode", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("byte 4"), "{stderr}");
}

#[tokio::test]
async fn instruments_file_loads_the_reference_csv_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let csv = Path::new(REFERENCE).join("instruments_nse.csv");
    let expected = alpha_panda_kite::parse_instruments_csv(std::fs::File::open(&csv).unwrap())
        .unwrap()
        .len();
    let out = alpha_panda(
        dir.path(),
        &[],
        &["kite", "instruments", "--file", csv.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("Loaded {expected} instruments")),
        "{}",
        text(&out.stdout)
    );
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("data/alpha-panda.db").display()
    ))
    .await
    .unwrap();
    assert_eq!(store.instruments().count().await.unwrap(), expected as u64);
    let central = store
        .instruments()
        .by_token(3813889)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (central.exchange.as_str(), central.tradingsymbol.as_str()),
        ("NSE", "CENTRALBK-BE")
    );
}

#[tokio::test]
async fn login_with_a_request_token_stores_the_session_and_never_prints_the_token() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let settings = fake.settings();
    let dir = tempfile::tempdir().unwrap();
    let envs = vec![
        ("ALPHA_PANDA__ZERODHA__API_KEY", settings.api_key.clone()),
        (
            "ALPHA_PANDA__ZERODHA__API_SECRET",
            settings.api_secret.clone(),
        ),
        ("ALPHA_PANDA__ZERODHA__API_URL", settings.api_url.clone()),
        (
            "ALPHA_PANDA__ZERODHA__LOGIN_URL",
            settings.login_url.clone(),
        ),
    ];
    let request_token = fake.config().request_token.clone();
    let access_token = fake.config().access_token.clone();
    let path = dir.path().to_path_buf();
    let login_envs = envs.clone();
    let out = tokio::task::spawn_blocking(move || {
        alpha_panda(
            &path,
            &login_envs,
            &["kite", "login", "--request-token", &request_token],
        )
    })
    .await
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("api_key=fake_api_key"),
        "the login URL is printed: {stdout}"
    );
    assert!(stdout.contains("AB1234"), "{stdout}");
    assert!(
        !stdout.contains(&access_token),
        "the access token leaked on stdout"
    );
    assert!(
        !stderr.contains(&access_token),
        "the access token leaked in the logs"
    );

    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("data/alpha-panda.db").display()
    ))
    .await
    .unwrap();
    let session = store
        .trading_sessions()
        .current(&settings.api_key, SystemClock.now())
        .await
        .unwrap()
        .expect("a current session");
    assert_eq!(session.access_token.expose(), access_token);
    assert_eq!(session.user_id, "AB1234");

    // A wrong request token is refused and stores nothing new.
    let path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        alpha_panda(&path, &envs, &["kite", "login", "--request-token", "stale"])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Kite refused the login"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn run_with_zerodha_refuses_without_a_stored_session() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let settings = fake.settings();
    let dir = tempfile::tempdir().unwrap();
    let envs = vec![
        (
            "ALPHA_PANDA__BROKERS",
            "[\"paper\",\"zerodha\"]".to_string(),
        ),
        ("ALPHA_PANDA__ZERODHA__API_KEY", settings.api_key.clone()),
        (
            "ALPHA_PANDA__ZERODHA__API_SECRET",
            settings.api_secret.clone(),
        ),
        ("ALPHA_PANDA__ZERODHA__API_URL", settings.api_url.clone()),
    ];
    let path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        alpha_panda(&path, &envs, &["run", "--duration", "1s"])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("run `alpha-panda kite login`"), "{stderr}");

    // Without credentials the guard refuses before anything else.
    let path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        alpha_panda(
            &path,
            &[(
                "ALPHA_PANDA__BROKERS",
                "[\"paper\",\"zerodha\"]".to_string(),
            )],
            &["run", "--duration", "1s"],
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("zerodha.api_key and zerodha.api_secret"),
        "{stderr}"
    );
}
