//! How a handler's outputs reach the log: wrapped into envelopes derived from their cause, handed to
//! the log without waiting for the broker, and all acknowledged before any checkpoint is written or
//! any commit made that covers the inputs that caused them.
//!
//! Awaiting each record's acknowledgement before taking the next input made every hop cost a
//! broker round trip per record: on Kafka the services spent most of their time waiting. Instead
//! outputs are enqueued in the producer ([`Log::send_unacknowledged`]) and the processor goes on
//! with the next input. When a checkpoint is due, the outputs handed over so far go with it to the
//! background: its snapshot is written only once they are all acknowledged (see [`commit`]), so the
//! state saved holds only effects the log has, and every commit comes after both. Only
//! [`Processor::settle`] awaits them inline: when too many are outstanding, after each timer of a
//! service that consumes nothing, and at shutdown. A crash in between loses nothing: the inputs are not
//! committed, they are read again, and their outputs, whose ids derive from them, are deduplicated
//! downstream.
//!
//! The producer is idempotent, so records of one partition are written in the order they were
//! enqueued. A record the producer gave up on (the broker away longer than `message.timeout.ms`,
//! and then every record queued behind it fails too) is sent again, in the order it was first
//! sent, until the broker takes it, before anything newer is checkpointed; only then can it land
//! after a record enqueued later that did get through, and consumers deduplicate by id either way.
//!
//! [`Log::send_unacknowledged`]: crate::log::Log::send_unacknowledged
//! [`commit`]: super::commit

use alpha_panda_core::Envelope;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Processor;
use crate::handler::{Handler, Output};
use crate::log::Unacknowledged;
use crate::record::OutgoingRecord;
use crate::stats::ProcessorStats;

/// Unacknowledged outputs beyond which the processor settles them before it goes on, so that
/// what it holds for them stays bounded whatever the commit cadence.
const MAX_UNACKNOWLEDGED: usize = 20_000;

impl<H: Handler> Processor<H> {
    /// Wraps outputs into envelopes: derived from `cause`, or roots for time-driven outputs.
    pub(super) fn wrap(
        &self,
        cause: Option<&Envelope>,
        outputs: Vec<Output>,
    ) -> Vec<OutgoingRecord> {
        if outputs.is_empty() {
            return Vec::new();
        }
        let now = self.clock.now();
        outputs
            .into_iter()
            .enumerate()
            .map(|(ordinal, out)| {
                let mut envelope = match cause {
                    Some(cause) => cause.derive(
                        ordinal as u32,
                        out.payload,
                        out.key,
                        out.broker,
                        self.service.clone(),
                        now,
                    ),
                    None => {
                        Envelope::root(out.payload, out.key, out.broker, self.service.clone(), now)
                    }
                };
                if let Some(id) = out.id {
                    envelope.id = id;
                }
                OutgoingRecord::event(out.topic, envelope)
            })
            .collect()
    }

    /// Hands `records` to the log; their acknowledgements are awaited by [`Processor::settle`].
    /// `false` when shutdown interrupted the retries of a record the producer refused.
    pub(super) async fn publish(
        &mut self,
        records: Vec<OutgoingRecord>,
        shutdown: &CancellationToken,
    ) -> bool {
        if records.is_empty() {
            return true;
        }
        let count = records.len() as u64;
        let handed_over = match self
            .log
            .send_unacknowledged(records, &mut self.unacknowledged)
            .await
        {
            Ok(()) => true,
            Err((e, unsent)) => {
                warn!(error = %e, "produce refused; retrying");
                self.produce_until_acknowledged(unsent, shutdown).await
            }
        };
        if !handed_over {
            return false;
        }
        ProcessorStats::incr(&self.stats.events_out, count);
        if self.unacknowledged.len() >= MAX_UNACKNOWLEDGED {
            return self.settle(shutdown).await;
        }
        true
    }

    /// Waits until every output handed to the log is acknowledged, sending again, in their order,
    /// those the producer gave up on; `false` when shutdown interrupted those retries (the
    /// outputs are then not all in the log, and nothing since the last checkpoint may be saved).
    pub(super) async fn settle(&mut self, shutdown: &CancellationToken) -> bool {
        if self.unacknowledged.is_empty() {
            return true;
        }
        let lost = acknowledge(std::mem::take(&mut self.unacknowledged)).await;
        lost.is_empty() || self.produce_until_acknowledged(lost, shutdown).await
    }

    /// Produces until every record is acknowledged; `false` when shutdown interrupted the retries.
    /// Ids are deterministic, so a partial send retried in full is deduplicated downstream.
    pub(super) async fn produce_until_acknowledged(
        &mut self,
        mut records: Vec<OutgoingRecord>,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut attempt = 0;
        loop {
            match self.log.send_all_or_return(records).await {
                Ok(_) => return true,
                Err((e, unsent)) => {
                    records = unsent;
                    warn!(error = %e, attempt, "produce failed; retrying");
                    if self.backoff(&mut attempt, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// Awaits every acknowledgement of `outputs`, in order: the records the producer gave up on, in the
/// order they were sent.
pub(super) async fn acknowledge(outputs: Vec<Unacknowledged>) -> Vec<OutgoingRecord> {
    let mut lost = Vec::new();
    for sent in outputs {
        if let Err(e) = sent.delivery.acknowledged().await {
            if lost.is_empty() {
                warn!(error = %e, "an output was not acknowledged; it will be sent again");
            }
            lost.push(sent.record);
        }
    }
    lost
}
