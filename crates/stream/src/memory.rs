//! The in-process log (`log.url = "memory://"`): partitioned like Kafka (murmur2 of the key), consumer
//! groups with their own committed offsets, and typed events passed by `Arc` with no serialization.
//!
//! It is the embedded default and the test backend. One consumer per group per process owns every
//! partition of its topics, so no rebalancing is needed. Each partition keeps at most
//! `max_records_per_partition` records and `max_bytes_per_partition` bytes, and none older than
//! `max_age`, oldest dropped first, so a long run stays bounded — but never a record a consumer
//! group of the topic has not committed: a producer that sends through the log waits for room
//! instead (backpressure), so no consumer ever jumps over records.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::conflation::{Conflation, LastValue, Marks};
use crate::identity::LogIdentity;
use crate::kafka::Anchor;
use crate::record::{
    key_of, partition_for_key, Delivery, OutgoingRecord, PartitionLag, Record, RecordValue,
};

/// Records handed to a consumer per partition lock.
const FETCH_BATCH: usize = 512;

/// Settings of the memory log.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLogConfig {
    /// Partitions of a topic created implicitly by a first produce or subscribe.
    pub default_partitions: i32,
    /// Records kept per partition before the oldest are dropped.
    pub max_records_per_partition: usize,
    /// Bytes (as [`RecordValue::retained_bytes`] counts them) kept per partition before the oldest
    /// records are dropped.
    pub max_bytes_per_partition: usize,
    /// Records older than this are dropped (once every group has committed them), whatever room
    /// is left; `None` keeps them while there is room.
    pub max_age: Option<Duration>,
}

impl Default for MemoryLogConfig {
    fn default() -> Self {
        Self {
            default_partitions: 6,
            max_records_per_partition: 1_000_000,
            // Counted bytes are the records' own estimate; the process holds about 2.5 times as
            // much for them (allocations, their headers, the allocator's arenas). 6 MiB per
            // partition keeps `bench pipeline --ticks 5000000` under 500 MB resident; 64 MiB,
            // the earlier default, took 2.2 GB.
            max_bytes_per_partition: 6 * 1024 * 1024,
            max_age: None,
        }
    }
}

struct Stored {
    key: Option<Arc<str>>,
    value: RecordValue,
    headers: Vec<(String, String)>,
    timestamp_ms: i64,
    /// Worked out once on append, so that conflating consumers need not read the envelope.
    last_value: Option<LastValue>,
    /// What the record costs the retention, counted once on append.
    bytes: usize,
}

impl Stored {
    fn new(
        key: Option<Arc<str>>,
        value: RecordValue,
        headers: Vec<(String, String)>,
        timestamp_ms: i64,
    ) -> Self {
        // A replayed record is meant to be handled by the group it names: a later record of its
        // key must not supersede it.
        let replayed = crate::dlq::replay_group(&headers).is_some();
        let last_value = match &value {
            RecordValue::Event(envelope) if !replayed => {
                LastValue::of(envelope.event_type(), key_of(key.as_ref(), &value))
            }
            RecordValue::Event(_) | RecordValue::Bytes(_) => None,
        };
        let bytes = std::mem::size_of::<Stored>()
            + key.as_ref().map_or(0, |k| k.len())
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + value.retained_bytes();
        Self {
            key,
            value,
            headers,
            timestamp_ms,
            last_value,
            bytes,
        }
    }
}

#[derive(Default)]
struct PartitionLog {
    start_offset: i64,
    records: VecDeque<Stored>,
    /// What the records hold, as [`Stored::bytes`] counts it.
    bytes: usize,
    /// The lowest offset a consumer group of the topic has yet to commit past (`None` while no
    /// group reads the topic): records below it may be dropped, none at or above it.
    floor: Option<i64>,
}

impl PartitionLog {
    fn end_offset(&self) -> i64 {
        self.start_offset + self.records.len() as i64
    }

