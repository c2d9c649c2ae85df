//! [`Log`]: one interface over both backends, chosen by `log.url`. Services and the runtime never
//! know which backend they have.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures::future::try_join_all;

use crate::handler::CommitOffset;

use crate::conflation::Conflation;
use crate::identity::LogIdentity;
use crate::kafka::{Anchor, ExistingTopic, KafkaConfig, KafkaConsumer, KafkaLog, PendingDelivery};
use crate::memory::{MemoryConsumer, MemoryLog, MemoryLogConfig};
use crate::record::{Delivery, OutgoingRecord, PartitionLag, Record};
use crate::LogError;

/// A record handed to the log whose acknowledgement is still to come (see
/// [`Log::send_unacknowledged`]).
#[derive(Debug)]
pub struct Unacknowledged {
    /// The record, kept to be sent again should the broker never acknowledge it.
    pub record: OutgoingRecord,
    /// Its acknowledgement.
    pub delivery: PendingDelivery,
}

/// The log, memory or Kafka.
#[derive(Clone, Debug)]
pub enum Log {
    /// In-process.
    Memory(MemoryLog),
    /// rdkafka.
    Kafka(KafkaLog),
}

impl Log {
    /// Connects to the log at `url`: `memory://` or `kafka://host:port[,host:port]`.
    ///
    /// # Errors
    /// [`LogError::InvalidUrl`] for any other URL; [`LogError::Broker`] when the Kafka client cannot
    /// be created.
    pub fn connect(
        url: &str,
        kafka_properties: &BTreeMap<String, String>,
    ) -> Result<Self, LogError> {
        Self::connect_with(url, kafka_properties, MemoryLogConfig::default())
    }

    /// As [`Log::connect`], with the memory log's retention from `memory` when `url` names it.
    ///
    /// # Errors
    /// As [`Log::connect`].
    pub fn connect_with(
        url: &str,
        kafka_properties: &BTreeMap<String, String>,
        memory: MemoryLogConfig,
    ) -> Result<Self, LogError> {
        if url == "memory://" || url == "memory" {
            return Ok(Log::Memory(MemoryLog::new(memory)));
        }
        let Some(servers) = url.strip_prefix("kafka://") else {
            return Err(LogError::InvalidUrl {
                url: url.to_string(),
                reason: "expected memory:// or kafka://host:port[,host:port]".into(),
            });
        };
        let servers = servers.trim_end_matches('/');
        let valid = !servers.is_empty()
            && servers.split(',').all(|hp| {
                hp.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            });
        if !valid {
            return Err(LogError::InvalidUrl {
                url: url.to_string(),
                reason: "each broker must be host:port".into(),
            });
        }
        Ok(Log::Kafka(KafkaLog::connect(KafkaConfig {
            bootstrap_servers: servers.to_string(),
            properties: kafka_properties.clone(),
        })?))
    }

