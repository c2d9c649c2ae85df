//! `alpha-panda migrate` and `migrate --check` on both SQL backends, run as the binary.

use std::process::{Command, Output};

use alpha_panda_store::testing::TestStore;
use alpha_panda_store::SqlBackend;

fn alpha_panda(database_url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
        .args(args)
        .current_dir(dir.path())
        .env("ALPHA_PANDA__DATABASE__URL", database_url)
        .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn check_then_migrate(backend: SqlBackend) {
    let db = TestStore::unmigrated(backend).await.unwrap();
    let url = db.url().to_string();
    let pending = tokio::task::block_in_place(|| alpha_panda(&url, &["migrate", "--check"]));
    assert_eq!(pending.status.code(), Some(2), "{}", stdout(&pending));
    assert!(
        stdout(&pending).contains("pending: 0001_initial_schema"),
        "{}",
        stdout(&pending)
    );

    let applied = tokio::task::block_in_place(|| alpha_panda(&url, &["migrate"]));
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert!(stdout(&applied).contains("applied: 0001_initial_schema"));

    let current = tokio::task::block_in_place(|| alpha_panda(&url, &["migrate", "--check"]));
    assert!(current.status.success(), "{}", stdout(&current));
    assert!(stdout(&current).contains("migrations are current"));

    // Applying again is a no-op.
    let again = tokio::task::block_in_place(|| alpha_panda(&url, &["migrate"]));
    assert!(stdout(&again).contains("0 migration(s) applied"));
    db.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrate_and_check() {
    check_then_migrate(SqlBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrate_and_check() {
    check_then_migrate(SqlBackend::Postgres).await;
}

#[test]
fn an_unsupported_database_url_is_refused_without_echoing_secrets() {
    let output = alpha_panda("mysql://user:hunter2@db/x", &["migrate", "--check"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("mysql"), "{err}");
}
