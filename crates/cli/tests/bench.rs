//! `bench pipeline` and `bench soak` in short forms: what they report is there and means what it
//! says — fills made, latency split by hop, memory and throughput per million reported, on Kafka
//! the broker alone measured with ratios against it, and a soak that held its lag. The figures
//! themselves are not asserted: they are the bench's business, not a test's.

use std::process::{Command, Stdio};

use alpha_panda_stream::testing::TansuBroker;
use serde_json::Value;

fn bench(args: &[&str]) -> (bool, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .current_dir(dir.path())
        .env("ALPHA_PANDA__DATA_DIR", dir.path().join("data"))
        .env("ALPHA_PANDA__LOGGING__LEVEL", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    (output.status.success(), report, stderr)
}

#[test]
fn a_latency_phase_without_a_rate_is_refused_with_the_flag_named() {
    // At 0 ticks/s there would be no latency to measure, and the broker's probe would wait 100 s
    // for records it paces at one a second.
    let output = Command::new(env!("CARGO_BIN_EXE_alpha-panda"))
        .args(["bench", "pipeline", "--latency-rate", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--latency-rate"), "{stderr}");
}

fn assert_hops(report: &Value) {
    let hops = report["hops"].as_array().expect("hops");
    let names: Vec<&str> = hops.iter().map(|h| h["hop"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["tick → signal", "signal → validated", "validated → fill"]
    );
    let services = ["strategy_runner", "risk_manager", "trading_engine"];
    for (hop, service) in hops.iter().zip(services) {
        assert!(hop["us"]["p50"].as_i64().unwrap() > 0, "{hop}");
        assert!(
            hop["us"]["p99"].as_i64() >= hop["us"]["p50"].as_i64(),
            "{hop}"
        );
        // Every hop says where its time goes, from the service it crosses.
        let why = hop["why"].as_str().unwrap();
        assert!(
            why.starts_with(&format!("alpha-panda.{service}")) && why.contains("µs per record"),
            "{hop}"
        );
    }
}

#[test]
fn pipeline_on_memory_reports_throughput_latency_by_hop_and_memory() {
    let (ok, report, stderr) = bench(&[
        "pipeline",
        "--ticks",
        "20000",
        "--latency-rate",
        "500",
        "--latency-duration",
        "2s",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(report["log"], "memory");
    assert!(report["ticks_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["fills"].as_u64().unwrap() > 0, "{report}");
    assert!(report["latency_samples"].as_u64().unwrap() > 0, "{report}");
    assert_hops(&report);
    assert!(report["peak_resident_mib"].as_f64().unwrap() > 1.0);
    // Fewer than a million ticks: no per-million figure yet.
    assert_eq!(report["ticks_per_second_by_million"], serde_json::json!([]));
    assert!(report["broker"].is_null() && report["against_broker"].is_null());
    let services = report["services"].as_array().unwrap();
    assert_eq!(services.len(), 4);
    for service in services {
        assert!(
            service["events_in"].as_u64().unwrap() >= 20_000,
            "{service}"
        );
        assert!(service["max_tick_lag_records"].as_i64().unwrap() >= 0);
    }
}

#[test]
fn pipeline_on_kafka_measures_the_broker_alone_and_reports_ratios() {
    let broker = TansuBroker::start().expect("tansu");
    let url = broker.log_url();
    let (ok, report, stderr) = bench(&[
        "pipeline",
        "--log-url",
        &url,
        "--ticks",
        "3000",
        "--latency-rate",
        "200",
        "--latency-duration",
        "2s",
        "--broker-records",
        "5000",
        // Few instruments, so that the short latency phase warms the strategies up and fills.
        "--instruments",
        "5",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(report["log"], "kafka");
    assert!(report["fills"].as_u64().unwrap() > 0, "{report}");
    assert_hops(&report);
    let alone = &report["broker"];
    assert_eq!(alone["records"], 5000);
    assert!(alone["record_bytes"].as_u64().unwrap() > 200, "{alone}");
    assert!(alone["produce_per_second"].as_f64().unwrap() > 0.0);
    assert!(alone["consume_per_second"].as_f64().unwrap() > 0.0);
    assert!(alone["hop_us"]["p99"].as_i64().unwrap() > 0, "{alone}");
    // The ratios are the pipeline's figures over the broker's, as printed.
    let ratios = &report["against_broker"];
    let throughput = report["ticks_per_second"].as_f64().unwrap()
        / alone["produce_per_second"].as_f64().unwrap();
    assert!((ratios["throughput"].as_f64().unwrap() - throughput).abs() < 1e-9);
    let latency = report["tick_to_fill_us"]["p99"].as_f64().unwrap()
        / (4.0 * alone["hop_us"]["p99"].as_f64().unwrap());
    assert!((ratios["tick_to_fill_p99"].as_f64().unwrap() - latency).abs() < 1e-9);
}

#[test]
fn a_short_soak_holds_its_lag_and_says_so() {
    let (ok, report, stderr) = bench(&[
        "soak",
        "--duration",
        "3s",
        "--rate",
        "300",
        "--instruments",
        "5",
        "--progress",
        "1s",
    ]);
    assert!(ok, "{report}\n{stderr}");
    assert_eq!(report["ticks"], 900);
    assert_eq!(report["held"], true);
    assert_eq!(
        report["stopped_early_after_seconds"],
        serde_json::Value::Null
    );
    // The lag is told while the soak runs, not only at its end.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("soak: ")).collect();
    assert!(progress.len() >= 2, "{stderr}");
    assert!(
        progress[0].contains("lag now") && progress[0].contains("limit 1.000 s"),
        "{stderr}"
    );
    assert!(report["max_lag_seconds"].as_f64().unwrap() <= 1.0);
    assert_eq!(report["services"].as_array().unwrap().len(), 4);
    assert!(report["fills"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn a_soak_that_falls_behind_stops_at_once_and_fails() {
    // No pipeline keeps its committed offsets within a millisecond of the feed: the first sample
    // is over the limit, and the feed stops long before its 60 seconds.
    let (ok, report, stderr) = bench(&[
        "soak",
        "--duration",
        "60s",
        "--rate",
        "2000",
        "--instruments",
        "5",
        "--max-lag",
        "1ms",
    ]);
    assert!(!ok, "a soak over its limit must fail: {report}");
    assert_eq!(report["held"], false);
    let stopped = report["stopped_early_after_seconds"]
        .as_f64()
        .expect("stopped early");
    assert!(stopped < 30.0, "{report}");
    assert!(report["ticks"].as_u64().unwrap() < 60_000, "{report}");
    assert!(
        stderr.contains("over the limit: stopping the feed"),
        "{stderr}"
    );
}
