//! Operator tools over dead-letter topics: list, replay, purge (`alpha-panda dlq …`).
//!
//! A replayed event keeps its original id, so the consumers' deduplication still protects
//! downstream from effects applied twice; and it is addressed to one consumer group (by default
//! the one that failed on it), so the groups that had handled it pass over it.

use std::sync::Arc;

use alpha_panda_core::{DlqMessage, DlqPayload, Envelope, EventId, Payload, Timestamp, TopicMap};
use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use crate::log::Log;
use crate::record::{OutgoingRecord, Record, RecordValue};
use crate::LogError;

/// Ordinal reserved for a DLQ record derived from its input, so replays of the same failure share an
/// id.
pub(crate) const DLQ_ORDINAL: u32 = u32::MAX;

/// The header a replayed record carries: the consumer group it is meant for, or `*` for every
/// group. Every other group passes over it, so a record that failed in one service is not handled a
/// second time by the services that had handled it; and the group it is meant for deduplicates it
/// even when its type (a tick) usually bypasses deduplication.
pub const REPLAY_GROUP_HEADER: &str = "alpha-panda-replay-group";

/// The group a record replayed from a DLQ is meant for (`*`: every group), read from its
/// headers; `None` for a record that is no replay.
pub fn replay_group(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name == REPLAY_GROUP_HEADER)
        .map(|(_, group)| group.as_str())
}

/// Which consumer groups a replay is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReplayTarget {
    /// The group of the service that dead-lettered the record (the default).
    #[default]
    FailedGroup,
    /// One named group (`alpha-panda.portfolio_manager.paper`).
    Group(String),
    /// Every group that reads the original topic.
    AllGroups,
}

/// The consumer group of the service that dead-lettered `message`: `alpha-panda.{service}`, with
/// `.{broker}` for a service of one namespace (the rule of `Handler::consumer_group`).
pub fn failed_group(message: &DlqMessage) -> String {
    match message.broker.namespace() {
        Some(broker) => format!("alpha-panda.{}.{broker}", message.service),
        None => format!("alpha-panda.{}", message.service),
    }
}

/// One dead-lettered record as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DlqEntry {
    /// The DLQ topic.
    pub dlq_topic: String,
    /// Partition in the DLQ topic.
    pub partition: i32,
    /// Offset in the DLQ topic.
    pub offset: i64,
    /// The DLQ event's id (what `replay --id` takes; the original event id works too).
    pub id: EventId,
    /// The record.
    pub message: DlqMessage,
}

impl DlqEntry {
    /// The id of the original event, when it decoded.
    pub fn original_id(&self) -> Option<EventId> {
        match &self.message.original {
            DlqPayload::Envelope { envelope } => Some(envelope.id),
            DlqPayload::Raw { .. } => None,
        }
    }
}

/// Which entries to select.
#[derive(Debug, Clone, Default)]
pub struct DlqFilter {
    /// Only entries whose original topic or DLQ topic is this.
    pub topic: Option<String>,
    /// Failed at or after.
    pub since: Option<Timestamp>,
    /// Failed before.
    pub until: Option<Timestamp>,
}

impl DlqFilter {
    fn matches(&self, entry: &DlqEntry) -> bool {
        let topic_ok = self
            .topic
            .as_ref()
            .is_none_or(|t| *t == entry.message.original_topic || *t == entry.dlq_topic);
        let since_ok = self.since.is_none_or(|s| entry.message.failed_at >= s);
        let until_ok = self.until.is_none_or(|u| entry.message.failed_at < u);
        topic_ok && since_ok && until_ok
    }
}

/// Errors of the DLQ tools.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// No entry has that id.
    #[error("no DLQ entry with id {0}; run `alpha-panda dlq list` to see the ids")]
    NotFound(EventId),
}

fn decode_entry(record: &Record) -> Option<DlqEntry> {
    let envelope: Arc<Envelope> = match &record.value {
        RecordValue::Event(e) => e.clone(),
        RecordValue::Bytes(b) => Arc::new(Envelope::from_json(b).ok()?),
    };
    let Payload::DlqMessage(message) = &envelope.payload else {
        return None;
    };
    Some(DlqEntry {
        dlq_topic: record.topic.to_string(),
        partition: record.partition,
        offset: record.offset,
        id: envelope.id,
        message: message.clone(),
    })
}