    /// Whether the oldest record may go: every reading group has committed past it.
    fn oldest_droppable(&self) -> bool {
        !self.records.is_empty() && self.floor.is_none_or(|floor| self.start_offset < floor)
    }

    /// Whether the partition holds as much as the retention allows, or more.
    fn at_capacity(&self, config: &MemoryLogConfig) -> bool {
        self.records.len() >= config.max_records_per_partition
            || self.bytes >= config.max_bytes_per_partition
    }

    fn over_capacity(&self, config: &MemoryLogConfig) -> bool {
        self.records.len() > config.max_records_per_partition
            || self.bytes > config.max_bytes_per_partition
    }

    fn pop_oldest(&mut self) {
        if let Some(stored) = self.records.pop_front() {
            self.bytes -= stored.bytes;
            self.start_offset += 1;
        }
    }

    /// Drops the oldest records while the partition is over its retention (by records, bytes or
    /// age) and every group has read them; `true` when it stays over because a group has not.
    fn enforce_retention(&mut self, config: &MemoryLogConfig, now_ms: i64) -> bool {
        let expired_before = config
            .max_age
            .map(|age| now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)));
        loop {
            let expired = expired_before.is_some_and(|before| {
                self.records
                    .front()
                    .is_some_and(|oldest| oldest.timestamp_ms < before)
            });
            let over = self.over_capacity(config);
            if !over && !expired {
                return false;
            }
            if !self.oldest_droppable() {
                return over;
            }
            self.pop_oldest();
        }
    }
}

struct Topic {
    name: Arc<str>,
    partitions: Vec<Mutex<PartitionLog>>,
    round_robin: AtomicU32,
    /// The consumer groups that read this topic: retention never drops what one of them has not
    /// committed.
    groups: Mutex<Vec<String>>,
    /// Woken when a group commits: a producer held back by a full partition looks again.
    space: Notify,
    /// Set once a partition holds more than the retention because a group lags: only then does a
    /// producer look closer (the common case costs one load per record).
    full: std::sync::atomic::AtomicBool,
    /// The wake-up of every consumer reading this topic: an append wakes those, not every waiting
    /// consumer of the log.
    readers: Mutex<Vec<Weak<Notify>>>,
}

impl Topic {
    /// Wakes the consumers of this topic (a consumer busy elsewhere keeps one permit, so its next
    /// wait returns at once and it looks again); forgets consumers that are gone.
    fn wake_readers(&self) {
        self.readers.lock().retain(|reader| match reader.upgrade() {
            Some(wake) => {
                wake.notify_one();
                true
            }
            None => false,
        });
    }
}

type GroupOffsets = HashMap<(String, Arc<str>, i32), i64>;

struct Inner {
    config: MemoryLogConfig,
    /// Told apart from every other memory log, past and future (see [`crate::identity`]).
    incarnation: uuid::Uuid,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    committed: Mutex<GroupOffsets>,
}

/// The in-process log. Cloning shares the same log.
#[derive(Clone)]
pub struct MemoryLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLog").finish_non_exhaustive()
    }
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self::new(MemoryLogConfig::default())
    }
}

impl MemoryLog {
    /// An empty log.
    pub fn new(config: MemoryLogConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                incarnation: uuid::Uuid::now_v7(),
                topics: RwLock::new(HashMap::new()),
                committed: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This log's identity: it starts empty, so no other log's offsets apply to it.
    pub fn identity(&self) -> LogIdentity {
        LogIdentity::memory(self.inner.incarnation)
    }

    /// Creates `name` with `partitions` unless it exists; returns whether it was created.
    pub fn create_topic(&self, name: &str, partitions: i32) -> bool {
        let mut topics = self.inner.topics.write();
        if topics.contains_key(name) {
            return false;
        }
        topics.insert(name.to_string(), Arc::new(new_topic(name, partitions)));
        true
    }

    /// Existing topics and their partition counts.
    pub fn topics(&self) -> Vec<(String, i32)> {
        let topics = self.inner.topics.read();
        let mut out: Vec<(String, i32)> = topics
            .values()
            .map(|t| (t.name.to_string(), t.partitions.len() as i32))
            .collect();
        out.sort();
        out
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.inner.topics.read().get(name) {
            return t.clone();
        }
        let mut topics = self.inner.topics.write();
        topics
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(new_topic(name, self.inner.config.default_partitions)))
            .clone()
    }

