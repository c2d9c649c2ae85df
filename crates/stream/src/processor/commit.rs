//! The commit and checkpoint discipline, in one place: offsets become due (a batch, an interval,
//! idleness, a timer); the handler's state is snapshotted at once, and in the background, while
//! records keep flowing, the outputs of every input below those offsets are awaited until the log
//! acknowledges them, and only then is the snapshot written; when it is durable, the inputs it
//! covers are marked in the dedup store and only then committed. An output the producer gave up on
//! leaves the snapshot unwritten and is sent again; a failed or hung write holds the commit back
//! and is retried; past `max_unsaved` records input is held back too. Nothing is ever written or
//! committed ahead of the outputs of what it covers, nothing is committed past effects that are not
//! durable, and no offset moves backwards.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::EventId;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::alerts::{Trouble, ALERT_AFTER_ATTEMPTS};
use super::publish::acknowledge;
use super::Processor;
use crate::handler::{checkpoint_now, CheckpointWrite, CommitOffset, Handler, HandlerError};
use crate::log::{LogConsumer, Unacknowledged};
use crate::record::{OutgoingRecord, Record};
use crate::stats::ProcessorStats;

impl<H: Handler> Processor<H> {
    /// The checkpoint at shutdown, after the last words: of every input processed since the last
    /// commit, and of whatever a timer or the last words changed alone. Returns the offsets it
    /// makes durable, to commit on leaving; none when the write or the marks failed (the inputs
    /// are then read again).
    pub(super) async fn final_checkpoint(&mut self, cadence: &CommitCadence) -> Vec<CommitOffset> {
        let offsets = cadence.pending.to_commit_offsets();
        if offsets.is_empty() && !cadence.timer_ran {
            return offsets;
        }
        let limit = self.config.checkpoint_timeout;
        let written = tokio::time::timeout(limit, checkpoint_now(&mut self.handler, &offsets))
            .await
            .unwrap_or_else(|_| {
                Err(HandlerError::infrastructure(format!(
                    "the final checkpoint did not end within {limit:?}"
                )))
            });
        match written {
            Ok(()) => {
                self.trouble_ended(Trouble::Checkpoints);
                let marks = std::mem::take(&mut self.unmarked);
                // Shutdown is under way: one attempt, and without the marks no commit.
                if self
                    .mark_processed(&marks, &CancellationToken::new(), 0)
                    .await
                {
                    offsets
                } else {
                    error!("dedup store unavailable at shutdown; leaving offsets uncommitted");
                    Vec::new()
                }
            }
            Err(e) => {
                // Without a durable state the inputs must be read again: commit nothing.
                error!(error = %e, "final checkpoint failed; leaving offsets uncommitted");
                Vec::new()
            }
        }
    }

    /// Too much is unsaved: waits for the running checkpoint write, or begins one after a backoff,
    /// until one succeeds; `true` when shutdown came first. The consumer keeps its place (the
    /// memory log) or its group membership (Kafka's poll-interval limit is minutes).
    pub(super) async fn hold_back(
        &mut self,
        consumer: &mut LogConsumer,
        cadence: &mut CommitCadence,
        shutdown: &CancellationToken,
    ) -> bool {
        self.stats.held_back.store(1, AtomicOrdering::Relaxed);
        let mut attempt = 0;
        while cadence.unsaved >= self.config.max_unsaved {
            if cadence.in_flight.is_some() {
                tokio::select! {
                    _ = shutdown.cancelled() => return true,
                    outcome = async {
                        (&mut cadence.in_flight.as_mut().expect("guarded").write).await
                    } => self.end_checkpoint(consumer, cadence, outcome, shutdown).await,
                }
            } else {
                warn!(
                    unsaved = cadence.unsaved,
                    "input held back until a checkpoint succeeds"
                );
                if self.backoff(&mut attempt, shutdown).await {
                    return true;
                }
                cadence.timer_ran = true;
                self.begin_checkpoint(consumer, cadence, shutdown).await;
            }
        }
        self.stats.held_back.store(0, AtomicOrdering::Relaxed);
        false
    }

