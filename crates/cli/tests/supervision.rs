//! A broken service stops the process loudly (review M1, M6): when the market feed can no longer
//! publish because the broker is gone, `run` stops the whole pipeline and exits non-zero with a
//! message, instead of draining quietly and reporting success to its supervisor.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alpha_panda_stream::testing::TansuBroker;

#[test]
fn run_exits_non_zero_when_the_feed_loses_the_broker() {
    let broker = TansuBroker::start().expect("tansu");
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alpha-panda"));
        command
            .args(args)
            .current_dir(dir.path())
            .env("ALPHA_PANDA__DATA_DIR", dir.path().join("data"))
            .env("ALPHA_PANDA__LOGGING__LEVEL", "warn")
            .env("ALPHA_PANDA__LOG__URL", broker.log_url())
            .env("ALPHA_PANDA__MARKET_FEED__TICKS_PER_SECOND", "200")
            .stdin(Stdio::null());
        command
    };
    // Deliveries time out after 3 s instead of librdkafka's 30 s, so the feed gives up quickly.
    std::fs::write(
        dir.path().join("alpha-panda.toml"),
        "[log.kafka]\n\"message.timeout.ms\" = \"3000\"\n\"session.timeout.ms\" = \"6000\"\n",
    )
    .unwrap();
    let bootstrap = command(&["bootstrap"]).output().unwrap();
    assert!(
        bootstrap.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrap.stderr)
    );
    let mut run = command(&["run", "--services", "market_feed"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        run.try_wait().unwrap().is_none(),
        "the feed stopped before the broker did"
    );
    drop(broker);

    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("run kept going without its broker");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the market feed stopped: the log stopped acknowledging"),
        "{stderr}"
    );
}
