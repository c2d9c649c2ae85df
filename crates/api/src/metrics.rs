//! `GET /metrics`: Prometheus text, every series named `alpha_panda_*` and every per-namespace
//! series labelled `broker`. The figures come from where the services publish them (the cache's
//! service metrics and portfolio read models, the store's kill switches), so a separate `api`
//! process exports the same series as `run`.

use std::fmt::Write as _;
use std::sync::Arc;

use alpha_panda_core::EventBroker;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

/// Escapes a label value (Prometheus text format).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl ToString) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect::<Vec<_>>()
            .join(",");
        self.samples.push((labels, value.to_string()));
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{} {value}", self.name);
            } else {
                let _ = writeln!(out, "{}{{{labels}}} {value}", self.name);
            }
        }
    }
}

/// A reported histogram's lines.
fn render_buckets(
    name: &str,
    labels: &str,
    h: &alpha_panda_cache::LatencyBuckets,
    out: &mut String,
) {
    for (bound, count) in h.bounds_micros.iter().zip(&h.counts) {
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_micros as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// The text of every series.
///
/// # Errors
/// [`ApiError`] when the cache or the store cannot be read.
pub async fn render(state: &ApiState) -> Result<String, ApiError> {
    let mut up = Family::new("alpha_panda_up", "gauge", "1 while the process answers");
    up.sample(&[], 1);
    let mut events_in = Family::new("alpha_panda_events_in_total", "counter", "events consumed");
    let mut events_out = Family::new("alpha_panda_events_out_total", "counter", "events produced");
    let mut duplicates = Family::new(
        "alpha_panda_duplicates_total",
        "counter",
        "inputs skipped as already processed",
    );
    let mut retries = Family::new("alpha_panda_retries_total", "counter", "handler retries");
    let mut dead = Family::new(
        "alpha_panda_dlq_total",
        "counter",
        "inputs sent to a dead-letter topic",
    );
    let mut partition_lag = Family::new(
        "alpha_panda_consumer_partition_lag",
        "gauge",
        "consumer lag in records of one partition a service reads",
    );
    let mut lag = Family::new(
        "alpha_panda_consumer_lag",
        "gauge",
        "consumer lag in records, summed over partitions",
    );
    let mut last_event = Family::new(
        "alpha_panda_last_event_timestamp_seconds",
        "gauge",
        "when the service last handled an event",
    );
    let mut cash = Family::new(
        "alpha_panda_portfolio_cash",
        "gauge",
        "portfolio cash, rupees",
    );
    let mut total = Family::new(
        "alpha_panda_portfolio_total_pnl",
        "gauge",
        "portfolio PnL net of fees, rupees",
    );
    let mut realized = Family::new(
        "alpha_panda_portfolio_realized_pnl",
        "gauge",
        "portfolio realized PnL, rupees",
    );
    let mut unrealized = Family::new(
        "alpha_panda_portfolio_unrealized_pnl",
        "gauge",
        "portfolio unrealized PnL, rupees",
    );
    let mut fees = Family::new(
        "alpha_panda_portfolio_fees",
        "gauge",
        "portfolio fees paid, rupees",
    );
    let mut kill = Family::new(
        "alpha_panda_kill_switch_engaged",
        "gauge",
        "1 while the namespace's kill switch halts new entries",
    );
    let mut latency = String::from(
        "# HELP alpha_panda_handler_latency_seconds how long a service's handler took per input\n\
         # TYPE alpha_panda_handler_latency_seconds histogram\n",
    );

    if let Some(cache) = &state.cache {
        let mut namespaces = vec![EventBroker::Shared];
        namespaces.extend(state.brokers.iter().map(|b| EventBroker::from(*b)));
        for namespace in namespaces {
            let broker = namespace.as_str();
            for entry in cache.metrics().list(namespace).await? {
                let labels = [("broker", broker), ("service", entry.service.as_str())];
                let m = &entry.metrics;
                events_in.sample(&labels, m.events_in);
                events_out.sample(&labels, m.events_out);
                duplicates.sample(&labels, m.duplicates);
                retries.sample(&labels, m.retries);
                dead.sample(&labels, m.dead_lettered);
                lag.sample(&labels, m.lag);
                if let Some(at) = m.last_event_at {
                    let seconds = at.unix_micros() as f64 / 1e6;
                    last_event.sample(&labels, seconds);
                }
                for p in &m.partition_lag {
                    let partition = p.partition.to_string();
                    partition_lag.sample(
                        &[
                            ("broker", broker),
                            ("service", entry.service.as_str()),
                            ("topic", p.topic.as_str()),
                            ("partition", partition.as_str()),
                        ],
                        p.lag,
                    );
                }
                if let Some(h) = &m.handler_latency {
                    let labels = format!(
                        "broker=\"{}\",service=\"{}\"",
                        label(broker),
                        label(&entry.service)
                    );
                    render_buckets(
                        "alpha_panda_handler_latency_seconds",
                        &labels,
                        h,
                        &mut latency,
                    );
                }
            }
        }
        for broker in &state.brokers {
            for snapshot in cache.portfolios().list(*broker).await? {
                let labels = [
                    ("broker", broker.as_str()),
                    ("portfolio", snapshot.portfolio_id.as_str()),
                ];
                cash.sample(&labels, snapshot.cash.0);
                total.sample(&labels, snapshot.total_pnl.0);
                realized.sample(&labels, snapshot.realized_pnl.0);
                unrealized.sample(&labels, snapshot.unrealized_pnl.0);
                fees.sample(&labels, snapshot.fees.0);
            }
        }
    }
    for broker in &state.brokers {
        let engaged = state.store.kill_switches().engaged(*broker).await?;
        kill.sample(&[("broker", broker.as_str())], u8::from(engaged));
    }
    let mut out = String::new();
    for family in [
        &up,
        &events_in,
        &events_out,
        &duplicates,
        &retries,
        &dead,
        &lag,
        &partition_lag,
        &last_event,
        &cash,
        &total,
        &realized,
        &unrealized,
        &fees,
        &kill,
    ] {
        family.render(&mut out);
    }
    out.push_str(&latency);
    state.events.render_latency(&mut out);
    Ok(out)
}

/// The Prometheus endpoint.
pub async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    match render(&state).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