    /// Offsets are due: snapshots the handler's state for them and, in the background, awaits the
    /// acknowledgement of every output handed to the log so far, then writes the snapshot; or
    /// commits at once when there is neither anything to write nor anything to await. Awaiting
    /// the acknowledgements here, inline, stopped the input for a produce round trip at every
    /// round (tens of milliseconds on a loaded broker, five times a second). While a round runs
    /// nothing new begins; its end commits what it covers and the next round takes the rest.
    pub(super) async fn begin_checkpoint(
        &mut self,
        consumer: &mut LogConsumer,
        cadence: &mut CommitCadence,
        shutdown: &CancellationToken,
    ) {
        if cadence.in_flight.is_some() || (cadence.pending.is_empty() && !cadence.timer_ran) {
            return;
        }
        // State a timer changed is saved like state an input changed, with whatever offsets are
        // pending (perhaps none).
        cadence.timer_ran = false;
        let offsets = cadence.pending.to_commit_offsets();
        // The next round is due a full batch or interval from now, whatever happens to this one.
        cadence.since_checkpoint = 0;
        cadence.first_since_checkpoint = None;
        // Every input handled so far is below these offsets, and every output handed to the log
        // so far came from them (or from a timer, whose change the snapshot holds too).
        let marks = std::mem::take(&mut self.unmarked);
        let outputs = std::mem::take(&mut self.unacknowledged);
        match self.handler.begin_checkpoint(&offsets) {
            Ok(None) if outputs.is_empty() => {
                self.commit_offsets(consumer, cadence, &offsets, marks, shutdown)
                    .await;
            }
            Ok(write) => {
                let writes_state = write.is_some();
                let limit = self.config.checkpoint_timeout;
                cadence.in_flight = Some(InFlight {
                    offsets,
                    marks,
                    writes_state,
                    write: tokio::spawn(acknowledged_then_written(outputs, write, limit)),
                });
            }
            // The state is not durable: keep the offsets pending, the next round retries (and
            // awaits these outputs then; nothing was published since they were taken).
            Err(e) => {
                self.unacknowledged = outputs;
                self.unmarked.extend(marks);
                cadence.timer_ran = true;
                warn!(error = %e, "checkpoint failed; commit held back");
                self.trouble_began(Trouble::Checkpoints, &e);
            }
        }
    }

    /// Waits for the running checkpoint write, if any, and ends it.
    pub(super) async fn finish_checkpoint(
        &mut self,
        consumer: &mut LogConsumer,
        cadence: &mut CommitCadence,
        shutdown: &CancellationToken,
    ) {
        if let Some(flight) = cadence.in_flight.as_mut() {
            let outcome = (&mut flight.write).await;
            self.end_checkpoint(consumer, cadence, outcome, shutdown)
                .await;
        }
    }

    /// The running round ended with `outcome`: outputs the producer gave up on are sent again
    /// first, the handler is told how its write ended, and the offsets are committed when it
    /// succeeded.
    pub(super) async fn end_checkpoint(
        &mut self,
        consumer: &mut LogConsumer,
        cadence: &mut CommitCadence,
        outcome: Result<RoundOutcome, tokio::task::JoinError>,
        shutdown: &CancellationToken,
    ) {
        let Some(flight) = cadence.in_flight.take() else {
            return;
        };
        let RoundOutcome { lost, written } = outcome.unwrap_or_else(|e| RoundOutcome {
            lost: Vec::new(),
            written: Err(HandlerError::infrastructure(format!(
                "checkpoint write did not complete: {e}"
            ))),
        });
        if flight.writes_state {
            self.handler
                .end_checkpoint(&flight.offsets, written.as_ref().map(|_| ()));
        }
        if !lost.is_empty() {
            // Sent again before anything newer can be checkpointed: the next round covers inputs
            // whose outputs these are.
            warn!(
                outputs = lost.len(),
                "outputs were not acknowledged; sending them again before the next checkpoint"
            );
            if !self.produce_until_acknowledged(lost, shutdown).await {
                self.outputs_lost = true;
            }
            self.unmarked.extend(flight.marks);
            cadence.timer_ran = true;
            return;
        }
        match written {
            Ok(()) => {
                self.trouble_ended(Trouble::Checkpoints);
                self.commit_offsets(consumer, cadence, &flight.offsets, flight.marks, shutdown)
                    .await;
            }
            Err(e) => {
                self.unmarked.extend(flight.marks);
                // Retried at the next round, even if no input comes.
                cadence.timer_ran = true;
                ProcessorStats::incr(&self.stats.checkpoint_failures, 1);
                error!(error = %e, unsaved = cadence.unsaved, "checkpoint failed; commit held back");
                self.trouble_began(Trouble::Checkpoints, &e);
            }
        }
    }

