//! `dlq_message`: a record a service could not process, with everything needed to replay it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Envelope, ErrorClass, EventBroker, Timestamp};

/// What the DLQ record keeps of the failed input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DlqPayload {
    /// The input decoded into an envelope (the handler failed on it).
    Envelope {
        /// The original event, unchanged (replay keeps its id).
        envelope: Box<Envelope>,
    },
    /// The input could not be decoded: its bytes, base64.
    Raw {
        /// Standard base64 of the record value.
        value_base64: String,
    },
}

/// A dead-lettered record (ARCHITECTURE §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DlqMessage {
    /// Topic the record was read from.
    pub original_topic: String,
    /// Its partition.
    pub original_partition: i32,
    /// Its offset.
    pub original_offset: i64,
    /// Its key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_key: Option<String>,
    /// The record itself.
    pub original: DlqPayload,
    /// How the failure was classified.
    pub error_class: ErrorClass,
    /// The error, for people.
    pub error_message: String,
    /// How many retries were made before giving up.
    pub retry_count: u32,
    /// The consuming service.
    pub service: String,
    /// The consuming service's broker namespace (`shared` for a market data consumer).
    pub broker: EventBroker,
    /// When it was dead-lettered.
    pub failed_at: Timestamp,
}
