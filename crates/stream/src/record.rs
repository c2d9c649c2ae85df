//! What flows through the log: records read, records to write, delivery reports, lag.

use std::borrow::Cow;
use std::sync::Arc;

use alpha_panda_core::{DepthLevel, DlqPayload, Envelope, EventId, Payload, PositionSnapshot};
use bytes::Bytes;

/// Header names of ARCHITECTURE §2.
pub mod header {
    /// The envelope id.
    pub const EVENT_ID: &str = "event-id";
    /// The envelope type.
    pub const EVENT_TYPE: &str = "event-type";
    /// The correlation id.
    pub const CORRELATION_ID: &str = "correlation-id";
    /// The causation id (empty for a root event).
    pub const CAUSATION_ID: &str = "causation-id";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// Payload schema version.
    pub const SCHEMA_VERSION: &str = "schema-version";
    /// Always `application/json`.
    pub const CONTENT_TYPE: &str = "content-type";

    /// Whether `name` is one of the headers an envelope travels with that a reader here has no
    /// use for: they repeat what the envelope itself says, for readers outside Alpha Panda. The
    /// event id is not one of them: it tells a record's event without decoding its value (what a
    /// checkpoint's anchor is checked against).
    pub fn repeats_the_value(name: &str) -> bool {
        [
            EVENT_TYPE,
            CORRELATION_ID,
            CAUSATION_ID,
            TRACEPARENT,
            SCHEMA_VERSION,
            CONTENT_TYPE,
        ]
        .contains(&name)
    }

    /// Whether a record whose value is read as a typed envelope can leave `name` out: the
    /// envelope says it all, the event id included (as the memory log's typed records have no
    /// headers). What is left is what only the record says, such as a replay's target group.
    pub fn said_by_the_envelope(name: &str) -> bool {
        name == EVENT_ID || repeats_the_value(name)
    }
}

/// Folds the headers an envelope travels with, name and value in order, into `headers`. A
/// producer writes them for every record, so the values are written into buffers on the stack
/// rather than into strings of their own.
pub fn fold_envelope_headers<H>(
    envelope: &Envelope,
    headers: H,
    mut add: impl FnMut(H, &'static str, &str) -> H,
) -> H {
    let mut id = uuid::Uuid::encode_buffer();
    let mut causation = uuid::Uuid::encode_buffer();
    let mut version = itoa::Buffer::new();
    let headers = add(
        headers,
        header::EVENT_ID,
        envelope.id.0.hyphenated().encode_lower(&mut id),
    );
    let headers = add(headers, header::EVENT_TYPE, envelope.event_type().as_str());
    let headers = add(headers, header::CORRELATION_ID, &envelope.correlation_id.0);
    let headers = add(
        headers,
        header::CAUSATION_ID,
        match &envelope.causation_id {
            Some(cause) => cause.0.hyphenated().encode_lower(&mut causation),
            None => "",
        },
    );
    let headers = add(headers, header::TRACEPARENT, &envelope.traceparent());
    let headers = add(
        headers,
        header::SCHEMA_VERSION,
        version.format(envelope.version),
    );
    add(headers, header::CONTENT_TYPE, "application/json")
}

/// A record's value: a typed event (memory log, no serialization) or raw bytes (Kafka, or bytes that
/// were written raw and may not decode at all).
#[derive(Debug, Clone)]
pub enum RecordValue {
    /// An envelope, shared between consumers.
    Event(Arc<Envelope>),
    /// Bytes as they were written.
    Bytes(Bytes),
}

impl RecordValue {
    /// The value as wire bytes.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            RecordValue::Event(e) => Bytes::from(e.to_json()),
            RecordValue::Bytes(b) => b.clone(),
        }
    }

    /// What keeping the value in memory costs, near enough for a retention limit: the bytes, or
    /// the envelope with what its payload holds on the heap (strings shared with other events,
    /// such as an instrument's symbol or the source's name, are not counted).
    pub fn retained_bytes(&self) -> usize {
        match self {
            RecordValue::Bytes(b) => b.len(),
            RecordValue::Event(e) => envelope_bytes(e),
        }
    }
}

/// Heap and inline bytes of an envelope, as [`RecordValue::retained_bytes`] counts them.
fn envelope_bytes(envelope: &Envelope) -> usize {
    /// What the strings of a payload without a list in it (ids, reasons, names) take, at most
    /// about: counting them one by one would cost more than the record.
    const STRINGS: usize = 160;
    let payload = match &envelope.payload {
        Payload::MarketTick(tick) => tick.depth.as_ref().map_or(0, |depth| {
            (depth.buy.len() + depth.sell.len()) * std::mem::size_of::<DepthLevel>()
        }),
        Payload::DlqMessage(message) => {
            message.error_message.len()
                + match &message.original {
                    DlqPayload::Envelope { envelope } => envelope_bytes(envelope),
                    DlqPayload::Raw { value_base64 } => value_base64.len(),
                }
        }
        Payload::PnlSnapshot(snapshot) => {
            STRINGS + snapshot.positions.len() * std::mem::size_of::<PositionSnapshot>()
        }
        Payload::RejectedSignal(rejected) => {
            STRINGS
                + rejected
                    .violations
                    .iter()
                    .map(|v| v.rule.len() + v.limit.len() + v.actual.len() + v.message.len())
                    .sum::<usize>()
        }
        _ => STRINGS,
    };
    std::mem::size_of::<Envelope>() + envelope.key.len() + payload
}