    /// Appends one record.
    pub fn append(&self, record: OutgoingRecord) -> Delivery {
        let topic = self.topic(&record.topic);
        let delivery = self.push(&topic, record, chrono::Utc::now().timestamp_millis());
        topic.wake_readers();
        delivery
    }

    /// Appends records in order, as one batch: one append time and one wake-up of each topic's
    /// consumers for the whole batch (each record is still in its partition, in order, before any
    /// consumer is woken).
    pub fn append_all(&self, records: Vec<OutgoingRecord>) -> Vec<Delivery> {
        if records.is_empty() {
            return Vec::new();
        }
        let timestamp_ms = chrono::Utc::now().timestamp_millis();
        let mut deliveries = Vec::with_capacity(records.len());
        let mut appended_to: Vec<Arc<Topic>> = Vec::new();
        for record in records {
            let current = match appended_to.last() {
                Some(t) if *t.name == *record.topic => t.clone(),
                _ => self.topic(&record.topic),
            };
            deliveries.push(self.push(&current, record, timestamp_ms));
            if !appended_to.iter().any(|t| Arc::ptr_eq(t, &current)) {
                appended_to.push(current);
            }
        }
        for topic in &appended_to {
            topic.wake_readers();
        }
        deliveries
    }

    /// Appends one record, waiting while its partition is full of records some consumer group
    /// has not committed yet (backpressure: retention never drops them).
    pub async fn append_when_room(&self, record: OutgoingRecord) -> Delivery {
        let topic = self.topic(&record.topic);
        self.wait_for_room(&topic, &record).await;
        self.append(record)
    }

    /// As [`MemoryLog::append_all`], waiting for room in each record's partition first.
    pub async fn append_all_when_room(&self, records: Vec<OutgoingRecord>) -> Vec<Delivery> {
        let mut current: Option<Arc<Topic>> = None;
        for record in &records {
            let topic = match current.take() {
                Some(t) if *t.name == *record.topic => t,
                _ => self.topic(&record.topic),
            };
            self.wait_for_room(&topic, record).await;
            current = Some(topic);
        }
        self.append_all(records)
    }

    async fn wait_for_room(&self, topic: &Topic, record: &OutgoingRecord) {
        if !topic.full.load(Ordering::Acquire) {
            return;
        }
        let partition = self.partition_of(topic, record);
        let config = &self.inner.config;
        let mut warned = false;
        loop {
            let space = topic.space.notified();
            {
                let log = topic.partitions[partition as usize].lock();
                if !log.at_capacity(config) || log.oldest_droppable() {
                    return;
                }
            }
            if !warned {
                tracing::warn!(
                    topic = %topic.name,
                    partition,
                    retained_records = config.max_records_per_partition,
                    retained_bytes = config.max_bytes_per_partition,
                    "a consumer group has not committed what the memory log retains; holding the \
                     producer back"
                );
                warned = true;
            }
            // A commit wakes us; the timeout only guards against a missed wake-up.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), space).await;
        }
    }

    fn partition_of(&self, topic: &Topic, record: &OutgoingRecord) -> i32 {
        match record.key() {
            Some(key) => partition_for_key(key.as_bytes(), topic.partitions.len() as i32),
            // Round-robin records land wherever the counter says; any partition will do to wait.
            None => 0,
        }
    }