async fn dlq_topics(log: &Log, filter: &DlqFilter) -> Result<Vec<String>, LogError> {
    let mut topics: Vec<String> = log
        .describe_topics()
        .await?
        .into_iter()
        .map(|t| t.name)
        .filter(|t| TopicMap::is_dlq(t))
        .collect();
    if let Some(wanted) = &filter.topic {
        let dlq = if TopicMap::is_dlq(wanted) {
            wanted.clone()
        } else {
            TopicMap::dlq(wanted)
        };
        topics.retain(|t| *t == dlq);
    }
    topics.sort();
    Ok(topics)
}

/// Lists DLQ entries matching `filter`, oldest failure first.
///
/// # Errors
/// [`LogError`] when the log cannot be read.
pub async fn list(log: &Log, filter: &DlqFilter) -> Result<Vec<DlqEntry>, LogError> {
    let mut out = Vec::new();
    for topic in dlq_topics(log, filter).await? {
        for record in log.read_all(&topic).await? {
            if let Some(entry) = decode_entry(&record) {
                if filter.matches(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    out.sort_by_key(|e| {
        (
            e.message.failed_at,
            e.dlq_topic.clone(),
            e.partition,
            e.offset,
        )
    });
    Ok(out)
}

fn replay_record(entry: &DlqEntry, target: &ReplayTarget) -> OutgoingRecord {
    let group = match target {
        ReplayTarget::FailedGroup => failed_group(&entry.message),
        ReplayTarget::Group(group) => group.clone(),
        ReplayTarget::AllGroups => "*".to_string(),
    };
    let mut record = match &entry.message.original {
        DlqPayload::Envelope { envelope } => OutgoingRecord::event(
            entry.message.original_topic.clone(),
            Envelope::clone(envelope),
        ),
        DlqPayload::Raw { value_base64 } => OutgoingRecord {
            topic: entry.message.original_topic.clone().into(),
            key: entry.message.original_key.as_deref().map(Arc::from),
            value: RecordValue::Bytes(Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(value_base64)
                    .unwrap_or_default(),
            )),
            headers: Vec::new(),
        },
    };
    record
        .headers
        .push((REPLAY_GROUP_HEADER.to_string(), group));
    record
}

/// Replays the entry whose DLQ id or original event id is `id` to its original topic, for the
/// consumer groups of `target`.
///
/// # Errors
/// [`DlqError::NotFound`] when no entry has that id; [`DlqError::Log`] when the log fails.
pub async fn replay_one(
    log: &Log,
    id: EventId,
    target: &ReplayTarget,
) -> Result<DlqEntry, DlqError> {
    let entries = list(log, &DlqFilter::default()).await?;
    let entry = entries
        .into_iter()
        .find(|e| e.id == id || e.original_id() == Some(id))
        .ok_or(DlqError::NotFound(id))?;
    log.send(replay_record(&entry, target)).await?;
    Ok(entry)
}

/// Replays every entry matching `filter`, for the consumer groups of `target`; returns what was
/// replayed.
///
/// # Errors
/// [`LogError`] when the log fails (entries before the failure were replayed).
pub async fn replay_matching(
    log: &Log,
    filter: &DlqFilter,
    target: &ReplayTarget,
) -> Result<Vec<DlqEntry>, LogError> {
    let entries = list(log, filter).await?;
    for entry in &entries {
        log.send(replay_record(entry, target)).await?;
    }
    Ok(entries)
}

/// Deletes DLQ records that failed before `older_than` (per partition, up to the first newer one,
/// since a log can only be truncated from its start). Returns how many records were removed.
///
/// # Errors
/// [`LogError`] when the log cannot be read or truncated.
pub async fn purge(
    log: &Log,
    topic: Option<&str>,
    older_than: Timestamp,
) -> Result<usize, LogError> {
    let filter = DlqFilter {
        topic: topic.map(str::to_string),
        ..DlqFilter::default()
    };
    let mut removed = 0;
    for dlq_topic in dlq_topics(log, &filter).await? {
        let records = log.read_all(&dlq_topic).await?;
        let mut cut: std::collections::BTreeMap<i32, (i64, usize)> = Default::default();
        let mut blocked: std::collections::BTreeSet<i32> = Default::default();
        for record in &records {
            if blocked.contains(&record.partition) {
                continue;
            }
            let old = decode_entry(record).is_none_or(|e| e.message.failed_at < older_than);
            if old {
                let slot = cut.entry(record.partition).or_insert((0, 0));
                slot.0 = record.offset + 1;
                slot.1 += 1;
            } else {
                blocked.insert(record.partition);
            }
        }
        for (partition, (next_offset, count)) in cut {
            log.delete_records_before(&dlq_topic, partition, next_offset)
                .await?;
            removed += count;
        }
    }
    Ok(removed)
}
