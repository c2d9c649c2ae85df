//! `bootstrap` and `dlq` run as the binary against a real Kafka-protocol broker (tansu).

use std::collections::BTreeMap;
use std::process::{Command, Output};

use alpha_panda_core::{
    Broker, DlqMessage, DlqPayload, Envelope, ErrorClass, EventBroker, Payload, Timestamp, TopicMap,
};
use alpha_panda_stream::testing::TansuBroker;
use alpha_panda_stream::{Log, OutgoingRecord};

fn alpha_panda(broker: &TansuBroker, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
        .args(args)
        .current_dir(dir.path())
        .env("ALPHA_PANDA__LOG__URL", broker.log_url())
        .env("ALPHA_PANDA__BROKERS", "[\"paper\",\"zerodha\"]")
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn bootstrap_creates_every_topic_on_an_empty_broker_then_reports_ok() {
    let broker = TansuBroker::start().unwrap();
    let check = alpha_panda(&broker, &["bootstrap", "--check"]);
    assert_eq!(check.status.code(), Some(2), "{}", stdout(&check));
    assert!(stdout(&check).contains("MISSING"));

    let created = alpha_panda(&broker, &["bootstrap"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let table = stdout(&created);
    let expected = TopicMap::all_topics(&[Broker::Paper, Broker::Zerodha]);
    assert_eq!(expected.len(), 39);
    for topic in &expected {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(topic.name.as_str()))
            .unwrap_or_else(|| panic!("{} not in report:\n{table}", topic.name));
        assert!(line.ends_with("created"), "{line}");
    }

    let again = alpha_panda(&broker, &["bootstrap", "--check"]);
    assert!(again.status.success(), "{}", stdout(&again));
    assert!(!stdout(&again).contains("MISSING"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_and_replay_by_id() {
    let broker = TansuBroker::start().unwrap();
    let log = Log::connect(&broker.log_url(), &BTreeMap::new()).unwrap();
    for topic in ["paper.orders.filled", "paper.orders.filled.dlq"] {
        log.create_topic(topic, 1, 1, 86_400_000).await.unwrap();
    }
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let message = DlqMessage {
        original_topic: "paper.orders.filled".into(),
        original_partition: 0,
        original_offset: 12,
        original_key: Some("s:1".into()),
        original: DlqPayload::Raw {
            value_base64: "eyJub3QiOiJhbiBldmVudCJ9".into(),
        },
        error_class: ErrorClass::Poison,
        error_message: "undecodable envelope".into(),
        retry_count: 0,
        service: "portfolio_manager".into(),
        broker: EventBroker::Paper,
        failed_at: now,
    };
    let envelope = Envelope::root(
        Payload::DlqMessage(message),
        "s:1".into(),
        EventBroker::Paper,
        "portfolio_manager",
        now,
    );
    let dlq_id = envelope.id;
    log.send(OutgoingRecord::event("paper.orders.filled.dlq", envelope))
        .await
        .unwrap();
    log.flush().await;

    let list = tokio::task::block_in_place(|| {
        alpha_panda(
            &broker,
            &["dlq", "list", "--json", "--topic", "paper.orders.filled"],
        )
    });
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&list)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], dlq_id.to_string());
    assert_eq!(lines[0]["message"]["error_class"], "poison");

    let replay = tokio::task::block_in_place(|| {
        alpha_panda(&broker, &["dlq", "replay", "--id", &dlq_id.to_string()])
    });
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(stdout(&replay).contains("1 record(s) replayed"));
    assert!(
        stdout(&replay).contains("for alpha-panda.portfolio_manager.paper"),
        "{}",
        stdout(&replay)
    );
    let back = log.read_all("paper.orders.filled").await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(&back[0].value.to_bytes()[..], br#"{"not":"an event"}"#);
    // Addressed to the group that failed on it: the other readers of the topic pass over it.
    assert_eq!(
        back[0].header(alpha_panda_stream::dlq::REPLAY_GROUP_HEADER),
        Some("alpha-panda.portfolio_manager.paper")
    );
    let not_a_group = tokio::task::block_in_place(|| {
        alpha_panda(
            &broker,
            &[
                "dlq",
                "replay",
                "--id",
                &dlq_id.to_string(),
                "--group",
                "risk",
            ],
        )
    });
    assert!(!not_a_group.status.success());
    assert!(
        String::from_utf8_lossy(&not_a_group.stderr).contains("not an Alpha Panda consumer group")
    );

    let bad =
        tokio::task::block_in_place(|| alpha_panda(&broker, &["dlq", "replay", "--id", "nope"]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an event id"));
}

#[test]
fn production_refuses_missing_topics_then_pending_migrations_then_a_default_api_secret() {
    let broker = TansuBroker::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Production wants a dedup store that outlives the process: Redis, under keys of this test's.
    let prefix = format!(
        "alpha_panda_test:{}:",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let secret = std::cell::RefCell::new("change-me");
    let production = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
            .args(args)
            .current_dir(dir.path())
            .env("ALPHA_PANDA__API__BIND", "127.0.0.1:0")
            .env("ALPHA_PANDA__API__JWT_SECRET", *secret.borrow())
            .env("ALPHA_PANDA__ENVIRONMENT", "production")
            .env("ALPHA_PANDA__LOG__URL", broker.log_url())
            .env("ALPHA_PANDA__CACHE__URL", "redis://127.0.0.1:6379")
            .env("ALPHA_PANDA__CACHE__PREFIX", &prefix)
            .env("ALPHA_PANDA__LOGGING__LEVEL", "error")
            .output()
            .unwrap()
    };
    let no_topics = production(&["run", "--duration", "1s"]);
    assert!(!no_topics.status.success());
    let err = String::from_utf8_lossy(&no_topics.stderr);
    assert!(err.contains("alpha-panda bootstrap"), "{err}");

    assert!(production(&["bootstrap"]).status.success());
    let pending = production(&["run", "--duration", "1s"]);
    assert!(!pending.status.success());
    let err = String::from_utf8_lossy(&pending.stderr);
    assert!(err.contains("alpha-panda migrate"), "{err}");

    assert!(production(&["migrate"]).status.success());
    let default_secret = production(&["run", "--duration", "2s"]);
    assert!(!default_secret.status.success());
    let err = String::from_utf8_lossy(&default_secret.stderr);
    assert!(err.contains("api.jwt_secret"), "{err}");

    *secret.borrow_mut() = "a-production-secret-of-thirty-two-or-more";
    let ok = production(&["run", "--duration", "2s", "--json"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