/// A key as written, or, when none was kept, a typed value's own (see [`Record::key`]).
pub(crate) fn key_of<'a>(written: Option<&'a Arc<str>>, value: &'a RecordValue) -> Option<&'a str> {
    match (written, value) {
        (Some(key), _) => Some(key),
        (None, RecordValue::Event(envelope)) => Some(&envelope.key),
        (None, RecordValue::Bytes(_)) => None,
    }
}

/// A record read from the log.
#[derive(Debug, Clone)]
pub struct Record {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Key as written, unless it is the typed envelope's own: the memory log leaves that out (its
    /// consumers would otherwise all count references on one shared key per record) and
    /// [`Record::key`] reads it from the envelope.
    pub key: Option<Arc<str>>,
    /// Value.
    pub value: RecordValue,
    /// Headers (empty for typed records in the memory log: they are derivable from the envelope).
    pub headers: Vec<(String, String)>,
    /// Broker append time, Unix milliseconds.
    pub timestamp_ms: i64,
}

impl Record {
    /// The record's key: as written, or the typed envelope's own.
    pub fn key(&self) -> Option<&str> {
        key_of(self.key.as_ref(), &self.value)
    }

    /// The id of the event the record carries: the typed envelope's, or the `event-id` header
    /// of bytes (every event is written with it); `None` for bytes without one.
    pub fn event_id(&self) -> Option<EventId> {
        match &self.value {
            RecordValue::Event(envelope) => Some(envelope.id),
            RecordValue::Bytes(_) => self.header(header::EVENT_ID).and_then(|id| id.parse().ok()),
        }
    }

    /// The value of the header `name`, if the record has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Where the record sits.
    pub fn position(&self) -> RecordPosition {
        RecordPosition {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// A record's place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordPosition {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A record to write.
#[derive(Debug, Clone)]
pub struct OutgoingRecord {
    /// Target topic (borrowed when it is a fixed name, so a tick's record allocates none).
    pub topic: Cow<'static, str>,
    /// Key (the partition key), unless it is the typed envelope's own: [`OutgoingRecord::key`]
    /// reads that from the envelope, so an event's key is never copied.
    pub key: Option<Arc<str>>,
    /// Value.
    pub value: RecordValue,
    /// Extra headers (envelope headers are added for typed values).
    pub headers: Vec<(String, String)>,
}

impl OutgoingRecord {
    /// An envelope to `topic`, keyed by its `key`.
    pub fn event(topic: impl Into<Cow<'static, str>>, envelope: Envelope) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            value: RecordValue::Event(Arc::new(envelope)),
            headers: Vec::new(),
        }
    }

    /// The record's key: as written, or the typed envelope's own.
    pub fn key(&self) -> Option<&str> {
        key_of(self.key.as_ref(), &self.value)
    }
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Consumer lag of one partition: high watermark − committed offset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to be written.
    pub high_watermark: i64,
    /// Next offset the group will read (its committed offset), or the log start when none.
    pub committed: i64,
    /// `high_watermark − committed`, never negative.
    pub lag: i64,
}

/// The partition a key maps to among `partitions`: murmur2, as Kafka's default partitioner does, so a
/// key lands on the same partition number in both backends.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2(key) & 0x7fff_ffff;
    (hash % partitions.max(1) as u32) as i32
}

fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(at: alpha_panda_core::Timestamp) -> Payload {
        Payload::Alert(alpha_panda_core::Alert {
            kind: alpha_panda_core::AlertKind::CheckpointFailing,
            severity: alpha_panda_core::AlertSeverity::Warning,
            service: "test".into(),
            message: "a test".into(),
            since: at,
        })
    }

    #[test]
    fn only_the_headers_that_repeat_the_value_are_left_out_on_read() {
        let at = alpha_panda_core::Timestamp::from_unix_micros(0).unwrap();
        let envelope = Envelope::root(
            alert(at),
            "k".into(),
            alpha_panda_core::EventBroker::Shared,
            "test",
            at,
        );
        let names = fold_envelope_headers(&envelope, Vec::new(), |mut names, name, _| {
            names.push(name);
            names
        });
        let repeated: Vec<&str> = names
            .into_iter()
            .filter(|name| header::repeats_the_value(name))
            .collect();
        assert_eq!(repeated.len(), 6, "{repeated:?}");
        assert!(!header::repeats_the_value(header::EVENT_ID));
        assert!(!header::repeats_the_value(crate::dlq::REPLAY_GROUP_HEADER));
    }

    #[test]
    fn header_values_say_what_the_envelope_says() {
        let at = alpha_panda_core::Timestamp::from_unix_micros(0).unwrap();
        let broker = alpha_panda_core::EventBroker::Shared;
        let root = Envelope::root(alert(at), "k".into(), broker, "a", at);
        let derived = root.derive(0, alert(at), "k".into(), broker, "b", at);
        for (envelope, causation) in [(&root, String::new()), (&derived, root.id.to_string())] {
            let headers = fold_envelope_headers(envelope, Vec::new(), |mut all, name, value| {
                all.push((name, value.to_string()));
                all
            });
            assert_eq!(
                headers,
                [
                    (header::EVENT_ID, envelope.id.to_string()),
                    (header::EVENT_TYPE, "alert".to_string()),
                    (header::CORRELATION_ID, root.id.to_string()),
                    (header::CAUSATION_ID, causation),
                    (header::TRACEPARENT, envelope.traceparent()),
                    (header::SCHEMA_VERSION, "2".to_string()),
                    (header::CONTENT_TYPE, "application/json".to_string()),
                ]
            );
        }
    }

    #[test]
    fn murmur2_matches_kafka_reference_values() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }
}
