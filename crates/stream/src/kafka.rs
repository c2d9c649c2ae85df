//! The Kafka / Redpanda backend (`log.url = "kafka://host:port[,host:port]"`), on rdkafka.
//!
//! Producer: idempotent, `acks=all`, replaced by a new one when fenced or failed
//! (`SharedProducer`). A record is either sent and awaited ([`KafkaLog::send`]) or
//! enqueued ([`KafkaLog::enqueue`]) with its acknowledgement awaited later: the runtime enqueues a
//! handler's outputs and awaits them all before the checkpoint or commit that covers their inputs.
//! Consumer: auto-commit and auto offset store off; offsets are committed only by the runtime, after
//! effects. A rebalance is logged and counted ([`Rebalances`]); it needs nothing more, because a
//! stateful service's writer is one process (its lease), whose state in memory stays the truth
//! across a revocation and reassignment, and records the group hands it again are passed over by
//! position (see the processor). librdkafka calls that block (watermarks, committed offsets, metadata, close) run on the
//! blocking pool, never on an async worker. `log.kafka` settings are passed through verbatim as
//! librdkafka properties, so security, timeouts and compression reach any cluster.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{Envelope, EventId};
use bytes::Bytes;
use futures::StreamExt;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::handler::CommitOffset;
use crate::identity::LogIdentity;
use crate::record::{header, Delivery, OutgoingRecord, PartitionLag, Record, RecordValue};
use crate::shared_decode::{Registration, SharedDecodes};
use crate::LogError;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A consumer-group member, with its rebalances logged and counted.
type GroupConsumer = StreamConsumer<Rebalances>;

/// The context of a group member: says when the group takes partitions away from it or hands
/// them over, and counts both.
pub struct Rebalances {
    group: String,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                group = %self.group,
                partitions = %describe(partitions),
                "the group revokes partitions; what was read of them and not yet committed is \
                 read again by whoever gets them"
            );
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.count
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(group = %self.group, partitions = %describe(partitions), "partitions assigned");
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed")
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

/// `topic[partition]` of every element, for a log line.
fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}
/// How long [`KafkaLog::read_all`] goes on reading once every partition reached its reported end.
const TAIL_GRACE: Duration = Duration::from_millis(250);

/// Connection settings of the Kafka backend.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port,host:port`.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties (`log.kafka` in settings), applied last so they win.
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        config
    }

    fn with_overrides(&self, mut config: ClientConfig) -> ClientConfig {
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}

fn broker_error(e: KafkaError) -> LogError {
    LogError::Broker(e.to_string())
}

/// A connected Kafka backend: one shared idempotent producer.
#[derive(Clone)]
pub struct KafkaLog {
    config: Arc<KafkaConfig>,
    producer: Arc<SharedProducer>,
    /// What this process's consumers decode, shared between them.
    decodes: Arc<SharedDecodes>,
}

/// The shared idempotent producer, replaced when it can no longer produce.
///
/// An idempotent producer whose record timed out bumps its epoch; a broker that refuses the bump
/// (tansu does) answers every later produce with `ProducerFenced`, and librdkafka goes on
/// producing with the fenced id (thousands of refusals a minute, seen on tansu); a producer with
/// a fatal error is as useless. Either way every send would fail until the process restarts: the
/// next send after such an answer goes through a new producer instead, and the records the old
/// one still held fail and are sent again by their owners (ids are deterministic, so consumers
/// deduplicate what both delivered).
struct SharedProducer {
    current: parking_lot::RwLock<FutureProducer>,
    /// Set by a delivery that says the current producer is spent.
    spent: std::sync::atomic::AtomicBool,
}

