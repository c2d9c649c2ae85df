//! Publishing root events from a source (the market feed): the runtime-side counterpart of a handler
//! for services that consume nothing. Sources hand over payloads; the emitter builds the envelopes.

use std::sync::Arc;

use alpha_panda_core::{Clock, Envelope, EventBroker, EventId, Payload};

use crate::log::Log;
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
        topic: &'static str,
        envelopes: Vec<Envelope>,
    ) -> Result<Vec<Delivery>, LogError> {
        self.log
            .send_all(
                envelopes
                    .into_iter()
                    .map(|e| OutgoingRecord::event(topic, e))
                    .collect(),
            )
            .await
    }
}