    /// The effects below `offsets` are durable: marks their inputs `marks` in the dedup store,
    /// then commits. Without the marks nothing is committed and the next round tries again; a
    /// process that stops first reads the inputs again, and a stateful handler's checkpointed
    /// offsets tell it they are already applied.
    pub(super) async fn commit_offsets(
        &mut self,
        consumer: &mut LogConsumer,
        cadence: &mut CommitCadence,
        offsets: &[CommitOffset],
        marks: Vec<EventId>,
        shutdown: &CancellationToken,
    ) {
        if !self
            .mark_processed(&marks, shutdown, self.config.retry.max_retries)
            .await
        {
            self.unmarked.extend(marks);
            warn!("dedup store unavailable; commit held back");
            return;
        }
        if offsets.is_empty() {
            cadence.unsaved = cadence.since_checkpoint;
            self.stats
                .unsaved
                .store(cadence.unsaved as u64, AtomicOrdering::Relaxed);
            return;
        }
        match consumer.commit(offsets) {
            Ok(()) => {
                cadence.pending.forget_committed(offsets);
                // What came in after the checkpoint began is still unsaved.
                cadence.unsaved = cadence.since_checkpoint;
                self.stats
                    .unsaved
                    .store(cadence.unsaved as u64, AtomicOrdering::Relaxed);
                ProcessorStats::incr(&self.stats.commits, 1);
            }
            // Keep them pending: the next commit (or the final one) covers them.
            Err(e) => warn!(error = %e, "commit failed; will retry"),
        }
    }

    /// Marks `marks` processed in the dedup store, all at once, retrying up to `retries` times
    /// with backoff (not past shutdown); `true` when all are marked. Marked ids stop being held
    /// locally.
    pub(super) async fn mark_processed(
        &mut self,
        marks: &[EventId],
        shutdown: &CancellationToken,
        retries: u32,
    ) -> bool {
        if marks.is_empty() {
            return true;
        }
        let mut attempt = 0;
        loop {
            match self
                .dedup
                .mark_all_processed(&self.group, marks, self.config.dedup_ttl)
                .await
            {
                Ok(()) => {
                    self.trouble_ended(Trouble::DedupStore);
                    break;
                }
                Err(e) => {
                    warn!(error = %e, attempt, marks = marks.len(), "dedup store unavailable; retrying marks");
                    if attempt >= ALERT_AFTER_ATTEMPTS {
                        self.trouble_began(Trouble::DedupStore, &e);
                    }
                    if attempt >= retries || self.backoff(&mut attempt, shutdown).await {
                        return false;
                    }
                }
            }
        }
        for id in marks {
            self.unmarked_ids.remove(id);
        }
        true
    }
}

/// A round running in the background: outputs awaited, then perhaps a snapshot written, and the
/// offsets it makes durable.
pub(super) struct InFlight {
    pub(super) offsets: Vec<CommitOffset>,
    /// The inputs below `offsets` still to be marked in the dedup store.
    pub(super) marks: Vec<EventId>,
    /// The handler returned a write (and is told how it ended); otherwise only outputs are awaited.
    pub(super) writes_state: bool,
    pub(super) write: tokio::task::JoinHandle<RoundOutcome>,
}

/// How a round ended.
pub(super) struct RoundOutcome {
    /// Outputs the producer gave up on, in the order they were sent; when there are any, the
    /// snapshot was not written.
    lost: Vec<OutgoingRecord>,
    /// How the snapshot's write ended (`Ok` when there was none).
    written: Result<(), HandlerError>,
}