impl SharedProducer {
    fn create(config: &KafkaConfig) -> Result<FutureProducer, LogError> {
        let mut base = config.client_config();
        base.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "1");
        config.with_overrides(base).create().map_err(broker_error)
    }

    /// The producer to send with: a new one when the current one is spent.
    fn get(&self, config: &KafkaConfig) -> Result<FutureProducer, LogError> {
        {
            let current = self.current.read();
            if !self.spent.load(std::sync::atomic::Ordering::Acquire)
                && current.client().fatal_error().is_none()
            {
                return Ok(current.clone());
            }
        }
        let mut slot = self.current.write();
        let fatal = slot.client().fatal_error();
        // Another sender may have replaced it meanwhile.
        if self.spent.swap(false, std::sync::atomic::Ordering::AcqRel) || fatal.is_some() {
            tracing::warn!(
                fatal = ?fatal,
                "the producer can no longer produce (fenced or failed); replacing it"
            );
            let fresh = Self::create(config)?;
            let spent = std::mem::replace(&mut *slot, fresh);
            // Dropping a producer joins its threads: not on an async worker.
            drop(tokio::task::spawn_blocking(move || drop(spent)));
        }
        Ok(slot.clone())
    }

    /// A delivery failed with `code`: marks the producer spent when the code says so.
    fn delivery_failed(&self, code: Option<RDKafkaErrorCode>) {
        if matches!(
            code,
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
            )
        ) {
            self.spent.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Creates the producer (no network round trip yet).
    ///
    /// # Errors
    /// [`LogError::Broker`] when librdkafka rejects the configuration.
    pub fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        let producer = SharedProducer::create(&config)?;
        Ok(Self {
            config: Arc::new(config),
            producer: Arc::new(SharedProducer {
                current: parking_lot::RwLock::new(producer),
                spent: std::sync::atomic::AtomicBool::new(false),
            }),
            decodes: Arc::default(),
        })
    }

    /// Sends one record and waits for the broker's acknowledgement.
    ///
    /// # Errors
    /// [`LogError::Produce`] when the broker does not acknowledge it.
    pub async fn send(&self, record: &OutgoingRecord) -> Result<Delivery, LogError> {
        self.enqueue(record).await?.acknowledged().await
    }

    /// Hands one record to the producer without waiting for the broker: the returned
    /// [`PendingDelivery`] resolves when the broker acknowledges it (or the producer gives up,
    /// after `message.timeout.ms`). Waits only while the producer's queue is full, for at most
    /// [`QUEUE_FULL_LIMIT`]. The producer is idempotent, so records of one partition are written
    /// in the order they were enqueued, retries included.
    ///
    /// # Errors
    /// [`LogError::Produce`] when the producer refuses the record (an unknown topic, a queue that
    /// stays full).
    pub async fn enqueue(&self, record: &OutgoingRecord) -> Result<PendingDelivery, LogError> {
        let value = record.value.to_bytes();
        let add = |headers: OwnedHeaders, key: &str, value: &str| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        };
        let headers = record.headers.iter().fold(
            OwnedHeaders::new_with_capacity(8 + record.headers.len()),
            |headers, (key, value)| add(headers, key, value),
        );
        let headers = match &record.value {
            RecordValue::Event(envelope) => {
                crate::record::fold_envelope_headers(envelope, headers, add)
            }
            RecordValue::Bytes(_) => headers,
        };
        let mut future = FutureRecord::<str, [u8]>::to(&record.topic)
            .payload(&value)
            .headers(headers);
        if let Some(key) = record.key() {
            future = future.key(key);
        }
        let producer = self.producer.get(&self.config)?;
        let full_since = tokio::time::Instant::now();
        loop {
            match producer.send_result(future) {
                Ok(delivery) => {
                    return Ok(PendingDelivery {
                        topic: record.topic.clone(),
                        delivery,
                        producer: self.producer.clone(),
                    })
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if full_since.elapsed() < QUEUE_FULL_LIMIT =>
                {
                    // The producer's own thread drains the queue; give it a moment.
                    future = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => {
                    return Err(LogError::Produce {
                        topic: record.topic.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }

    /// Waits until every queued record is delivered.
    pub async fn flush(&self) {
        let producer = self.producer.current.read().clone();
        let _ = tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30))
        })
        .await;
    }

    /// A consumer in `group` subscribed to `topics`.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the consumer cannot be created or subscribed.
    pub fn consumer(&self, group: &str, topics: &[String]) -> Result<KafkaConsumer, LogError> {
        let mut base = self.config.client_config();
        base.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            // The runtime may go long without polling while it retries (a database or broker
            // outage, input held back until a checkpoint succeeds). Evicted for that, the member
            // would rejoin at the committed offsets under state already past them; its liveness
            // is the session's heartbeats instead, and one writer per state is the lease's job.
            .set("max.poll.interval.ms", "86400000")
            // A trading pipeline is latency-bound, not byte-bound: librdkafka's default lets a
            // quiet partition's fetch wait 500 ms for data at every hop. Settings can override it.
            .set("fetch.wait.max.ms", "10")
            .set("enable.partition.eof", "false");
        let rebalances = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let consumer: GroupConsumer = self
            .config
            .with_overrides(base)
            .create_with_context(Rebalances {
                group: group.to_string(),
                count: rebalances.clone(),
            })
            .map_err(broker_error)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(broker_error)?;
        let topics: Vec<Arc<str>> = topics.iter().map(|t| Arc::from(t.as_str())).collect();
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            decodes: self.decodes.register(&topics),
            topics,
            rebalances,
            fetched: VecDeque::new(),
            deferred_error: None,
        })
    }

    /// Reads every record of `topic` from the beginning, without a consumer group's offsets, until
    /// each partition reaches the end it had when the read started or nothing arrives for `idle`,
    /// then for [`TAIL_GRACE`] more.
    ///
    /// The grace is there because a broker may report a high watermark short of what it holds:
    /// tansu's memory storage puts it one past the *first* record of the last batch written, so the
    /// rest of a batch of several records (two services dead-lettering the same input at once
    /// through one producer) lies past it. Its fetches still return them, and they arrive with the
    /// batch already fetched, well within the grace.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the topic cannot be read.
    pub async fn read_all(&self, topic: &str, idle: Duration) -> Result<Vec<Record>, LogError> {
        let consumer = self.reader()?;
        let partitions = self.partition_count(topic).await?;
        let mut ends = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(broker_error)?;
            let (low, high) = watermarks(&consumer, topic, p).await?;
            if high > low {
                ends.insert(p, high);
            }
        }
        consumer.assign(&tpl).map_err(broker_error)?;
        let mut out = Vec::new();
        let mut grace_ends: Option<tokio::time::Instant> = None;
        loop {
            let wait = match grace_ends {
                Some(deadline) => deadline.saturating_duration_since(tokio::time::Instant::now()),
                None if ends.is_empty() => {
                    grace_ends = Some(tokio::time::Instant::now() + TAIL_GRACE);
                    TAIL_GRACE
                }
                None => idle,
            };
            match tokio::time::timeout(wait, consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(broker_error(e)),
                Ok(Ok(message)) => {
                    let record = to_record(&message, Arc::from(message.topic()));
                    if let Some(end) = ends.get(&record.partition) {
                        if record.offset + 1 >= *end {
                            ends.remove(&record.partition);
                        }
                    }
                    out.push(record);
                }
            }
        }
        close(consumer).await;
        out.sort_by_key(|r| (r.partition, r.offset));
        Ok(out)
    }

    /// The id of the event at `offset` of `topic`'s `partition`: what a checkpoint's last
    /// position is checked against, to tell a topic from one of the same name created again.
    /// `Ok(None)` when there is no record there (the partition is shorter, or the record is not
    /// an event); [`Anchor::Gone`] when retention already removed it.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the partition cannot be read.
    pub async fn event_id_at(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Anchor, LogError> {
        let consumer = self.reader()?;
        let (low, _) = watermarks(&consumer, topic, partition).await?;
        if offset < low {
            close(consumer).await;
            return Ok(Anchor::Gone);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(broker_error)?;
        consumer.assign(&tpl).map_err(broker_error)?;
        // A short high watermark (tansu) is no proof the record is missing: ask for it and wait.
        let found = match tokio::time::timeout(ANCHOR_WAIT, consumer.recv()).await {
            Ok(Ok(message)) if message.offset() == offset => {
                let record = to_record(&message, Arc::from(message.topic()));
                Anchor::Found(record.event_id())
            }
            Ok(Ok(_)) | Err(_) => Anchor::Found(None),
            Ok(Err(e)) => {
                close(consumer).await;
                return Err(broker_error(e));
            }
        };
        close(consumer).await;
        Ok(found)
    }

    /// A consumer of a group of its own, that commits nothing: for reading partitions by offset.
    fn reader(&self) -> Result<Arc<StreamConsumer>, LogError> {
        let mut base = self.config.client_config();
        base.set(
            "group.id",
            format!("alpha-panda.reader.{}", uuid::Uuid::now_v7()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
        let consumer: StreamConsumer = self
            .config
            .with_overrides(base)
            .create()
            .map_err(broker_error)?;
        Ok(Arc::new(consumer))
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, LogError> {
        let topics = self.describe_topics().await?;
        topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions)
            .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, LogError> {
        self.config
            .with_overrides(self.config.client_config())
            .create()
            .map_err(broker_error)
    }

    /// The cluster's topics with partitions, replication factor and `retention.ms` (when readable),
    /// and the number of brokers.
    ///
    /// # Errors
    /// [`LogError::Broker`] when metadata cannot be fetched.
    pub async fn describe_topics(&self) -> Result<Vec<ExistingTopic>, LogError> {
        let admin = Arc::new(self.admin()?);
        let meta_admin = admin.clone();
        let mut topics: Vec<ExistingTopic> = tokio::task::spawn_blocking(move || {
            meta_admin
                .inner()
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map(|m| {
                    m.topics()
                        .iter()
                        .filter(|t| t.error().is_none())
                        .map(|t| ExistingTopic {
                            name: t.name().to_string(),
                            partitions: t.partitions().len() as i32,
                            replication_factor: t
                                .partitions()
                                .first()
                                .map(|p| p.replicas().len() as i16)
                                .unwrap_or(0),
                            retention_ms: None,
                        })
                        .collect()
                })
        })
        .await
        .map_err(|e| LogError::Broker(e.to_string()))?
        .map_err(broker_error)?;
        let specifiers: Vec<ResourceSpecifier> = topics
            .iter()
            .map(|t| ResourceSpecifier::Topic(&t.name))
            .collect();
        // Not every Kafka-compatible broker implements DescribeConfigs; retention is then unknown
        // rather than an error.
        if let Ok(results) = admin
            .describe_configs(&specifiers, &AdminOptions::new())
            .await
        {
            for (topic, result) in topics.iter_mut().zip(results) {
                if let Ok(resource) = result {
                    topic.retention_ms = resource
                        .get("retention.ms")
                        .and_then(|e| e.value.as_deref())
                        .and_then(|v| v.parse().ok());
                }
            }
        }
        Ok(topics)
    }

    /// The cluster's identity, from its cluster id.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the cluster does not answer, or names no cluster id (offsets
    /// could then not be told apart from another cluster's).
    pub async fn identity(&self) -> Result<LogIdentity, LogError> {
        let admin = self.admin()?;
        let cluster_id =
            tokio::task::spawn_blocking(move || admin.inner().fetch_cluster_id(METADATA_TIMEOUT))
                .await
                .map_err(|e| LogError::Broker(e.to_string()))?;
        match cluster_id {
            Some(id) if !id.is_empty() => Ok(LogIdentity::kafka(&id)),
            _ => Err(LogError::Broker(format!(
                "the cluster at {} did not tell its cluster id within {} s; check that the \
                 brokers are up",
                self.config.bootstrap_servers,
                METADATA_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Number of brokers in the cluster.
    ///
    /// # Errors
    /// [`LogError::Broker`] when metadata cannot be fetched.
    pub async fn broker_count(&self) -> Result<u32, LogError> {
        let admin = self.admin()?;
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map(|m| m.brokers().len() as u32)
        })
        .await
        .map_err(|e| LogError::Broker(e.to_string()))?
        .map_err(broker_error)
    }

    /// Creates a topic; `Ok(false)` when it already existed.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the broker refuses.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        retention_ms: i64,
    ) -> Result<bool, LogError> {
        let admin = self.admin()?;
        let retention = retention_ms.to_string();
        let topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(i32::from(replication_factor)),
        )
        .set("retention.ms", &retention);
        let results = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .map_err(broker_error)?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(true),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
            Some(Err((t, code))) => Err(LogError::Broker(format!(
                "creating topic {t} failed: {code}"
            ))),
            None => Err(LogError::Broker(format!("no result creating topic {name}"))),
        }
    }

    /// Sets `retention.ms` of an existing topic.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the broker refuses.
    pub async fn set_retention(&self, name: &str, retention_ms: i64) -> Result<(), LogError> {
        let admin = self.admin()?;
        let retention = retention_ms.to_string();
        let alter =
            AlterConfig::new(ResourceSpecifier::Topic(name)).set("retention.ms", &retention);
        let results = admin
            .alter_configs([&alter], &AdminOptions::new())
            .await
            .map_err(broker_error)?;
        for result in results {
            if let Err((_, code)) = result {
                return Err(LogError::Broker(format!(
                    "altering retention of {name} failed: {code}"
                )));
            }
        }
        Ok(())
    }

    /// Deletes records of `topic`'s `partition` below `offset`.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the broker refuses (not every broker supports DeleteRecords).
    pub async fn delete_records_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), LogError> {
        let admin = self.admin()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(broker_error)?;
        admin
            .delete_records(&tpl, &AdminOptions::new())
            .await
            .map_err(broker_error)?;
        Ok(())
    }
}

/// How long [`KafkaLog::enqueue`] waits for room in a full producer queue before it gives up.
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(30);

/// A record handed to the producer, whose acknowledgement is still to come.
pub struct PendingDelivery {
    topic: Cow<'static, str>,
    delivery: DeliveryFuture,
    /// Told when the answer says the producer is spent.
    producer: Arc<SharedProducer>,
}

impl std::fmt::Debug for PendingDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingDelivery")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl PendingDelivery {
    /// The broker's answer if it has come, without waiting: `None` while it is still to come.
    pub fn answer(&mut self) -> Option<Result<Delivery, LogError>> {
        let answered = futures::FutureExt::now_or_never(&mut self.delivery)?;
        Some(self.outcome(answered))
    }

    /// Waits for the broker's acknowledgement.
    ///
    /// # Errors
    /// [`LogError::Produce`] when the producer gave up on the record.
    pub async fn acknowledged(mut self) -> Result<Delivery, LogError> {
        let answered = (&mut self.delivery).await;
        self.outcome(answered)
    }

    fn outcome(
        &self,
        answered: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
    ) -> Result<Delivery, LogError> {
        match answered {
            Ok(Ok(d)) => Ok(Delivery {
                partition: d.partition,
                offset: d.offset,
            }),
            Ok(Err((e, _))) => {
                self.producer.delivery_failed(e.rdkafka_error_code());
                Err(LogError::Produce {
                    topic: self.topic.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => Err(LogError::Produce {
                topic: self.topic.to_string(),
                reason: "the producer was closed before the broker answered".into(),
            }),
        }
    }
}

/// A topic as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingTopic {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replicas of partition 0.
    pub replication_factor: i16,
    /// `retention.ms`, when the broker reports it.
    pub retention_ms: Option<i64>,
}

async fn watermarks<C: ConsumerContext + 'static>(
    consumer: &Arc<StreamConsumer<C>>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), LogError> {
    let consumer = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        consumer.fetch_watermarks(&topic, partition, METADATA_TIMEOUT)
    })
    .await
    .map_err(|e| LogError::Broker(e.to_string()))?
    .map_err(broker_error)
}

async fn close<C: ConsumerContext + 'static>(consumer: Arc<StreamConsumer<C>>) {
    // Dropping the last handle closes the consumer and leaves the group; that blocks, so do it on the
    // blocking pool.
    let _ = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    })
    .await;
}

