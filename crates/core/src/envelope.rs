//! The wire envelope (ARCHITECTURE §2): eleven fields, one JSON object per record.
//!
//! Services never build envelopes by hand: the processor runtime wraps their payloads with
//! [`Envelope::root`] (a tick) or [`Envelope::derive`] (anything caused by an input), which is what
//! makes correlation, causation and deterministic ids hold on every hop.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{derive_event_id, CorrelationId, ErrorClass, EventBroker, EventId, Payload, Timestamp};

mod decode;

/// The payload schema version this build writes and reads.
pub const CURRENT_VERSION: u32 = 2;

/// The envelope's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// `market_tick`
    MarketTick,
    /// `trading_signal`
    TradingSignal,
    /// `validated_signal`
    ValidatedSignal,
    /// `rejected_signal`
    RejectedSignal,
    /// `signal_at_target`
    SignalAtTarget,
    /// `order_submitted`
    OrderSubmitted,
    /// `order_ack`
    OrderAck,
    /// `order_filled`
    OrderFilled,
    /// `order_failed`
    OrderFailed,
    /// `pnl_snapshot`
    PnlSnapshot,
    /// `dlq_message`
    DlqMessage,
    /// `alert`
    Alert,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 12] = [
        EventType::MarketTick,
        EventType::TradingSignal,
        EventType::ValidatedSignal,
        EventType::RejectedSignal,
        EventType::SignalAtTarget,
        EventType::OrderSubmitted,
        EventType::OrderAck,
        EventType::OrderFilled,
        EventType::OrderFailed,
        EventType::PnlSnapshot,
        EventType::DlqMessage,
        EventType::Alert,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MarketTick => "market_tick",
            EventType::TradingSignal => "trading_signal",
            EventType::ValidatedSignal => "validated_signal",
            EventType::RejectedSignal => "rejected_signal",
            EventType::SignalAtTarget => "signal_at_target",
            EventType::OrderSubmitted => "order_submitted",
            EventType::OrderAck => "order_ack",
            EventType::OrderFilled => "order_filled",
            EventType::OrderFailed => "order_failed",
            EventType::PnlSnapshot => "pnl_snapshot",
            EventType::DlqMessage => "dlq_message",
            EventType::Alert => "alert",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

/// One event on the log.
// Decoded by `decode`, which reads the flattened payload in place.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Envelope {
    /// UUIDv7; for a derived event, a pure function of its cause.
    pub id: EventId,
    /// Copied from the cause; a root event starts a new one.
    pub correlation_id: CorrelationId,
    /// The id of the event that caused this one.
    pub causation_id: Option<EventId>,
    /// W3C trace id (32 lowercase hex), also sent as `traceparent`.
    // Shared by every event of a chain: a derived event copies a pointer, not the text.
    pub trace_id: Arc<str>,
    /// The namespace, from configuration.
    pub broker: EventBroker,
    /// When the event was created.
    pub ts: Timestamp,
    /// The partition key.
    pub key: String,
    /// The emitting service.
    // Shared: a service stamps the same name on every event it emits.
    pub source: Arc<str>,
    /// Payload schema version.
    pub version: u32,
    /// `type` and `data`.
    #[serde(flatten)]
    pub payload: Payload,
}

/// The W3C trace id a root event starts: the 32 lowercase hex digits of its own (unique) id, written
/// without going through the formatting machinery.
fn root_trace_id(id: EventId) -> Arc<str> {
    let mut buffer = uuid::Uuid::encode_buffer();
    Arc::from(&*id.as_uuid().simple().encode_lower(&mut buffer))
}

/// Why bytes could not become an envelope. Always [`ErrorClass::Poison`].
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not an envelope of a known type with a valid payload.
    #[error("undecodable envelope: {0}")]
    Decode(#[from] serde_json::Error),
    /// A payload version this build does not understand.
    #[error("unsupported payload version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the record.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
}

impl EnvelopeError {
    /// Decoding failures are poison: retrying cannot help.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Poison
    }
}

impl Envelope {
    /// A root event (a tick): a new id, which starts its correlation and its trace.
    pub fn root(
        payload: Payload,
        key: String,
        broker: EventBroker,
        source: impl Into<Arc<str>>,
        ts: Timestamp,
    ) -> Self {
        Self::root_with_id(EventId::new_root(), payload, key, broker, source, ts)
    }

    /// A root event whose id the source chose (a deterministic replay id). Its correlation id and
    /// trace id are its own id: unique to this root, drawn without a clock or a random number, and
    /// the same again when a replay reuses the id.
    pub fn root_with_id(
        id: EventId,
        payload: Payload,
        key: String,
        broker: EventBroker,
        source: impl Into<Arc<str>>,
        ts: Timestamp,
    ) -> Self {
        Self {
            id,
            correlation_id: CorrelationId::of_root(id),
            causation_id: None,
            trace_id: root_trace_id(id),
            broker,
            ts,
            key,
            source: source.into(),
            version: CURRENT_VERSION,
            payload,
        }
    }

    /// The `ordinal`-th output of `source` while handling `self`: its id is derived from this
    /// event's, its correlation and trace are this event's, its causation is this event's id.
    pub fn derive(
        &self,
        ordinal: u32,
        payload: Payload,
        key: String,
        broker: EventBroker,
        source: impl Into<Arc<str>>,
        ts: Timestamp,
    ) -> Self {
        let source = source.into();
        Self {
            id: derive_event_id(self.id, &source, ordinal),
            correlation_id: self.correlation_id.clone(),
            causation_id: Some(self.id),
            trace_id: self.trace_id.clone(),
            broker,
            ts,
            key,
            source,
            version: CURRENT_VERSION,
            payload,
        }
    }

    /// The envelope's `type`.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The W3C `traceparent` header: the span id is taken from the event id, so each hop is a span.
    pub fn traceparent(&self) -> String {
        let span = &self.id.0.simple().to_string()[16..];
        format!("00-{}-{}-01", self.trace_id, span)
    }

    /// Encodes to the wire JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // An envelope is plain data with string keys: serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes wire JSON.
    ///
    /// # Errors
    /// [`EnvelopeError`] (poison) when the bytes are not a valid envelope of a supported version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let envelope: Envelope = serde_json::from_slice(bytes)?;
        if envelope.version != CURRENT_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                found: envelope.version,
                supported: CURRENT_VERSION,
            });
        }
        Ok(envelope)
    }
}
