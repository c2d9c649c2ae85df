//! Publishing root events from a source (the market feed): the runtime-side counterpart of a handler
//! for services that consume nothing. Sources hand over payloads; the emitter builds the envelopes.

use std::borrow::Cow;
use std::sync::Arc;

use alpha_panda_core::{
    Clock, DlqMessage, DlqPayload, Envelope, ErrorClass, EventBroker, EventId, Payload,
};

use crate::dlq::DLQ_ORDINAL;
use crate::log::{Log, Unacknowledged};
use crate::record::{Delivery, OutgoingRecord};
use crate::LogError;

/// Wraps payloads into root envelopes stamped with `source` and publishes them.
#[derive(Clone)]
pub struct Emitter {
    log: Log,
    source: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl Emitter {
    /// An emitter for service `source`.
    pub fn new(log: Log, source: impl Into<Arc<str>>, clock: Arc<dyn Clock>) -> Self {
        Self {
            log,
            source: source.into(),
            clock,
        }
    }

    /// Builds the root envelope for `payload` (not yet sent).
    pub fn envelope(&self, payload: Payload, key: String, broker: EventBroker) -> Envelope {
        Envelope::root(payload, key, broker, self.source.clone(), self.clock.now())
    }

    /// Builds the root envelope for `payload` under an id the source chose (a deterministic replay
    /// id), not yet sent.
    pub fn envelope_with_id(
        &self,
        id: EventId,
        payload: Payload,
        key: String,
        broker: EventBroker,
    ) -> Envelope {
        Envelope::root_with_id(
            id,
            payload,
            key,
            broker,
            self.source.clone(),
            self.clock.now(),
        )
    }

    /// The `dlq_message` for `refused`, an event the source built for `topic` and will not publish
    /// (a tick no exchange could have printed): poison, never written to `topic`, so its partition
    /// and offset are -1. Its id derives from the refused event's, as a consumer's DLQ record does.
    pub fn refusal(&self, topic: &str, refused: Envelope, error_message: String) -> Envelope {
        let now = self.clock.now();
        let key = refused.key.clone();
        let broker = refused.broker;
        let message = DlqMessage {
            original_topic: topic.to_string(),
            original_partition: -1,
            original_offset: -1,
            original_key: Some(key.clone()),
            original: DlqPayload::Envelope {
                envelope: Box::new(refused.clone()),
            },
            error_class: ErrorClass::Poison,
            error_message,
            retry_count: 0,
            service: self.source.to_string(),
            broker,
            failed_at: now,
        };
        refused.derive(
            DLQ_ORDINAL,
            Payload::DlqMessage(message),
            key,
            broker,
            self.source.clone(),
            now,
        )
    }

    /// Publishes one root event to `topic` and waits for its acknowledgement.
    ///
    /// # Errors
    /// [`LogError`] when the log does not acknowledge it.
    pub async fn emit(
        &self,
        topic: &str,
        key: String,
        payload: Payload,
        broker: EventBroker,
    ) -> Result<Delivery, LogError> {
        let envelope = self.envelope(payload, key, broker);
        self.log
            .send(OutgoingRecord::event(topic.to_string(), envelope))
            .await
    }

    /// Publishes already built envelopes to `topic`, waiting for every acknowledgement.
    ///
    /// # Errors
    /// [`LogError`] when any is not acknowledged.
    pub async fn emit_all(
        &self,
        topic: impl Into<Cow<'static, str>>,
        envelopes: Vec<Envelope>,
    ) -> Result<Vec<Delivery>, LogError> {
        let topic: Cow<'static, str> = topic.into();
        self.log
            .send_all(
                envelopes
                    .into_iter()
                    .map(|e| OutgoingRecord::event(topic.clone(), e))
                    .collect(),
            )
            .await
    }

    /// As [`Emitter::emit_all`], without waiting for the broker: the records still to be
    /// acknowledged are pushed onto `unacknowledged` (see [`Log::send_unacknowledged`]), to be
    /// awaited by the caller.
    ///
    /// # Errors
    /// [`LogError`] when the producer refuses a record.
    pub async fn emit_all_unacknowledged(
        &self,
        topic: impl Into<Cow<'static, str>>,
        envelopes: Vec<Envelope>,
        unacknowledged: &mut impl Extend<Unacknowledged>,
    ) -> Result<(), LogError> {
        let topic: Cow<'static, str> = topic.into();
        let records = envelopes
            .into_iter()
            .map(|e| OutgoingRecord::event(topic.clone(), e))
            .collect();
        self.log
            .send_unacknowledged(records, unacknowledged)
            .await
            .map_err(|(e, _)| e)
    }
}