/// The record `message` holds, in `topic`, its value as bytes.
fn to_record<M: Message>(message: &M, topic: Arc<str>) -> Record {
    // Most of the envelope's own headers repeat what the value says and nothing here reads them:
    // read, they would cost every consumer a dozen strings per record.
    let headers = headers_of(message, header::repeats_the_value);
    Record {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(|k| Arc::from(String::from_utf8_lossy(k))),
        value: RecordValue::Bytes(Bytes::copy_from_slice(
            message.payload().unwrap_or_default(),
        )),
        headers,
        timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
    }
}

/// The record `message` holds, its value already decoded into `envelope`: as the memory log
/// hands over a typed record, with no copy of the bytes, and neither a key nor headers the
/// envelope itself says.
fn to_typed_record<M: Message>(message: &M, topic: Arc<str>, envelope: Arc<Envelope>) -> Record {
    let key = message
        .key()
        .filter(|key| *key != envelope.key.as_bytes())
        .map(|k| Arc::from(String::from_utf8_lossy(k)));
    Record {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        key,
        headers: headers_of(message, header::said_by_the_envelope),
        value: RecordValue::Event(envelope),
        timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
    }
}

/// `message`'s headers but those `leave_out` names.
fn headers_of<M: Message>(message: &M, leave_out: fn(&str) -> bool) -> Vec<(String, String)> {
    message
        .headers()
        .map(|hs| {
            hs.iter()
                .filter(|h| !leave_out(h.key))
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `name`, shared with the one of `topics` it is rather than allocated for every record, else
/// allocated.
fn topic_name(name: &str, topics: &[Arc<str>]) -> Arc<str> {
    topics
        .iter()
        .find(|topic| ***topic == *name)
        .cloned()
        .unwrap_or_else(|| Arc::from(name))
}

/// What is at a checkpoint's last position in the log (see [`KafkaLog::event_id_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The record there, and its event id if it is an event; `Found(None)` when there is none.
    Found(Option<EventId>),
    /// Retention removed it: nothing can be told from it.
    Gone,
}

/// How long [`KafkaLog::event_id_at`] waits for the record it asked for.
const ANCHOR_WAIT: Duration = Duration::from_secs(3);

/// The most records one poll takes from what librdkafka has already fetched.
const MAX_BATCH: usize = 1024;

/// A consumer-group member on Kafka.
pub struct KafkaConsumer {
    consumer: Arc<GroupConsumer>,
    /// The topics subscribed to; each record read shares its topic's name from here.
    topics: Vec<Arc<str>>,
    /// This consumer, counted among the readers its topics' decodes are shared by.
    decodes: Registration,
    /// Revocations and assignments so far.
    rebalances: Arc<std::sync::atomic::AtomicU64>,
    /// Records taken by the last poll and not yet handed over (see [`KafkaConsumer::poll`]).
    fetched: VecDeque<Record>,
    /// An error met while taking a batch after its first record, told by the next poll.
    deferred_error: Option<KafkaError>,
}

impl KafkaConsumer {
    /// The next record, waiting up to `timeout`; with it, every record librdkafka has already
    /// fetched (up to [`MAX_BATCH`]) is taken at once, to be handed over by
    /// [`KafkaConsumer::next_buffered`] without waiting. Taking them one await at a time cost
    /// every record a registration with the consumer's wakers and a round through the runtime's
    /// select, and was most of a record's cost in the runtime.
    ///
    /// # Errors
    /// [`LogError::Broker`] on a consumer error.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Option<Record>, LogError> {
        if let Some(record) = self.fetched.pop_front() {
            return Ok(Some(record));
        }
        if let Some(e) = self.deferred_error.take() {
            return Err(broker_error(e));
        }
        let mut stream = self.consumer.stream();
        let first = match tokio::time::timeout(timeout, stream.next()).await {
            Err(_) | Ok(None) => return Ok(None),
            Ok(Some(Ok(message))) => self.take(&message),
            Ok(Some(Err(e))) => return Err(broker_error(e)),
        };
        while self.fetched.len() < MAX_BATCH {
            match futures::FutureExt::now_or_never(stream.next()) {
                Some(Some(Ok(message))) => {
                    let record = self.take(&message);
                    self.fetched.push_back(record)
                }
                Some(Some(Err(e))) => {
                    self.deferred_error = Some(e);
                    break;
                }
                Some(None) | None => break,
            }
        }
        Ok(Some(first))
    }

    /// The record `message` holds, decoded here, once per process however many of its
    /// consumers read it (see [`crate::shared_decode`]), so that the bytes are not copied out of
    /// the client for every reader. Bytes that are not an envelope are handed over as they are,
    /// for the runtime to dead-letter with the reason its own decoding gives.
    fn take<M: Message>(&self, message: &M) -> Record {
        let topic = topic_name(message.topic(), &self.topics);
        let payload = message.payload().unwrap_or_default();
        match self
            .decodes
            .shared()
            .decode(&topic, message.partition(), message.offset(), payload)
        {
            Some(envelope) => to_typed_record(message, topic, envelope),
            None => to_record(message, topic),
        }
    }

    /// The next record the last poll took, without waiting; `None` when they are all handed over.
    pub fn next_buffered(&mut self) -> Option<Record> {
        self.fetched.pop_front()
    }

    /// The records the last poll took and has not handed over yet, in their order; a record put
    /// in front is handed over first.
    pub fn buffered(&mut self) -> &mut VecDeque<Record> {
        &mut self.fetched
    }

    /// Commits `next_offset` for a partition. Asynchronous on the wire: the runtime calls it only
    /// after effects are durable, and [`KafkaConsumer::close`] commits synchronously at the end.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the commit cannot be queued.
    pub fn commit(&mut self, offsets: &[CommitOffset]) -> Result<(), LogError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = offset_list(offsets)?;
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(broker_error)
    }

    /// Commits `offsets` synchronously, then leaves the group.
    ///
    /// # Errors
    /// [`LogError::Broker`] when the final commit fails.
    pub async fn close(self, offsets: &[CommitOffset]) -> Result<(), LogError> {
        let result = if offsets.is_empty() {
            Ok(())
        } else {
            let tpl = offset_list(offsets)?;
            let consumer = self.consumer.clone();
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                .await
                .map_err(|e| LogError::Broker(e.to_string()))?
                .map_err(broker_error)
        };
        close(self.consumer).await;
        result
    }

    /// Revocations and assignments this member has been through (the first assignment counts).
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lag per assigned partition.
    ///
    /// # Errors
    /// [`LogError::Broker`] when offsets or watermarks cannot be fetched.
    pub async fn lag(&self) -> Result<Vec<PartitionLag>, LogError> {
        self.lag_probe().lag().await
    }

    /// A handle that measures this consumer's lag from another task: the broker round trips it
    /// needs must never hold up consumption.
    pub fn lag_probe(&self) -> KafkaLagProbe {
        KafkaLagProbe {
            consumer: self.consumer.clone(),
            topics: self.topics.clone(),
        }
    }
}

