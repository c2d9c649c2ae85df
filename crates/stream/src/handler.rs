//! What a service implements to be run by the processor runtime: a [`Handler`] sees one decoded
//! event at a time and returns [`Output`]s; the runtime wraps them into envelopes, produces them,
//! and commits. A handler never builds an envelope and never touches an offset.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use alpha_panda_core::{Envelope, ErrorClass, EventBroker, EventId, EventType, Payload, Timestamp};

use crate::identity::LogIdentity;
use crate::record::RecordPosition;

/// The next offset to read of one partition: what a commit (and a checkpoint) records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitOffset {
    /// Topic.
    pub topic: std::sync::Arc<str>,
    /// Partition.
    pub partition: i32,
    /// The first offset not yet reflected.
    pub next_offset: i64,
    /// The id of the event just before `next_offset`, when it was one: the anchor that tells this
    /// partition from one of the same name created again (see [`Handler::checkpoint_anchors`]).
    pub last_event_id: Option<EventId>,
}

/// Where a checkpoint stands in one partition: its next offset and the event just before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAnchor {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The checkpoint's next offset there.
    pub next_offset: i64,
    /// The event at `next_offset - 1` when the checkpoint was written.
    pub last_event_id: EventId,
}

/// A checkpoint write in progress: it owns a snapshot of the handler's state and the offsets, so it
/// can run while the handler goes on with newer inputs.
pub type CheckpointWrite = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// Makes `handler`'s state durable with `offsets` and waits for the write: what the runtime does at
/// shutdown, and what a test does to checkpoint a handler it drives by hand.
///
/// # Errors
/// The handler's [`HandlerError`] when the snapshot or its write failed.
pub async fn checkpoint_now<H: Handler>(
    handler: &mut H,
    offsets: &[CommitOffset],
) -> Result<(), HandlerError> {
    let Some(write) = handler.begin_checkpoint(offsets)? else {
        return Ok(());
    };
    let outcome = write.await;
    handler.end_checkpoint(offsets, outcome.as_ref().map(|_| ()));
    outcome
}

/// One event handed to a handler.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The decoded event.
    pub envelope: &'a Envelope,
    /// Where it sits in the log (stateful services persist these with their state).
    pub position: &'a RecordPosition,
    /// The runtime clock's "now".
    pub now: Timestamp,
}

/// An event a handler wants published.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Target topic (from a `TopicMap`).
    pub topic: String,
    /// Partition key.
    pub key: String,
    /// The payload.
    pub payload: Payload,
    /// The namespace it belongs to.
    pub broker: EventBroker,
    /// The event id, for a time-driven output that must keep one id across restarts (a fill seen
    /// by polling the venue). `None` — the rule — lets the runtime derive it from the input.
    pub id: Option<EventId>,
}

/// A handler's failure, with the class that decides what the runtime does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class} error: {message}")]
pub struct HandlerError {
    /// Retry, dead-letter, or answer in the domain.
    pub class: ErrorClass,
    /// For people and the DLQ record.
    pub message: String,
}

impl HandlerError {
    /// A failure that may pass if retried (timeout, 429).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.into(),
        }
    }
    /// A dependency is down.
    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Infrastructure,
            message: message.into(),
        }
    }
    /// The input can never be handled.
    pub fn poison(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Poison,
            message: message.into(),
        }
    }
    /// A domain refusal the handler could not express as a domain event.
    pub fn business(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Business,
            message: message.into(),
        }
    }
}

