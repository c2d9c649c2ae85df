//! Dead-lettering: an input the handler cannot process goes to `{topic}.dlq` with everything
//! needed to replay it, under an id derived from the input (or, for undecodable bytes, from the
//! group and the record's place in the log), so the same failure dead-lettered twice is one record.

use alpha_panda_core::{
    derive_event_id, DlqMessage, DlqPayload, Envelope, ErrorClass, EventId, Payload, TopicMap,
};
use base64::Engine;

use super::{Outcome, Processor};
use crate::dlq::DLQ_ORDINAL;
use crate::handler::Handler;
use crate::record::{OutgoingRecord, Record};
use crate::stats::ProcessorStats;
use tokio_util::sync::CancellationToken;

impl<H: Handler> Processor<H> {
    pub(super) async fn dead_letter(
        &mut self,
        record: &Record,
        envelope: Option<&Envelope>,
        error_class: ErrorClass,
        error_message: String,
        retry_count: u32,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let now = self.clock.now();
        let broker = self.handler.broker();
        let message = DlqMessage {
            original_topic: record.topic.to_string(),
            original_partition: record.partition,
            original_offset: record.offset,
            original_key: record.key().map(str::to_string),
            original: match envelope {
                Some(e) => DlqPayload::Envelope {
                    envelope: Box::new(e.clone()),
                },
                None => DlqPayload::Raw {
                    value_base64: base64::engine::general_purpose::STANDARD
                        .encode(record.value.to_bytes()),
                },
            },
            error_class,
            error_message,
            retry_count,
            service: self.service.to_string(),
            broker,
            failed_at: now,
        };
        let key = record.key().unwrap_or_default().to_string();
        let dlq_envelope = match envelope {
            Some(e) => e.derive(
                DLQ_ORDINAL,
                Payload::DlqMessage(message),
                key,
                broker,
                self.service.clone(),
                now,
            ),
            // Undecodable bytes have no id to derive from: their place in the log and the group
            // stand in, so the same failure dead-lettered twice (a crash before the commit) has
            // one id, and the DLQ tools see it once.
            None => Envelope::root_with_id(
                raw_dead_letter_id(&self.group, record),
                Payload::DlqMessage(message),
                key,
                broker,
                self.service.clone(),
                now,
            ),
        };
        let topic = TopicMap::dlq(&record.topic);
        if !self
            .publish(vec![OutgoingRecord::event(topic, dlq_envelope)], shutdown)
            .await
        {
            return Outcome::Aborted;
        }
        ProcessorStats::incr(&self.stats.dead_lettered, 1);
        Outcome::Done
    }
}

/// The id of the DLQ record of the undecodable `record` that `group` failed on: a pure function
/// of the group and the record's topic, partition and offset.
fn raw_dead_letter_id(group: &str, record: &Record) -> EventId {
    let place = format!(
        "dlq:{group}:{}:{}:{}",
        record.topic, record.partition, record.offset
    );
    // A nil cause: the id's time bits then say nothing, but nothing sorts DLQ records by id.
    derive_event_id(EventId(uuid::Uuid::nil()), &place, DLQ_ORDINAL)
}