/// Where a consumer stands between two commits: what it processed, how much and since when, and
/// the checkpoint write running, if any.
#[derive(Default)]
pub(super) struct CommitCadence {
    pub(super) pending: PendingOffsets,
    /// Records processed since the last durable checkpoint (see [`ProcessorConfig::max_unsaved`]).
    pub(super) unsaved: usize,
    /// A timer ran since the last checkpoint began: its changes to the state are due too.
    pub(super) timer_ran: bool,
    pub(super) since_checkpoint: usize,
    pub(super) first_since_checkpoint: Option<Instant>,
    pub(super) in_flight: Option<InFlight>,
}

/// The next offset of every partition processed since the last commit. A handful of partitions at
/// most, so a list searched from the most recent entry (the same topic `Arc` is found by pointer
/// first) beats hashing the topic name for every record.
#[derive(Debug, Default)]
pub(super) struct PendingOffsets {
    /// (topic, partition, next offset, the event just before it).
    entries: Vec<(Arc<str>, i32, i64, Option<EventId>)>,
}

impl PendingOffsets {
    pub(super) fn record(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        next_offset: i64,
        last_event_id: Option<EventId>,
    ) {
        let found = self
            .entries
            .iter_mut()
            .rev()
            .find(|(t, p, _, _)| *p == partition && (Arc::ptr_eq(t, topic) || **t == **topic));
        match found {
            // Never backwards: a record read again (a rejoin, a reset) does not undo progress.
            Some(entry) if next_offset > entry.2 => {
                entry.2 = next_offset;
                entry.3 = last_event_id;
            }
            Some(_) => {}
            None => self
                .entries
                .push((topic.clone(), partition, next_offset, last_event_id)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops the partitions that `committed` covers (those processed further stay).
    pub(super) fn forget_committed(&mut self, committed: &[CommitOffset]) {
        self.entries.retain(|(topic, partition, next, _)| {
            !committed
                .iter()
                .any(|c| c.partition == *partition && *c.topic == **topic && c.next_offset >= *next)
        });
    }

    pub(super) fn to_commit_offsets(&self) -> Vec<CommitOffset> {
        let mut offsets: Vec<CommitOffset> = self
            .entries
            .iter()
            .map(|(topic, partition, next, last)| CommitOffset {
                topic: topic.clone(),
                partition: *partition,
                next_offset: *next,
                last_event_id: *last,
            })
            .collect();
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        offsets
    }
}

/// How far this consumer has read each partition, so that a record the group hands over again
/// (a revocation and reassignment resumes at the committed offset, below what was processed) is
/// recognised by its position and not applied twice. Offsets never move backwards.
#[derive(Default)]
pub(super) struct ReadPositions {
    /// (topic, partition, next offset to read).
    next: Vec<(Arc<str>, i32, i64)>,
}

impl ReadPositions {
    fn position(&mut self, record: &Record) -> Option<&mut i64> {
        self.next
            .iter_mut()
            .find(|(t, p, _)| {
                *p == record.partition && (Arc::ptr_eq(t, &record.topic) || **t == *record.topic)
            })
            .map(|(_, _, next)| next)
    }

    pub(super) fn already_read(&mut self, record: &Record) -> bool {
        self.position(record)
            .is_some_and(|next| record.offset < *next)
    }

    pub(super) fn advance(&mut self, record: &Record) {
        let next = record.offset + 1;
        match self.position(record) {
            Some(at) => *at = (*at).max(next),
            None => self
                .next
                .push((record.topic.clone(), record.partition, next)),
        }
    }
}

/// A round's background part: every output in `outputs` acknowledged, then `write` run, failed as
/// infrastructure when it has not ended within `limit` (a database that hangs). The snapshot is
/// never written while an output of what it reflects may be missing from the log.
async fn acknowledged_then_written(
    outputs: Vec<Unacknowledged>,
    write: Option<CheckpointWrite>,
    limit: Duration,
) -> RoundOutcome {
    let lost = acknowledge(outputs).await;
    let written = match write {
        _ if !lost.is_empty() => Err(HandlerError::infrastructure(
            "outputs were not acknowledged; the checkpoint waits for them to be sent again",
        )),
        None => Ok(()),
        Some(write) => match tokio::time::timeout(limit, write).await {
            Ok(outcome) => outcome,
            Err(_) => Err(HandlerError::infrastructure(format!(
                "checkpoint write did not end within {limit:?}; the database may be down or \
                 locked"
            ))),
        },
    };
    RoundOutcome { lost, written }
}