/// A stream-processing service.
pub trait Handler: Send + 'static {
    /// The service name: the consumer group is `alpha-panda.{name}` and outputs carry it as `source`.
    fn name(&self) -> &str;

    /// The consumer group: `alpha-panda.{name}`, and `alpha-panda.{name}.{broker}` for a service
    /// that works for one broker namespace, so that namespaces never share offsets.
    fn consumer_group(&self) -> String {
        match self.broker().namespace() {
            Some(broker) => format!("alpha-panda.{}.{broker}", self.name()),
            None => format!("alpha-panda.{}", self.name()),
        }
    }

    /// Topics to consume. Empty means the runtime starts no consumer loop at all.
    fn topics(&self) -> Vec<String>;

    /// The namespace the service works for (`shared` for a market data consumer).
    fn broker(&self) -> EventBroker;

    /// Whether inputs of this type go through deduplication. Ticks are idempotent last-value updates
    /// and bypass it by default.
    fn deduplicate(&self, event_type: EventType) -> bool {
        event_type != EventType::MarketTick
    }

    /// Whether an input of this type is a last-value update the handler may skip when a later
    /// input of the same partition and key is fetched in the same batch (see
    /// [`crate::conflation`]). Asked before every poll, so the answer may follow the handler's
    /// state (a trading engine with a resting order needs every tick); a batch holds one
    /// partition's records, so it must not depend on inputs of that type the handler has yet to
    /// see in the batch. Nothing is conflated by default.
    fn conflates(&self, _event_type: EventType) -> bool {
        false
    }

    /// Where the handler's checkpoint stands, partition by partition, for the runtime to check
    /// against the log before the first input. None for a handler without a checkpoint.
    fn checkpoint_anchors(&self) -> Vec<PartitionAnchor> {
        Vec::new()
    }

    /// The runtime tells the handler which log it is about to read, before the first input, and
    /// which of its checkpoint's partitions no longer hold the event they ended with (`foreign`:
    /// a topic deleted and created again). A stateful handler uses the offsets of its checkpoint
    /// to skip inputs only when they belong to this log (ARCHITECTURE §4 rule 5), and saves this
    /// identity with the offsets it checkpoints.
    fn attach_log(&mut self, _log: &LogIdentity, _foreign: &[(String, i32)]) {}

    /// `Err` with the reason once the handler must stop: it is no longer the one writer of its
    /// state (ARCHITECTURE §4 rule 6). The runtime then leaves at once, checkpointing and
    /// committing nothing more, and reports the reason. Looked at between records: keep it cheap.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// Handles one input. Outputs are published (in order) before the input is committed.
    fn handle(
        &mut self,
        input: Input<'_>,
    ) -> impl Future<Output = Result<Vec<Output>, HandlerError>> + Send;

    /// Begins making the handler's state durable together with the offsets it reflects
    /// (ARCHITECTURE §4 rule 4). The runtime calls it when offsets are due for a commit.
    ///
    /// The handler takes a snapshot of its state here, synchronously, and returns the write as a
    /// [`CheckpointWrite`]: the runtime runs it in the background and keeps processing, so a slow
    /// database never stalls the stream, and it runs it only once every output handed to the log
    /// so far (those of the inputs below `offsets`, and of timers) has been acknowledged. It commits `offsets` only when the write succeeded, and
    /// begins no other checkpoint while one is running. `Ok(None)` means nothing needs writing (a
    /// stateless handler, or no change since the last checkpoint): the runtime commits at once. An
    /// error holds the commit back.
    fn begin_checkpoint(
        &mut self,
        _offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        Ok(None)
    }

    /// How the write returned by [`Handler::begin_checkpoint`] for `offsets` ended. After a failure
    /// the handler keeps what that write carried for the next checkpoint.
    fn end_checkpoint(&mut self, _offsets: &[CommitOffset], _outcome: Result<(), &HandlerError>) {}

    /// How often [`Handler::on_timer`] runs, if at all.
    fn timer_interval(&self) -> Option<Duration> {
        None
    }

    /// Time-driven outputs (periodic snapshots). They are root events: nothing caused them.
    fn on_timer(
        &mut self,
        _now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Output>, HandlerError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Called once the runtime has made its last commit and left the group: a stateful handler
    /// gives up what makes it the writer of its state (its lease), so a standby takes over at
    /// once.
    fn leave(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Last outputs before the runtime commits and leaves (a final snapshot).
    fn on_shutdown(
        &mut self,
        _now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Output>, HandlerError>> + Send {
        async { Ok(Vec::new()) }
    }
}
