//! Topic provisioning (`alpha-panda bootstrap`) and the topic health check: compare the cluster with
//! the specs of the configured namespaces, create what is missing, fix what can be fixed safely, and
//! report the rest.

use alpha_panda_core::{Broker, TopicMap, TopicSpec, TopicSpecOverlay};
use serde::Serialize;

use crate::log::Log;
use crate::LogError;

/// What bootstrap found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicStatus {
    /// Present and matching the spec.
    Ok,
    /// Was missing, now created.
    Created,
    /// Missing (check mode).
    Missing,
    /// Differed in a way bootstrap corrected (retention).
    Fixed(String),
    /// Differs in a way bootstrap must not correct by itself (fewer partitions would reshuffle keys;
    /// replication needs a reassignment).
    Drift(String),
}

/// One row of the bootstrap report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicReportRow {
    /// Topic name.
    pub topic: String,
    /// The spec it should have.
    pub expected: TopicSpec,
    /// What it has (before any change), if it exists.
    pub actual: Option<ActualSpec>,
    /// Verdict.
    pub status: TopicStatus,
}

/// What the cluster reports for a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActualSpec {
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Retention, when reported.
    pub retention_ms: Option<i64>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicReport {
    /// One row per required topic.
    pub rows: Vec<TopicReportRow>,
}

impl TopicReport {
    /// Whether any topic is missing or drifts in a way that was not fixed.
    pub fn has_unfixed_problems(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.status, TopicStatus::Missing | TopicStatus::Drift(_)))
    }

    /// The problems, one sentence each.
    pub fn problems(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|r| match &r.status {
                TopicStatus::Missing => Some(format!("topic {} is missing", r.topic)),
                TopicStatus::Drift(why) => Some(format!("topic {}: {why}", r.topic)),
                _ => None,
            })
            .collect()
    }

    /// A fixed-width table for people.
    pub fn to_table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.topic.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "{:<width$}  {:>10}  {:>3}  {:>13}  {}\n",
            "TOPIC", "PARTITIONS", "RF", "RETENTION_MS", "STATUS"
        );
        for r in &self.rows {
            let (p, rf, ret) = match &r.actual {
                Some(a) => (
                    a.partitions.to_string(),
                    a.replication_factor.to_string(),
                    a.retention_ms
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "?".into()),
                ),
                None => (
                    r.expected.partitions.to_string(),
                    r.expected.replication_factor.to_string(),
                    r.expected.retention_ms.to_string(),
                ),
            };
            let status = match &r.status {
                TopicStatus::Ok => "ok".to_string(),
                TopicStatus::Created => "created".to_string(),
                TopicStatus::Missing => "MISSING".to_string(),
                TopicStatus::Fixed(why) => format!("fixed: {why}"),
                TopicStatus::Drift(why) => format!("DRIFT: {why}"),
            };
            out.push_str(&format!(
                "{:<width$}  {:>10}  {:>3}  {:>13}  {}\n",
                r.topic, p, rf, ret, status
            ));
        }
        out
    }
}

/// Compares the cluster with the specs; with `apply`, creates missing topics and fixes retention.
///
/// # Errors
/// [`LogError`] when the cluster cannot be read or a create/alter is refused.
pub async fn reconcile_topics(
    log: &Log,
    brokers: &[Broker],
    overlay: &TopicSpecOverlay,
    apply: bool,
) -> Result<TopicReport, LogError> {
    let existing = log.describe_topics().await?;
    let mut rows = Vec::new();
    for topic in TopicMap::all_topics(brokers) {
        let expected = overlay.apply(topic.class);
        let found = existing.iter().find(|t| t.name == topic.name);
        let Some(found) = found else {
            let status = if apply {
                log.create_topic(
                    &topic.name,
                    expected.partitions,
                    expected.replication_factor,
                    expected.retention_ms,
                )
                .await?;
                TopicStatus::Created
            } else {
                TopicStatus::Missing
            };
            rows.push(TopicReportRow {
                topic: topic.name,
                expected,
                actual: None,
                status,
            });
            continue;
        };
        let actual = ActualSpec {
            partitions: found.partitions,
            replication_factor: found.replication_factor,
            retention_ms: found.retention_ms,
        };
        let mut drift = Vec::new();
        if found.partitions < expected.partitions {
            drift.push(format!(
                "{} partitions, spec wants {} (adding partitions remaps keys: do it deliberately)",
                found.partitions, expected.partitions
            ));
        }
        if found.replication_factor < expected.replication_factor {
            drift.push(format!(
                "replication factor {}, spec wants {} (needs a partition reassignment)",
                found.replication_factor, expected.replication_factor
            ));
        }
        let retention_differs = found
            .retention_ms
            .is_some_and(|r| r != expected.retention_ms);
        let status = if !drift.is_empty() {
            TopicStatus::Drift(drift.join("; "))
        } else if retention_differs && apply {
            log.set_retention(&topic.name, expected.retention_ms)
                .await?;
            TopicStatus::Fixed(format!(
                "retention.ms {} -> {}",
                found.retention_ms.unwrap_or_default(),
                expected.retention_ms
            ))
        } else if retention_differs {
            TopicStatus::Drift(format!(
                "retention.ms {}, spec wants {}",
                found.retention_ms.unwrap_or_default(),
                expected.retention_ms
            ))
        } else {
            TopicStatus::Ok
        };
        rows.push(TopicReportRow {
            topic: topic.name,
            expected,
            actual: Some(actual),
            status,
        });
    }
    Ok(TopicReport { rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLog;

    #[tokio::test]
    async fn creates_every_topic_and_dlq_then_reports_ok_and_flags_under_partitioned() {
        let memory = MemoryLog::default();
        memory.create_topic("paper.orders.filled", 1);
        let log = Log::Memory(memory);
        let overlay = TopicSpecOverlay::development();
        let check = reconcile_topics(&log, &[Broker::Paper], &overlay, false)
            .await
            .unwrap();
        assert!(check.has_unfixed_problems());
        assert!(check
            .problems()
            .iter()
            .any(|p| p.contains("market.ticks.dlq is missing")));

        let report = reconcile_topics(&log, &[Broker::Paper], &overlay, true)
            .await
            .unwrap();
        let created = report
            .rows
            .iter()
            .filter(|r| r.status == TopicStatus::Created)
            .count();
        assert_eq!(created, 20);
        let filled = report
            .rows
            .iter()
            .find(|r| r.topic == "paper.orders.filled")
            .unwrap();
        assert!(matches!(filled.status, TopicStatus::Drift(_)));
        assert!(report.has_unfixed_problems());
        assert!(report.to_table().contains("DRIFT"));
    }
}