    /// Puts `record` at the end of its partition of `topic` (the caller wakes the consumers).
    fn push(&self, topic: &Topic, record: OutgoingRecord, timestamp_ms: i64) -> Delivery {
        let partition = match record.key() {
            Some(key) => partition_for_key(key.as_bytes(), topic.partitions.len() as i32),
            None => {
                (topic.round_robin.fetch_add(1, Ordering::Relaxed) % topic.partitions.len() as u32)
                    as i32
            }
        };
        // A typed record's key is its envelope's: kept once, there.
        let key = match (record.key, &record.value) {
            (Some(key), RecordValue::Event(envelope)) if *key == *envelope.key => None,
            (key, _) => key,
        };
        let stored = Stored::new(key, record.value, record.headers, timestamp_ms);
        let mut log = topic.partitions[partition as usize].lock();
        let offset = log.end_offset();
        log.bytes += stored.bytes;
        log.records.push_back(stored);
        // Past the retention, the oldest records go, unless a group still has to read them: then
        // the partition grows (a producer that waits for room, as the log's own send does, never
        // lets it).
        if log.enforce_retention(&self.inner.config, timestamp_ms) {
            topic.full.store(true, Ordering::Release);
        }
        Delivery { partition, offset }
    }

    /// A consumer in `group` over `topics`, starting at the group's committed offsets (or the start).
    pub fn consumer(&self, group: &str, topics: &[String]) -> MemoryConsumer {
        let committed = self.inner.committed.lock();
        let wake = Arc::new(Notify::new());
        let mut assignments = Vec::new();
        for name in topics {
            let topic = self.topic(name);
            topic.readers.lock().push(Arc::downgrade(&wake));
            {
                let mut groups = topic.groups.lock();
                if !groups.iter().any(|g| g == group) {
                    groups.push(group.to_string());
                }
            }
            for partition in 0..topic.partitions.len() as i32 {
                let mut log = topic.partitions[partition as usize].lock();
                let start = log.start_offset;
                let position = committed
                    .get(&(group.to_string(), topic.name.clone(), partition))
                    .copied()
                    .unwrap_or(start)
                    .max(start);
                // A new reader holds retention back from where it starts.
                log.floor = Some(log.floor.map_or(position, |floor| floor.min(position)));
                drop(log);
                assignments.push(Assignment {
                    // A name of this consumer's own: every record it hands out clones it, and a
                    // reference count shared with the other consumers would bounce between cores.
                    name: Arc::from(&*topic.name),
                    topic: topic.clone(),
                    partition,
                    position,
                });
            }
        }
        MemoryConsumer {
            log: self.clone(),
            group: group.to_string(),
            assignments,
            next_assignment: 0,
            buffer: VecDeque::new(),
            wake,
            marks: Marks::default(),
            conflated: 0,
        }
    }

    /// Every retained record of `topic`, partition by partition, in offset order.
    pub fn read_all(&self, topic: &str) -> Vec<Record> {
        let Some(topic) = self.inner.topics.read().get(topic).cloned() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (p, part) in topic.partitions.iter().enumerate() {
            let log = part.lock();
            for (i, stored) in log.records.iter().enumerate() {
                out.push(to_record(
                    &topic.name,
                    p as i32,
                    log.start_offset + i as i64,
                    stored,
                ));
            }
        }
        out
    }

    /// What is at `offset` of `topic`'s `partition`.
    pub fn event_id_at(&self, topic: &str, partition: i32, offset: i64) -> Anchor {
        let Some(topic) = self.inner.topics.read().get(topic).cloned() else {
            return Anchor::Found(None);
        };
        let Some(part) = usize::try_from(partition)
            .ok()
            .and_then(|p| topic.partitions.get(p))
        else {
            return Anchor::Found(None);
        };
        let log = part.lock();
        if offset < log.start_offset {
            return Anchor::Gone;
        }
        let stored = usize::try_from(offset - log.start_offset)
            .ok()
            .and_then(|i| log.records.get(i));
        Anchor::Found(stored.and_then(|stored| {
            match &stored.value {
                RecordValue::Event(envelope) => Some(envelope.id),
                RecordValue::Bytes(_) => stored
                    .headers
                    .iter()
                    .find(|(k, _)| k == crate::record::header::EVENT_ID)
                    .and_then(|(_, v)| v.parse().ok()),
            }
        }))
    }