/// Measures a Kafka consumer's lag (see [`KafkaConsumer::lag_probe`]).
#[derive(Clone)]
pub struct KafkaLagProbe {
    consumer: Arc<GroupConsumer>,
    topics: Vec<Arc<str>>,
}

impl KafkaLagProbe {
    /// Lag per assigned partition (high watermark − committed offset).
    ///
    /// # Errors
    /// [`LogError::Broker`] when offsets or watermarks cannot be fetched.
    pub async fn lag(&self) -> Result<Vec<PartitionLag>, LogError> {
        let consumer = self.consumer.clone();
        let topics = self.topics.clone();
        tokio::task::spawn_blocking(move || {
            let assignment = consumer.assignment().map_err(broker_error)?;
            let partitions: Vec<(String, i32)> = assignment
                .elements()
                .iter()
                .filter(|e| topics.iter().any(|t| **t == *e.topic()))
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            // The committed offsets and every high watermark are asked for at once: asked one
            // after the other, each watermark was read a round trip later than the offsets, and
            // under load the lag grew by what the feed wrote meanwhile, several round trips' worth.
            let (committed, watermarks) = std::thread::scope(|scope| {
                let committed =
                    scope.spawn(|| consumer.committed_offsets(assignment, METADATA_TIMEOUT));
                let watermarks: Vec<_> = partitions
                    .iter()
                    .map(|(topic, partition)| {
                        let consumer = &consumer;
                        scope.spawn(move || {
                            consumer.fetch_watermarks(topic, *partition, METADATA_TIMEOUT)
                        })
                    })
                    .collect();
                let watermarks: Vec<_> = watermarks.into_iter().map(|w| w.join()).collect();
                (committed.join(), watermarks)
            });
            let lost = |_| LogError::Broker("a lag query's thread panicked".into());
            let committed = committed.map_err(lost)?.map_err(broker_error)?;
            let mut out = Vec::new();
            for ((topic, partition), watermarks) in partitions.into_iter().zip(watermarks) {
                let (low, high) = watermarks.map_err(lost)?.map_err(broker_error)?;
                let committed = match committed
                    .find_partition(&topic, partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                };
                out.push(PartitionLag {
                    topic,
                    partition,
                    high_watermark: high,
                    committed,
                    lag: (high - committed).max(0),
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| LogError::Broker(e.to_string()))?
    }
}

fn offset_list(offsets: &[CommitOffset]) -> Result<TopicPartitionList, LogError> {
    let mut tpl = TopicPartitionList::new();
    for o in offsets {
        tpl.add_partition_offset(&o.topic, o.partition, Offset::Offset(o.next_offset))
            .map_err(broker_error)?;
    }
    Ok(tpl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_core::{Alert, AlertKind, AlertSeverity, EventBroker, Payload, Timestamp};
    use rdkafka::message::OwnedMessage;

    fn envelope() -> Envelope {
        let at = Timestamp::from_unix_micros(0).unwrap();
        let alert = Payload::Alert(Alert {
            kind: AlertKind::CheckpointFailing,
            severity: AlertSeverity::Warning,
            service: "test".into(),
            message: "a test".into(),
            since: at,
        });
        Envelope::root(alert, "408065".into(), EventBroker::Shared, "test", at)
    }

    /// `envelope` as a producer here writes it, under `key`, with `extra` headers after its own.
    fn message(envelope: &Envelope, key: &str, extra: &[(&str, &str)]) -> OwnedMessage {
        let headers = crate::record::fold_envelope_headers(
            envelope,
            OwnedHeaders::new(),
            |all, name, value| {
                all.insert(Header {
                    key: name,
                    value: Some(value),
                })
            },
        );
        let headers = extra.iter().fold(headers, |all, (name, value)| {
            all.insert(Header {
                key: name,
                value: Some(*value),
            })
        });
        OwnedMessage::new(
            Some(envelope.to_json()),
            Some(key.as_bytes().to_vec()),
            "system.alerts".into(),
            rdkafka::Timestamp::CreateTime(1_000),
            2,
            41,
            Some(headers),
        )
    }

    #[test]
    fn a_typed_record_keeps_only_what_its_envelope_does_not_say() {
        let envelope = Arc::new(envelope());
        let replay = (
            crate::dlq::REPLAY_GROUP_HEADER,
            "alpha-panda.risk_manager.paper",
        );
        let topics: Vec<Arc<str>> = vec![Arc::from("system.alerts")];
        let read = message(&envelope, "408065", &[replay]);
        let typed = to_typed_record(&read, topics[0].clone(), envelope.clone());
        assert_eq!(
            typed.headers,
            [(replay.0.to_string(), replay.1.to_string())]
        );
        // The key is the envelope's own: not kept, and still read as the record's.
        assert_eq!(typed.key, None);
        assert_eq!(typed.key(), Some("408065"));
        assert_eq!(typed.event_id(), Some(envelope.id));
        assert_eq!(
            (typed.partition, typed.offset, typed.timestamp_ms),
            (2, 41, 1_000)
        );
        assert!(Arc::ptr_eq(&typed.topic, &topics[0]));

        // A key other than the envelope's is kept as written.
        let rekeyed = to_typed_record(
            &message(&envelope, "other", &[]),
            topics[0].clone(),
            envelope,
        );
        assert_eq!(rekeyed.key(), Some("other"));
        assert!(rekeyed.headers.is_empty());

        // Bytes keep the event id, which tells their event without decoding them.
        let bytes = to_record(&read, topics[0].clone());
        assert!(matches!(bytes.value, RecordValue::Bytes(_)));
        assert_eq!(bytes.event_id(), typed.event_id());
        assert_eq!(bytes.headers.len(), 2);
    }
}
