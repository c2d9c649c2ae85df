//! Conflation of records that arrive as bytes (Kafka), once they are decoded.
//!
//! The memory log conflates its typed records while it fetches them (see [`crate::conflation`]).
//! Kafka's records are bytes, which may be poison, so the log cannot judge them: here, before a
//! fetched batch is handled, every record of a topic whose type the handler conflates is decoded
//! (once: the handler then reads it in place), and only a record that would be handled — it
//! decodes, it is where it belongs, its figures are plausible, it is not a replay meant for some
//! group — has a last-value identity. Poison keeps none, so it is never skipped and still
//! reaches its DLQ. (A record that another group of the process reads too arrives decoded
//! already, by the consumer, see [`crate::shared_decode`]; it is judged the same way.) Records
//! are marked partition by partition, so the record that supersedes another is always later in
//! the same partition, and its commit covers the skipped one.

use std::collections::VecDeque;
use std::sync::Arc;

use alpha_panda_core::Envelope;

use super::Processor;
use crate::conflation::{Conflation, LastValue, Marks};
use crate::dlq::replay_group;
use crate::handler::Handler;
use crate::record::{Record, RecordValue};

impl<H: Handler> Processor<H> {
    /// Leaves out of `batch` (a poll's records, in log order) every record `conflation` lets a
    /// later record of the same type and key in the same partition supersede; how many it left
    /// out.
    pub(super) fn conflate_fetched(
        &self,
        batch: &mut VecDeque<Record>,
        conflation: Conflation,
        marks: &mut Marks,
    ) -> u64 {
        if conflation.is_none() || batch.len() < 2 {
            return 0;
        }
        let identities: Vec<Option<LastValue>> = batch
            .iter_mut()
            .map(|record| self.last_value_of(record, conflation))
            .collect();
        let mut superseded = vec![false; batch.len()];
        let mut partitions: Vec<(&Arc<str>, i32, Vec<usize>)> = Vec::new();
        for (index, record) in batch.iter().enumerate() {
            if identities[index].is_none() {
                continue;
            }
            match partitions.iter_mut().find(|(topic, partition, _)| {
                *partition == record.partition && **topic == record.topic
            }) {
                Some((_, _, indices)) => indices.push(index),
                None => partitions.push((&record.topic, record.partition, vec![index])),
            }
        }
        for (_, _, indices) in &partitions {
            conflation.mark_superseded(indices.iter().map(|&i| identities[i]), marks);
            for (&index, &is_superseded) in indices.iter().zip(marks.superseded()) {
                superseded[index] = is_superseded;
            }
        }
        let skipped = superseded.iter().filter(|s| **s).count();
        if skipped > 0 {
            let mut flags = superseded.iter();
            batch.retain(|_| !flags.next().copied().unwrap_or(false));
        }
        skipped as u64
    }

    /// The record's last-value identity when it is of a conflated type and would be handled as it
    /// is; its bytes are decoded in place on the way.
    fn last_value_of(&self, record: &mut Record, conflation: Conflation) -> Option<LastValue> {
        if replay_group(&record.headers).is_some() {
            return None;
        }
        // A topic known to carry a type that is not conflated is not decoded here; one outside
        // the topic map is, and judged by what it holds.
        if self
            .expected_type_of(&record.topic)
            .is_some_and(|carried| !conflation.applies(carried))
        {
            return None;
        }
        if let RecordValue::Bytes(bytes) = &record.value {
            // Undecodable bytes stay as they are, for the handling that dead-letters them.
            let envelope = Envelope::from_json(bytes).ok()?;
            record.value = RecordValue::Event(Arc::new(envelope));
        }
        let RecordValue::Event(envelope) = &record.value else {
            return None;
        };
        if !conflation.applies(envelope.event_type())
            || self.misplaced(&record.topic, envelope).is_some()
            || envelope.payload.check_plausible().is_err()
        {
            return None;
        }
        LastValue::of(envelope.event_type(), record.key())
    }
}