    /// Drops records of `topic`'s `partition` below `offset`.
    pub fn truncate_before(&self, topic: &str, partition: i32, offset: i64) {
        let Some(topic) = self.inner.topics.read().get(topic).cloned() else {
            return;
        };
        if let Some(part) = topic.partitions.get(partition as usize) {
            let mut log = part.lock();
            while log.start_offset < offset && !log.records.is_empty() {
                log.pop_oldest();
            }
        }
    }

    /// `(start, end)` offsets of a partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let topic = self.inner.topics.read().get(topic).cloned()?;
        let log = topic.partitions.get(partition as usize)?.lock();
        Some((log.start_offset, log.end_offset()))
    }

    fn commit(&self, group: &str, topic: &Arc<str>, partition: i32, next_offset: i64) {
        let mut committed = self.inner.committed.lock();
        committed.insert((group.to_string(), topic.clone(), partition), next_offset);
        let Some(t) = self.inner.topics.read().get(&**topic).cloned() else {
            return;
        };
        // The partition's floor: the least any reading group has committed.
        let floor = t
            .groups
            .lock()
            .iter()
            .map(|g| {
                committed
                    .get(&(g.clone(), topic.clone(), partition))
                    .copied()
                    .unwrap_or(0)
            })
            .min();
        drop(committed);
        if let Some(log) = usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p))
        {
            log.lock().floor = floor;
        }
        if t.full.swap(false, Ordering::AcqRel) {
            // A producer waiting for room checks its partition again (and sets this anew if it
            // is still full).
            t.space.notify_waiters();
        }
    }

    fn committed(&self, group: &str, topic: &Arc<str>, partition: i32) -> Option<i64> {
        self.inner
            .committed
            .lock()
            .get(&(group.to_string(), topic.clone(), partition))
            .copied()
    }
}

fn new_topic(name: &str, partitions: i32) -> Topic {
    Topic {
        name: Arc::from(name),
        partitions: (0..partitions.max(1))
            .map(|_| Mutex::new(PartitionLog::default()))
            .collect(),
        round_robin: AtomicU32::new(0),
        groups: Mutex::new(Vec::new()),
        space: Notify::new(),
        full: std::sync::atomic::AtomicBool::new(false),
        readers: Mutex::new(Vec::new()),
    }
}

fn to_record(topic: &Arc<str>, partition: i32, offset: i64, stored: &Stored) -> Record {
    Record {
        topic: topic.clone(),
        partition,
        offset,
        key: stored.key.clone(),
        value: stored.value.clone(),
        headers: stored.headers.clone(),
        timestamp_ms: stored.timestamp_ms,
    }
}

struct Assignment {
    name: Arc<str>,
    topic: Arc<Topic>,
    partition: i32,
    position: i64,
}

/// A consumer of the memory log.
pub struct MemoryConsumer {
    log: MemoryLog,
    group: String,
    assignments: Vec<Assignment>,
    next_assignment: usize,
    buffer: VecDeque<Record>,
    /// Notified by appends to this consumer's topics.
    wake: Arc<Notify>,
    /// Which records of the batch being fetched are superseded (kept to reuse its allocations).
    marks: Marks,
    /// Records left out as superseded, not yet taken.
    conflated: u64,
}