    /// Short name of the backend for status lines.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Log::Memory(_) => "memory",
            Log::Kafka(_) => "kafka",
        }
    }

    /// Which log this is, for checkpoints to record with their offsets (see [`crate::identity`]).
    ///
    /// # Errors
    /// [`LogError::Broker`] when a Kafka cluster cannot tell its id.
    pub async fn identity(&self) -> Result<LogIdentity, LogError> {
        match self {
            Log::Memory(m) => Ok(m.identity()),
            Log::Kafka(k) => k.identity().await,
        }
    }

    /// What is at `offset` of `topic`'s `partition` (see [`KafkaLog::event_id_at`]).
    ///
    /// # Errors
    /// [`LogError`] when the partition cannot be read.
    pub async fn event_id_at(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Anchor, LogError> {
        match self {
            Log::Memory(m) => Ok(m.event_id_at(topic, partition, offset)),
            Log::Kafka(k) => k.event_id_at(topic, partition, offset).await,
        }
    }

    /// Writes one record and waits for its acknowledgement.
    ///
    /// # Errors
    /// [`LogError`] when the record is not acknowledged.
    pub async fn send(&self, record: OutgoingRecord) -> Result<Delivery, LogError> {
        match self {
            Log::Memory(m) => Ok(m.append_when_room(record).await),
            Log::Kafka(k) => k.send(&record).await,
        }
    }

    /// Writes records and waits until every one is acknowledged (sent concurrently on Kafka).
    ///
    /// # Errors
    /// [`LogError`] when any record is not acknowledged (some may have been written: callers rely on
    /// deterministic ids, not on all-or-nothing).
    pub async fn send_all(&self, records: Vec<OutgoingRecord>) -> Result<Vec<Delivery>, LogError> {
        match self {
            Log::Memory(m) => Ok(m.append_all_when_room(records).await),
            Log::Kafka(k) => try_join_all(records.iter().map(|r| k.send(r))).await,
        }
    }

    /// Hands `records` to the log without waiting for the broker, pushing onto `unacknowledged`
    /// each record whose acknowledgement is still to come (with the record, to send it again if
    /// it never is). The memory log writes at once (waiting for room) and leaves nothing
    /// unacknowledged.
    ///
    /// # Errors
    /// The [`LogError`] and the records not handed over, from the first the producer refused
    /// (those before it are in `unacknowledged`).
    pub async fn send_unacknowledged(
        &self,
        records: Vec<OutgoingRecord>,
        unacknowledged: &mut impl Extend<Unacknowledged>,
    ) -> Result<(), (LogError, Vec<OutgoingRecord>)> {
        match self {
            Log::Memory(m) => {
                m.append_all_when_room(records).await;
                Ok(())
            }
            Log::Kafka(k) => {
                let mut records = records.into_iter();
                while let Some(record) = records.next() {
                    match k.enqueue(&record).await {
                        Ok(delivery) => {
                            unacknowledged.extend([Unacknowledged { record, delivery }])
                        }
                        Err(e) => {
                            let mut unsent = vec![record];
                            unsent.extend(records);
                            return Err((e, unsent));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Writes records and waits until every one is acknowledged, handing the records back with the
    /// error when any is not, so that a caller that retries does not have to keep a copy of them.
    ///
    /// # Errors
    /// The [`LogError`] and the records, when any record is not acknowledged (some may have been
    /// written: callers rely on deterministic ids, not on all-or-nothing).
    pub async fn send_all_or_return(
        &self,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Delivery>, (LogError, Vec<OutgoingRecord>)> {
        match self {
            Log::Memory(m) => Ok(m.append_all_when_room(records).await),
            Log::Kafka(k) => match try_join_all(records.iter().map(|r| k.send(r))).await {
                Ok(deliveries) => Ok(deliveries),
                Err(e) => Err((e, records)),
            },
        }
    }

    /// A consumer in `group` over `topics`.
    ///
    /// # Errors
    /// [`LogError::Broker`] when a Kafka consumer cannot be created.
    pub fn consumer(&self, group: &str, topics: &[String]) -> Result<LogConsumer, LogError> {
        match self {
            Log::Memory(m) => Ok(LogConsumer::Memory(m.consumer(group, topics))),
            Log::Kafka(k) => Ok(LogConsumer::Kafka(k.consumer(group, topics)?)),
        }
    }

    /// Every record of `topic` from the start.
    ///
    /// # Errors
    /// [`LogError`] when the topic cannot be read.
    pub async fn read_all(&self, topic: &str) -> Result<Vec<Record>, LogError> {
        match self {
            Log::Memory(m) => Ok(m.read_all(topic)),
            Log::Kafka(k) => k.read_all(topic, Duration::from_secs(3)).await,
        }
    }

    /// Existing topics.
    ///
    /// # Errors
    /// [`LogError`] when metadata cannot be read.
    pub async fn describe_topics(&self) -> Result<Vec<ExistingTopic>, LogError> {
        match self {
            Log::Memory(m) => Ok(m
                .topics()
                .into_iter()
                .map(|(name, partitions)| ExistingTopic {
                    name,
                    partitions,
                    replication_factor: 1,
                    retention_ms: None,
                })
                .collect()),
            Log::Kafka(k) => k.describe_topics().await,
        }
    }

    /// Brokers in the cluster (1 for memory).
    ///
    /// # Errors
    /// [`LogError`] when metadata cannot be read.
    pub async fn broker_count(&self) -> Result<u32, LogError> {
        match self {
            Log::Memory(_) => Ok(1),
            Log::Kafka(k) => k.broker_count().await,
        }
    }

    /// Creates a topic; `Ok(false)` when it existed.
    ///
    /// # Errors
    /// [`LogError`] when the broker refuses.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        retention_ms: i64,
    ) -> Result<bool, LogError> {
        match self {
            Log::Memory(m) => Ok(m.create_topic(name, partitions)),
            Log::Kafka(k) => {
                k.create_topic(name, partitions, replication_factor, retention_ms)
                    .await
            }
        }
    }

    /// Sets a topic's retention (a no-op on memory, whose retention is by count).
    ///
    /// # Errors
    /// [`LogError`] when the broker refuses.
    pub async fn set_retention(&self, name: &str, retention_ms: i64) -> Result<(), LogError> {
        match self {
            Log::Memory(_) => Ok(()),
            Log::Kafka(k) => k.set_retention(name, retention_ms).await,
        }
    }

    /// Deletes records of a partition below `offset`.
    ///
    /// # Errors
    /// [`LogError`] when the broker refuses.
    pub async fn delete_records_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), LogError> {
        match self {
            Log::Memory(m) => {
                m.truncate_before(topic, partition, offset);
                Ok(())
            }
            Log::Kafka(k) => k.delete_records_before(topic, partition, offset).await,
        }
    }

    /// Waits until everything sent is delivered.
    pub async fn flush(&self) {
        if let Log::Kafka(k) = self {
            k.flush().await;
        }
    }
}

/// A consumer of either backend.
pub enum LogConsumer {
    /// Memory.
    Memory(MemoryConsumer),
    /// Kafka.
    Kafka(KafkaConsumer),
}

impl LogConsumer {
    /// The next record, or `None` after `timeout` with nothing new.
    ///
    /// # Errors
    /// [`LogError`] on a consumer error (infrastructure).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Option<Record>, LogError> {
        self.poll_conflating(timeout, Conflation::none()).await
    }

    /// As [`LogConsumer::poll`], leaving out of a fetched batch the records `conflation` lets a
    /// later one of the same key supersede (see [`crate::conflation`]); how many is told by
    /// [`LogConsumer::take_conflated`]. Kafka's records are bytes, which the log cannot judge: it
    /// skips none, and the runtime conflates them once they are decoded.
    ///
    /// # Errors
    /// [`LogError`] on a consumer error (infrastructure).
    pub async fn poll_conflating(
        &mut self,
        timeout: Duration,
        conflation: Conflation,
    ) -> Result<Option<Record>, LogError> {
        match self {
            LogConsumer::Memory(m) => Ok(m.poll_conflating(timeout, conflation).await),
            LogConsumer::Kafka(k) => k.poll(timeout).await,
        }
    }

    /// How many records polls left out as superseded since the last call.
    pub fn take_conflated(&mut self) -> u64 {
        match self {
            LogConsumer::Memory(m) => m.take_conflated(),
            LogConsumer::Kafka(_) => 0,
        }
    }

    /// The next record already fetched by an earlier poll, without waiting: `None` when the batch
    /// is used up.
    pub fn next_buffered(&mut self) -> Option<Record> {
        match self {
            LogConsumer::Memory(m) => m.next_buffered(),
            LogConsumer::Kafka(k) => k.next_buffered(),
        }
    }

    /// The batch of undecoded records the last poll fetched and has not handed over yet, for the
    /// runtime to conflate in place once decoded; `None` for a backend that hands over typed
    /// records (the memory log, which conflates them itself).
    pub fn buffered_bytes(&mut self) -> Option<&mut VecDeque<Record>> {
        match self {
            LogConsumer::Memory(_) => None,
            LogConsumer::Kafka(k) => Some(k.buffered()),
        }
    }

    /// Commits the next offsets of partitions (the same [`CommitOffset`] a checkpoint saves).
    ///
    /// # Errors
    /// [`LogError`] when the commit cannot be made.
    pub fn commit(&mut self, offsets: &[CommitOffset]) -> Result<(), LogError> {
        match self {
            LogConsumer::Memory(m) => {
                for o in offsets {
                    m.commit(&o.topic, o.partition, o.next_offset);
                }
                Ok(())
            }
            LogConsumer::Kafka(k) => k.commit(offsets),
        }
    }

    /// Final commit, then leave the group.
    ///
    /// # Errors
    /// [`LogError`] when the final commit fails.
    pub async fn close(self, offsets: &[CommitOffset]) -> Result<(), LogError> {
        match self {
            LogConsumer::Memory(mut m) => {
                for o in offsets {
                    m.commit(&o.topic, o.partition, o.next_offset);
                }
                Ok(())
            }
            LogConsumer::Kafka(k) => k.close(offsets).await,
        }
    }

    /// A lag probe that can run on its own task, for backends whose lag needs broker round trips
    /// (Kafka); `None` for the memory log, whose lag is read in place.
    pub fn lag_probe(&self) -> Option<crate::kafka::KafkaLagProbe> {
        match self {
            LogConsumer::Memory(_) => None,
            LogConsumer::Kafka(k) => Some(k.lag_probe()),
        }
    }

    /// Lag of every assigned partition.
    ///
    /// # Errors
    /// [`LogError`] when offsets cannot be read.
    pub async fn lag(&self) -> Result<Vec<PartitionLag>, LogError> {
        match self {
            LogConsumer::Memory(m) => Ok(m.lag()),
            LogConsumer::Kafka(k) => k.lag().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation_names_the_problem() {
        let empty = BTreeMap::new();
        assert!(matches!(
            Log::connect("memory://", &empty),
            Ok(Log::Memory(_))
        ));
        for bad in [
            "redis://x",
            "kafka://",
            "kafka://host",
            "kafka://h:notaport",
        ] {
            let err = Log::connect(bad, &empty).unwrap_err();
            assert!(err.to_string().contains("log.url"), "{err}");
        }
    }
}