impl MemoryConsumer {
    /// The next record, waiting up to `timeout`; `None` when nothing arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Option<Record> {
        self.poll_conflating(timeout, Conflation::none()).await
    }

    /// As [`MemoryConsumer::poll`], leaving out of the fetched batch every record that
    /// `conflation` lets a later one of the same key supersede (counted for
    /// [`MemoryConsumer::take_conflated`]).
    pub async fn poll_conflating(
        &mut self,
        timeout: Duration,
        conflation: Conflation,
    ) -> Option<Record> {
        if let Some(r) = self.buffer.pop_front() {
            return Some(r);
        }
        if self.assignments.is_empty() {
            tokio::time::sleep(timeout).await;
            return None;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let wake = self.wake.clone();
        loop {
            // Register interest before looking, so an append between the look and the wait wakes us.
            let appended = wake.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            if self.fetch(conflation) {
                return self.buffer.pop_front();
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return None;
            }
        }
    }

    /// The next record already fetched, if any, without waiting or looking at the log: lets the
    /// runtime work through a fetched batch without a poll per record.
    pub fn next_buffered(&mut self) -> Option<Record> {
        self.buffer.pop_front()
    }

    /// How many records fetches left out as superseded since the last call.
    pub fn take_conflated(&mut self) -> u64 {
        std::mem::take(&mut self.conflated)
    }

    /// Moves up to one batch from the next partition with data into the buffer, round robin so no
    /// partition starves; superseded records under `conflation` are counted, not copied.
    fn fetch(&mut self, conflation: Conflation) -> bool {
        let count = self.assignments.len();
        for step in 0..count {
            let index = (self.next_assignment + step) % count;
            let assignment = &mut self.assignments[index];
            let log = assignment.topic.partitions[assignment.partition as usize].lock();
            if assignment.position < log.start_offset {
                assignment.position = log.start_offset;
            }
            let from = (assignment.position - log.start_offset) as usize;
            if from >= log.records.len() {
                continue;
            }
            let until = log.records.len().min(from + FETCH_BATCH);
            let batch = log.records.range(from..until);
            conflation.mark_superseded(
                batch.clone().map(|stored| stored.last_value),
                &mut self.marks,
            );
            self.buffer.reserve(until - from);
            for ((stored, &superseded), offset) in batch
                .zip(self.marks.superseded())
                .zip(assignment.position..)
            {
                if superseded {
                    self.conflated += 1;
                } else {
                    self.buffer.push_back(to_record(
                        &assignment.name,
                        assignment.partition,
                        offset,
                        stored,
                    ));
                }
            }
            assignment.position += (until - from) as i64;
            self.next_assignment = (index + 1) % count;
            return true;
        }
        false
    }

    /// Commits `next_offset` (the offset after the last processed record) for a partition.
    pub fn commit(&mut self, topic: &Arc<str>, partition: i32, next_offset: i64) {
        self.log.commit(&self.group, topic, partition, next_offset);
    }

    /// Lag of every assigned partition.
    pub fn lag(&self) -> Vec<PartitionLag> {
        self.assignments
            .iter()
            .map(|a| {
                let (start, end) = {
                    let log = a.topic.partitions[a.partition as usize].lock();
                    (log.start_offset, log.end_offset())
                };
                let committed = self
                    .log
                    .committed(&self.group, &a.topic.name, a.partition)
                    .unwrap_or(start)
                    .max(start);
                PartitionLag {
                    topic: a.topic.name.to_string(),
                    partition: a.partition,
                    high_watermark: end,
                    committed,
                    lag: (end - committed).max(0),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn raw(topic: &str, key: &str, value: &'static str) -> OutgoingRecord {
        OutgoingRecord {
            topic: topic.to_string().into(),
            key: Some(key.into()),
            value: RecordValue::Bytes(Bytes::from_static(value.as_bytes())),
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn same_key_same_partition_and_groups_are_independent() {
        let log = MemoryLog::default();
        log.create_topic("t", 4);
        let a = log.append(raw("t", "k1", "1"));
        let b = log.append(raw("t", "k1", "2"));
        assert_eq!(a.partition, b.partition);
        assert_eq!(b.offset, a.offset + 1);

        let mut g1 = log.consumer("g1", &["t".into()]);
        let first = g1.poll(Duration::from_millis(10)).await.unwrap();
        assert_eq!(first.offset, 0);
        g1.commit(&first.topic, first.partition, first.offset + 1);

        // A new consumer of g1 resumes after the commit; g2 starts from the beginning.
        let mut g1_again = log.consumer("g1", &["t".into()]);
        assert_eq!(
            g1_again
                .poll(Duration::from_millis(10))
                .await
                .unwrap()
                .offset,
            1
        );
        let mut g2 = log.consumer("g2", &["t".into()]);
        assert_eq!(g2.poll(Duration::from_millis(10)).await.unwrap().offset, 0);
        let lag = g1_again.lag();
        assert_eq!(lag.iter().map(|l| l.lag).sum::<i64>(), 1);
    }

    #[tokio::test]
    async fn poll_wakes_on_append_and_times_out_when_idle() {
        let log = MemoryLog::default();
        let mut c = log.consumer("g", &["t".into()]);
        assert!(c.poll(Duration::from_millis(5)).await.is_none());
        let producer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            producer.append(raw("t", "k", "v"));
        });
        assert!(c.poll(Duration::from_secs(10)).await.is_some());
    }

    #[tokio::test]
    async fn an_append_wakes_the_consumers_of_its_topic_and_forgets_dropped_ones() {
        let log = MemoryLog::default();
        let mut both = log.consumer("g", &["a".into(), "b".into()]);
        let only_a = log.consumer("h", &["a".into()]);
        let producer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            producer.append(raw("b", "k", "v"));
        });
        let woken = both.poll(Duration::from_secs(10)).await.unwrap();
        assert_eq!(&*woken.topic, "b");

        let readers = |name: &str| log.topic(name).readers.lock().len();
        assert_eq!((readers("a"), readers("b")), (2, 1));
        drop(only_a);
        log.append(raw("a", "k", "v"));
        assert_eq!(readers("a"), 1, "the dropped consumer is forgotten");
    }

    #[tokio::test]
    async fn a_batch_lands_in_order_and_is_read_back_from_the_buffer() {
        let log = MemoryLog::new(MemoryLogConfig {
            default_partitions: 1,
            max_records_per_partition: 100,
            ..MemoryLogConfig::default()
        });
        let deliveries = log.append_all(vec![
            raw("t", "k", "1"),
            raw("t", "k", "2"),
            raw("u", "k", "3"),
        ]);
        let offsets: Vec<i64> = deliveries.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, vec![0, 1, 0]);
        let mut c = log.consumer("g", &["t".into()]);
        let first = c.poll(Duration::from_millis(5)).await.unwrap();
        assert_eq!((first.offset, first.key.as_deref()), (0, Some("k")));
        assert_eq!(c.next_buffered().map(|r| r.offset), Some(1));
        assert!(c.next_buffered().is_none());
    }

    #[tokio::test]
    async fn retention_drops_oldest() {
        let log = MemoryLog::new(MemoryLogConfig {
            default_partitions: 1,
            max_records_per_partition: 2,
            ..MemoryLogConfig::default()
        });
        for _ in 0..5 {
            log.append(raw("t", "k", "v"));
        }
        assert_eq!(log.watermarks("t", 0), Some((3, 5)));
        let mut c = log.consumer("g", &["t".into()]);
        assert_eq!(c.poll(Duration::from_millis(5)).await.unwrap().offset, 3);
    }

    /// Retention never drops what a reading group has not committed: the producer is held back
    /// until the group commits, and the group reads every record, in order, without a gap.
    #[tokio::test]
    async fn retention_holds_the_producer_back_instead_of_dropping_unread_records() {
        let log = MemoryLog::new(MemoryLogConfig {
            default_partitions: 1,
            max_records_per_partition: 4,
            ..MemoryLogConfig::default()
        });
        let mut c = log.consumer("g", &["t".into()]);
        for n in 0..5 {
            log.append_when_room(raw("t", "k", ["a", "b", "c", "d", "e", "f", "g", "h"][n]))
                .await;
        }
        // Over the retention by one (the group has not committed) and nothing dropped.
        assert_eq!(log.watermarks("t", 0), Some((0, 5)));
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for n in 5..8 {
                    log.append_when_room(raw(
                        "t",
                        "k",
                        ["a", "b", "c", "d", "e", "f", "g", "h"][n],
                    ))
                    .await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished(), "the producer was not held back");
        let mut read = Vec::new();
        while let Some(r) = c.poll(Duration::from_millis(5)).await {
            read.push(r.offset);
            if read.len() == 5 {
                break;
            }
        }
        let topic: Arc<str> = Arc::from("t");
        c.commit(&topic, 0, 5);
        tokio::time::timeout(Duration::from_secs(2), writer)
            .await
            .expect("the producer went on once the group committed")
            .unwrap();
        while let Some(r) = c.poll(Duration::from_millis(5)).await {
            read.push(r.offset);
        }
        assert_eq!(read, (0..8).collect::<Vec<i64>>(), "a record was skipped");
        let (start, end) = log.watermarks("t", 0).unwrap();
        assert_eq!(end, 8);
        assert!(end - start <= 5, "retention kept {}", end - start);
    }

    /// Retention by bytes: a partition holds at most the bytes allowed once its records are read,
    /// and holds the producer back rather than drop what a group has not read.
    #[tokio::test]
    async fn retention_by_bytes_drops_oldest_and_holds_back_on_unread() {
        let one = Stored::new(
            None,
            RecordValue::Bytes(Bytes::from(vec![b'x'; 1000])),
            Vec::new(),
            0,
        )
        .bytes;
        let config = MemoryLogConfig {
            default_partitions: 1,
            max_bytes_per_partition: 3 * one,
            ..MemoryLogConfig::default()
        };
        let log = MemoryLog::new(config);
        let big = || OutgoingRecord {
            topic: "t".into(),
            key: None,
            value: RecordValue::Bytes(Bytes::from(vec![b'x'; 1000])),
            headers: vec![],
        };
        for _ in 0..10 {
            log.append(big());
        }
        assert_eq!(log.watermarks("t", 0), Some((7, 10)));

        let held = MemoryLog::new(config);
        let mut c = held.consumer("g", &["t".into()]);
        // Over the retention by one record (the group has not committed), and nothing dropped.
        for _ in 0..4 {
            held.append_when_room(big()).await;
        }
        let writer = {
            let held = held.clone();
            tokio::spawn(async move { held.append_when_room(big()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished(), "the producer was not held back");
        assert_eq!(held.watermarks("t", 0), Some((0, 4)));
        while c.poll(Duration::from_millis(5)).await.is_some() {}
        c.commit(&Arc::from("t"), 0, 4);
        tokio::time::timeout(Duration::from_secs(2), writer)
            .await
            .expect("the producer went on once the group committed")
            .unwrap();
        assert_eq!(held.watermarks("t", 0), Some((2, 5)));
    }

    /// Retention by age: records older than `max_age` go once read, however much room is left.
    #[tokio::test]
    async fn retention_by_age_drops_what_is_older_once_read() {
        let log = MemoryLog::new(MemoryLogConfig {
            default_partitions: 1,
            max_age: Some(Duration::from_millis(100)),
            ..MemoryLogConfig::default()
        });
        let mut c = log.consumer("g", &["t".into()]);
        for _ in 0..3 {
            log.append(raw("t", "k", "old"));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Expired, but the group has not committed them: kept.
        log.append(raw("t", "k", "new"));
        assert_eq!(log.watermarks("t", 0), Some((0, 4)));
        while c.poll(Duration::from_millis(5)).await.is_some() {}
        c.commit(&Arc::from("t"), 0, 4);
        log.append(raw("t", "k", "newer"));
        // The three old ones went; the one written after the pause is young yet.
        assert_eq!(log.watermarks("t", 0), Some((3, 5)));
    }
}
