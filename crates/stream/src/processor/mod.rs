//! The processor runtime: the only code that consumes, commits and publishes on behalf of services.
//!
//! For each record: decode → dedup → handle → hand outputs to the log → mark processed → commit
//! (batched; a commit only ever covers records whose effects are done, their outputs acknowledged
//! first, see [`publish`]). Marks reach the dedup store just before the commit that covers their
//! inputs, when a stateful handler's effects are durable; until then the runtime recognises
//! duplicates itself. A last-value record that a later one of the same key in the fetched batch
//! supersedes is left out when the handler conflates its type (see [`crate::conflation`]). A
//! stateful handler's checkpoint is written in the background while records keep flowing, and the
//! offsets it covers are committed when it is durable. Poison goes straight to `{topic}.dlq`;
//! transient and infrastructure failures are retried with backoff and jitter, without committing,
//! until the retry budget sends the input to the DLQ (infrastructure failures — a dependency down —
//! are waited for without a budget). Shutdown stops taking input, finishes the record in flight,
//! runs the handler's last words, commits, and leaves the group.
//!
//! This file is the consume loop and the handling of one record; [`commit`] holds the commit and
//! checkpoint discipline, [`publish`] how outputs reach the log, [`conflate`] how a batch of bytes
//! is conflated once decoded, [`alerts`] what is raised while a dependency is away,
//! [`dead_letter`] how an input reaches its DLQ, and [`look`] how the loop looks up from a fetched
//! batch (the loop's speed tricks).

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    Clock, DedupStore, Envelope, ErrorClass, EventId, EventType, Timestamp, TopicMap,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rustc_hash::FxHasher;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, debug_span, error, info, info_span, warn, Instrument};

use crate::conflation::{Conflation, Marks};
use crate::dlq::replay_group;
use crate::handler::{Handler, HandlerError, Input};
use crate::identity::LogIdentity;
use crate::kafka::Anchor;
use crate::log::{Log, Unacknowledged};
use crate::record::{Record, RecordValue};
use crate::retry::RetryPolicy;
use crate::stats::ProcessorStats;
use crate::LogError;

mod alerts;
mod commit;
mod conflate;
mod dead_letter;
mod look;
mod publish;

use alerts::{Trouble, ALERT_AFTER_ATTEMPTS};
use commit::{CommitCadence, ReadPositions};
use look::{Looks, StopFlag};

/// How long shutdown waits for a handler's last outputs to be acknowledged.
const SHUTDOWN_PUBLISH_LIMIT: Duration = Duration::from_secs(15);

/// Runtime settings of one processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Retry budget and backoff.
    pub retry: RetryPolicy,
    /// How long a processed id is remembered.
    pub dedup_ttl: Duration,
    /// Commit after this many processed records…
    pub commit_batch: usize,
    /// …or this long after the first uncommitted one, whichever comes first (and whenever idle).
    pub commit_interval: Duration,
    /// How often consumer lag is measured.
    pub lag_interval: Duration,
    /// How long one poll waits before the loop looks at timers and commits.
    pub poll_timeout: Duration,
    /// Seed of the backoff jitter.
    pub jitter_seed: u64,
    /// A checkpoint write that has not ended after this long is abandoned as failed: its commit
    /// is held back and the next round writes again.
    pub checkpoint_timeout: Duration,
    /// Records processed and not yet covered by a durable checkpoint beyond which the processor
    /// takes no more input until a checkpoint succeeds: what a failing database may cost in
    /// memory (queued effects, unmarked ids) is bounded, and so is what a crash re-reads.
    pub max_unsaved: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            dedup_ttl: Duration::from_secs(7 * 24 * 3600),
            commit_batch: 10_000,
            commit_interval: Duration::from_millis(200),
            lag_interval: Duration::from_secs(5),
            poll_timeout: Duration::from_millis(100),
            jitter_seed: 0x5eed,
            checkpoint_timeout: Duration::from_secs(30),
            max_unsaved: 1_000_000,
        }
    }
}

/// Why a processor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The consumer could not be created or the final commit failed.
    #[error("processor {service}: {source}")]
    Log {
        /// Service.
        service: String,
        /// Cause.
        #[source]
        source: LogError,
    },
    /// The handler reported that it must stop (see [`Handler::health`]).
    #[error("processor {service} stopped: {reason}; start it again to take over as the writer once the other instance has gone")]
    Unhealthy {
        /// Service.
        service: String,
        /// What the handler said.
        reason: String,
    },
}

enum Outcome {
    /// Effects are done (or the input was dead-lettered / skipped): commit it.
    Done,
    /// Shutdown arrived mid-retry: do not commit; the input is read again after restart.
    Aborted,
}

/// Runs one [`Handler`].
pub struct Processor<H: Handler> {
    handler: H,
    log: Log,
    dedup: Arc<dyn DedupStore>,
    clock: Arc<dyn Clock>,
    config: ProcessorConfig,
    stats: Arc<ProcessorStats>,
    group: String,
    service: Arc<str>,
    rng: StdRng,
    /// Inputs handled but not yet marked in the dedup store, in order. They are marked only once
    /// the offsets covering them are committed: a stateful handler's effects become durable with
    /// its checkpoint, and an input marked before that would be skipped, and lost, if the process
    /// died first and the input was read again.
    unmarked: Vec<EventId>,
    /// The same ids, looked up for duplicates that arrive before they are marked.
    unmarked_ids: HashSet<EventId, BuildHasherDefault<FxHasher>>,
    /// The event type each consumed topic carries (`None` for a topic outside the topic map).
    expected_types: Vec<(Arc<str>, Option<EventType>)>,
    /// Since when each [`Trouble`] lasts, while it does: an alert was raised then, and one
    /// clears it when the trouble is over.
    troubled_since: [Option<Timestamp>; Trouble::COUNT],
    /// Alerts being published; shutdown waits a little for them.
    alerts_in_flight: Vec<tokio::task::JoinHandle<()>>,
    /// Outputs handed to the log whose acknowledgements are still to come (see [`publish`]).
    unacknowledged: Vec<Unacknowledged>,
    /// Set when outputs could not all be acknowledged before shutdown: the handler's state then
    /// holds effects the log may not have, so none of it may be checkpointed.
    outputs_lost: bool,
}

impl<H: Handler> Processor<H> {
    /// A processor for `handler` on `log`.
    pub fn new(
        handler: H,
        log: Log,
        dedup: Arc<dyn DedupStore>,
        clock: Arc<dyn Clock>,
        config: ProcessorConfig,
    ) -> Self {
        let service: Arc<str> = Arc::from(handler.name());
        let rng = StdRng::seed_from_u64(config.jitter_seed);
        Self {
            group: handler.consumer_group(),
            service,
            handler,
            log,
            dedup,
            clock,
            config,
            stats: Arc::new(ProcessorStats::default()),
            rng,
            unmarked: Vec::new(),
            unmarked_ids: HashSet::default(),
            expected_types: Vec::new(),
            troubled_since: [None; Trouble::COUNT],
            alerts_in_flight: Vec::new(),
            unacknowledged: Vec::new(),
            outputs_lost: false,
        }
    }

    /// The live counters (share them before calling [`Processor::run`]).
    pub fn stats(&self) -> Arc<ProcessorStats> {
        self.stats.clone()
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Runs until `shutdown` is cancelled, then returns the handler.
    ///
    /// # Errors
    /// [`ProcessorError`] when the consumer cannot be created or the final commit fails.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<H, ProcessorError> {
        let topics = self.handler.topics();
        let span = info_span!("processor", service = %self.service, broker = self.handler.broker().as_str());
        async move {
            if topics.is_empty() {
                // A service that consumes nothing gets no consumer loop: only its timer, if any.
                self.run_timers_only(&shutdown).await;
            } else {
                self.run_consumer(&topics, &shutdown).await?;
            }
            Ok(self.handler)
        }
        .instrument(span)
        .await
    }

    async fn run_timers_only(&mut self, shutdown: &CancellationToken) {
        if let Some(period) = self.handler.timer_interval() {
            let mut timer = tokio::time::interval(period);
            timer.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = timer.tick() => {
                        if !self.on_timer(shutdown).await || !self.settle(shutdown).await {
                            // Nothing is checkpointed here; the last words would speak of a
                            // state whose outputs never reached the log.
                            return;
                        }
                    }
                }
            }
        } else {
            shutdown.cancelled().await;
        }
        self.on_shutdown().await;
    }

    async fn run_consumer(
        &mut self,
        topics: &[String],
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let Some(identity) = self.log_identity(shutdown).await else {
            return Ok(());
        };
        let foreign = self.foreign_partitions(shutdown).await;
        self.handler.attach_log(&identity, &foreign);
        self.expected_types = topics
            .iter()
            .map(|t| (Arc::from(t.as_str()), TopicMap::event_type_of(t)))
            .collect();
        let mut consumer =
            self.log
                .consumer(&self.group, topics)
                .map_err(|source| ProcessorError::Log {
                    service: self.service.to_string(),
                    source,
                })?;
        info!(group = %self.group, ?topics, "consuming");
        let mut cadence = CommitCadence::default();
        let timer_period = self.handler.timer_interval();
        let mut timer = timer_period.map(|period| {
            let mut t = tokio::time::interval_at(Instant::now() + period, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        // When the timer is next expected: between buffered records the loop looks at the timer
        // only from then on, instead of polling it for every record.
        let mut timer_due = timer_period.map(|period| Instant::now() + period);
        let mut lag_due = Instant::now();
        let mut poll_failures = 0u32;
        let lag_probe = consumer.lag_probe();
        // Aborted with this loop, even when the loop itself is dropped rather than shut down: the
        // probe holds the consumer, which must leave the group when the loop is gone.
        let lag_task = lag_probe.map(|probe| {
            let stats = self.stats.clone();
            let period = self.config.lag_interval;
            let stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    match probe.lag().await {
                        Ok(lag) => stats.set_lag(lag),
                        Err(e) => debug!(error = %e, "lag unavailable"),
                    }
                    if sleep_or_shutdown(period, &stop).await {
                        break;
                    }
                }
            })
        });
        let lag_task = lag_task.map(AbortOnDrop);
        let stopping = StopFlag::watch(shutdown);

        // Set when an input's or a timer's outputs could not be published before shutdown: the
        // handler's state then holds effects the log never saw, so none of it may be checkpointed.
        let mut aborted = false;
        let mut unhealthy: Option<String> = None;
        let mut read = ReadPositions::default();
        let mut marks = Marks::default();
        'consume: loop {
            if let Err(reason) = self.handler.health() {
                unhealthy = Some(reason);
                break;
            }
            if lag_task.is_none() && Instant::now() >= lag_due {
                lag_due = Instant::now() + self.config.lag_interval;
                match consumer.lag().await {
                    Ok(lag) => self.stats.set_lag(lag),
                    Err(e) => debug!(error = %e, "lag unavailable"),
                }
            }
            if cadence.unsaved >= self.config.max_unsaved {
                // The state cannot be saved: take no more input until it can.
                if self.hold_back(&mut consumer, &mut cadence, shutdown).await {
                    break;
                }
                continue;
            }
            // Asked afresh before every poll: a handler's answer may change with its state.
            let conflation = Conflation::of(|event_type| self.handler.conflates(event_type));
            let polled = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                outcome = async {
                    (&mut cadence.in_flight.as_mut().expect("guarded").write).await
                }, if cadence.in_flight.is_some() => {
                    self.end_checkpoint(&mut consumer, &mut cadence, outcome, shutdown).await;
                    continue;
                }
                _ = async { timer.as_mut().expect("guarded").tick().await }, if timer.is_some() => {
                    timer_due = timer_period.map(|period| Instant::now() + period);
                    if !self.on_timer(shutdown).await {
                        aborted = true;
                        break;
                    }
                    cadence.timer_ran = true;
                    self.begin_checkpoint(&mut consumer, &mut cadence, shutdown).await;
                    continue;
                }
                polled = consumer.poll_conflating(self.config.poll_timeout, conflation) => polled,
            };
            match polled {
                Err(e) => {
                    warn!(error = %e, "poll failed; backing off");
                    let delay = self.config.retry.backoff(poll_failures, &mut self.rng);
                    poll_failures = poll_failures.saturating_add(1);
                    if sleep_or_shutdown(delay, shutdown).await {
                        break;
                    }
                }
                Ok(None) => {
                    // Idle: whatever was processed is due now.
                    self.begin_checkpoint(&mut consumer, &mut cadence, shutdown)
                        .await;
                }
                Ok(Some(record)) => {
                    poll_failures = 0;
                    // Bytes are conflated here, once decoded, where the consumer holds them; the
                    // memory log conflated its own typed records while fetching them.
                    let mut skipped = consumer.take_conflated();
                    let record = match consumer.buffered_bytes() {
                        Some(batch) if !conflation.is_none() => {
                            batch.push_front(record);
                            skipped += self.conflate_fetched(batch, conflation, &mut marks);
                            batch.pop_front().expect("a batch keeps its last record")
                        }
                        _ => record,
                    };
                    // Superseded records were left out: they count as read, and a later record of
                    // their partition, always handed over, commits them.
                    if skipped > 0 {
                        ProcessorStats::incr(&self.stats.events_in, skipped);
                        ProcessorStats::incr(&self.stats.conflated, skipped);
                        cadence.since_checkpoint += skipped as usize;
                        cadence.unsaved += skipped as usize;
                    }
                    // Work through the records this poll fetched without going back to the select
                    // for each; shutdown and a finished checkpoint write are still looked at
                    // between every two records, the timer and the commit cadence when `looks`
                    // says (see [`look`]).
                    let mut next = Some(record);
                    let mut looks = Looks::new();
                    while let Some(record) = next {
                        if read.already_read(&record) {
                            // Handed over again after a rebalance: its effects are in the state
                            // already (one writer per state), and applying them twice would
                            // double them.
                            ProcessorStats::incr(&self.stats.reread, 1);
                            next = consumer.next_buffered();
                            continue;
                        }
                        read.advance(&record);
                        if let Outcome::Aborted = self.process(&record, shutdown).await {
                            aborted = true;
                            break 'consume;
                        }
                        cadence.pending.record(
                            &record.topic,
                            record.partition,
                            record.offset + 1,
                            record.event_id(),
                        );
                        cadence.since_checkpoint += 1;
                        cadence.unsaved += 1;
                        self.stats
                            .unsaved
                            .store(cadence.unsaved as u64, AtomicOrdering::Relaxed);
                        if cadence
                            .in_flight
                            .as_ref()
                            .is_some_and(|flight| flight.write.is_finished())
                        {
                            self.finish_checkpoint(&mut consumer, &mut cadence, shutdown)
                                .await;
                        }
                        if stopping.is_set() {
                            break 'consume;
                        }
                        if let Err(reason) = self.handler.health() {
                            unhealthy = Some(reason);
                            break 'consume;
                        }
                        if cadence.unsaved >= self.config.max_unsaved {
                            // Back to the top, where input waits for a checkpoint; what this
                            // batch has not handled yet the consumer still holds, to hand over
                            // again.
                            break;
                        }
                        let Some(at) =
                            looks.due(cadence.since_checkpoint >= self.config.commit_batch)
                        else {
                            next = consumer.next_buffered();
                            continue;
                        };
                        let since = *cadence.first_since_checkpoint.get_or_insert(at);
                        if cadence.since_checkpoint >= self.config.commit_batch
                            || at.duration_since(since) >= self.config.commit_interval
                        {
                            self.begin_checkpoint(&mut consumer, &mut cadence, shutdown)
                                .await;
                        }
                        if timer_due.is_some_and(|due| at >= due)
                            && timer.as_mut().is_some_and(look::ticked)
                        {
                            timer_due = timer_period.map(|period| Instant::now() + period);
                            if !self.on_timer(shutdown).await {
                                aborted = true;
                                break 'consume;
                            }
                            cadence.timer_ran = true;
                            self.begin_checkpoint(&mut consumer, &mut cadence, shutdown)
                                .await;
                        }
                        next = consumer.next_buffered();
                    }
                }
            }
        }

        drop(lag_task);
        aborted |= self.outputs_lost;
        if let Some(reason) = unhealthy {
            // Another instance writes this state now: nothing of this one may be saved or
            // committed; what it did since its last checkpoint is read again by the writer.
            error!(%reason, "stopping without a checkpoint");
            if let Some(flight) = cadence.in_flight.take() {
                flight.write.abort();
            }
            let _ = consumer.close(&[]).await;
            return Err(ProcessorError::Unhealthy {
                service: self.service.to_string(),
                reason,
            });
        }
        // A round begun earlier writes its snapshot only once the outputs it covers are
        // acknowledged: it may end and commit what it covers, aborted or not. (Outputs it finds
        // lost get one more attempt now that shutdown has come; failing that, nothing more is
        // saved and the inputs are read again.)
        self.finish_checkpoint(&mut consumer, &mut cadence, shutdown)
            .await;
        let offsets = if aborted {
            warn!(
                "outputs were not published before shutdown; the state since the last checkpoint \
                 is not saved and its inputs are read again on restart"
            );
            Vec::new()
        } else {
            match self.on_shutdown().await {
                Some(spoken) => {
                    // Last words may change the state as a timer does (a final snapshot).
                    cadence.timer_ran |= spoken > 0;
                    self.final_checkpoint(&cadence).await
                }
                None => {
                    warn!(
                        "the last words were not published in time; the state since the last \
                         checkpoint is not saved and its inputs are read again on restart"
                    );
                    Vec::new()
                }
            }
        };
        consumer
            .close(&offsets)
            .await
            .map_err(|source| ProcessorError::Log {
                service: self.service.to_string(),
                source,
            })?;
        self.flush_alerts().await;
        self.handler.leave().await;
        info!("stopped; offsets committed");
        Ok(())
    }

    /// The event type `topic` carries, when the topic map knows it.
    fn expected_type_of(&self, topic: &Arc<str>) -> Option<EventType> {
        self.expected_types
            .iter()
            .find(|(t, _)| Arc::ptr_eq(t, topic) || **t == **topic)
            .and_then(|(_, expected)| *expected)
    }

    /// Why `envelope` does not belong on `topic` for this handler, if it does not: a type other
    /// than the one the topic carries, or an event of another namespace than the handler's.
    fn misplaced(&self, topic: &Arc<str>, envelope: &Envelope) -> Option<String> {
        let found = envelope.event_type();
        if let Some(expected) = self
            .expected_type_of(topic)
            .filter(|expected| *expected != found)
        {
            return Some(format!(
                "an event of type {found} on {topic}, which carries {expected} events only"
            ));
        }
        let namespace = self.handler.broker().namespace()?;
        let own = alpha_panda_core::EventBroker::from(namespace);
        if envelope.broker != own && envelope.broker != alpha_panda_core::EventBroker::Shared {
            return Some(format!(
                "an event of the {} namespace reached the {namespace} {} service",
                envelope.broker.as_str(),
                self.service
            ));
        }
        None
    }

    /// The partitions of the handler's checkpoint whose last event is no longer where the
    /// checkpoint left it: a topic deleted and created again under the same name, on the same
    /// cluster. A record removed by retention proves nothing and is trusted.
    async fn foreign_partitions(&mut self, shutdown: &CancellationToken) -> Vec<(String, i32)> {
        let mut foreign = Vec::new();
        // A memory log is new in every process: its identity alone tells it from the last one.
        if !matches!(self.log, Log::Kafka(_)) {
            return foreign;
        }
        for anchor in self.handler.checkpoint_anchors() {
            let mut attempt = 0;
            let found = loop {
                match self
                    .log
                    .event_id_at(&anchor.topic, anchor.partition, anchor.next_offset - 1)
                    .await
                {
                    Ok(found) => break found,
                    Err(e) => {
                        warn!(error = %e, topic = %anchor.topic, "checkpoint anchor unreadable; retrying");
                        if self.backoff(&mut attempt, shutdown).await {
                            return foreign;
                        }
                    }
                }
            };
            match found {
                Anchor::Found(Some(id)) if id == anchor.last_event_id => {}
                Anchor::Gone => {}
                Anchor::Found(other) => {
                    warn!(
                        topic = %anchor.topic,
                        partition = anchor.partition,
                        offset = anchor.next_offset - 1,
                        expected = %anchor.last_event_id,
                        found = ?other,
                        "the checkpoint's last event is not in this topic: it was created anew"
                    );
                    foreign.push((anchor.topic, anchor.partition));
                }
            }
        }
        foreign
    }

    /// The identity of the log, asked until it answers (a broker that is not up yet); `None` when
    /// shutdown came first.
    async fn log_identity(&mut self, shutdown: &CancellationToken) -> Option<LogIdentity> {
        let mut attempt = 0;
        loop {
            match self.log.identity().await {
                Ok(identity) => return Some(identity),
                Err(e) => {
                    warn!(error = %e, attempt, "log identity unavailable; retrying");
                    if self.backoff(&mut attempt, shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn process(&mut self, record: &Record, shutdown: &CancellationToken) -> Outcome {
        ProcessorStats::incr(&self.stats.events_in, 1);
        // A replayed record is for one group (or `*`): the others had handled it already.
        let replay_for = replay_group(&record.headers);
        let replayed = replay_for.is_some();
        if replay_for.is_some_and(|group| group != "*" && group != self.group) {
            debug!(topic = %record.topic, offset = record.offset, "replay for another group; passed over");
            return Outcome::Done;
        }
        let now = self.clock.now();
        self.stats.touch(now);
        // A typed record is read in place; only bytes are decoded into an envelope of our own.
        let decoded;
        let envelope: &Envelope = match &record.value {
            RecordValue::Event(e) => e,
            RecordValue::Bytes(bytes) => match Envelope::from_json(bytes) {
                Ok(e) => {
                    decoded = e;
                    &decoded
                }
                Err(err) => {
                    warn!(topic = %record.topic, partition = record.partition, offset = record.offset,
                        error = %err, "undecodable record; dead-lettering");
                    return self
                        .dead_letter(record, None, err.class(), err.to_string(), 0, shutdown)
                        .await;
                }
            },
        };
        // An event that does not belong where it was found (the wrong type for its topic, another
        // namespace's event) would be applied as if it did: poison.
        if let Some(reason) = self.misplaced(&record.topic, envelope) {
            warn!(topic = %record.topic, partition = record.partition, offset = record.offset,
                event_id = %envelope.id, %reason, "misplaced event; dead-lettering");
            return self
                .dead_letter(
                    record,
                    Some(envelope),
                    ErrorClass::Poison,
                    reason,
                    0,
                    shutdown,
                )
                .await;
        }
        // A payload with impossible figures would make a handler divide by zero or overflow: it is
        // poison, whichever service reads it.
        if let Err(reason) = envelope.payload.check_plausible() {
            warn!(topic = %record.topic, partition = record.partition, offset = record.offset,
                event_id = %envelope.id, %reason, "implausible payload; dead-lettering");
            return self
                .dead_letter(
                    record,
                    Some(envelope),
                    ErrorClass::Poison,
                    format!("implausible {}: {reason}", envelope.event_type()),
                    0,
                    shutdown,
                )
                .await;
        }
        // Ticks are the bulk of the traffic and are root events that rarely log: their span is
        // kept at debug level so that recording its fields does not dominate the hot path. Every
        // other event carries its correlation into every log line at info.
        let span = if envelope.event_type() == EventType::MarketTick {
            debug_span!(
                "handle",
                event_id = %envelope.id,
                event_type = envelope.event_type().as_str(),
                correlation_id = %envelope.correlation_id,
            )
        } else {
            info_span!(
                "handle",
                event_id = %envelope.id,
                event_type = envelope.event_type().as_str(),
                correlation_id = %envelope.correlation_id,
                causation_id = envelope.causation_id.map(|c| c.to_string()).unwrap_or_default(),
            )
        };
        self.process_envelope(record, envelope, now, replayed, shutdown)
            .instrument(span)
            .await
    }

    /// Dedup → handle → publish → mark processed. `now` is the clock read when the record was
    /// taken; a retried handler gets a fresh one. A `replayed` record is always deduplicated, even
    /// of a type (a tick) that usually is not: a replay must not apply a tick twice to indicators.
    async fn process_envelope(
        &mut self,
        record: &Record,
        envelope: &Envelope,
        now: Timestamp,
        replayed: bool,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let deduplicate = replayed || self.handler.deduplicate(envelope.event_type());
        if deduplicate && self.unmarked_ids.contains(&envelope.id) {
            debug!("duplicate of an input not yet committed; skipped");
            ProcessorStats::incr(&self.stats.duplicates, 1);
            return Outcome::Done;
        }
        if deduplicate {
            let mut attempt = 0;
            loop {
                match self.dedup.is_processed(&self.group, envelope.id).await {
                    Ok(true) => {
                        debug!("duplicate; skipped");
                        ProcessorStats::incr(&self.stats.duplicates, 1);
                        return Outcome::Done;
                    }
                    Ok(false) => {
                        if attempt > 0 {
                            self.trouble_ended(Trouble::DedupStore);
                        }
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, attempt, "dedup store unavailable; retrying");
                        if attempt >= ALERT_AFTER_ATTEMPTS {
                            self.trouble_began(Trouble::DedupStore, &e);
                        }
                        if self.backoff(&mut attempt, shutdown).await {
                            return Outcome::Aborted;
                        }
                    }
                }
            }
        }

        let position = record.position();
        let mut attempt = 0u32;
        let started = std::time::Instant::now();
        let outputs = loop {
            let input = Input {
                envelope,
                position: &position,
                now: if attempt == 0 { now } else { self.clock.now() },
            };
            match self.handler.handle(input).await {
                Ok(outputs) => {
                    if attempt > 0 {
                        self.trouble_ended(Trouble::Dependency);
                    }
                    break outputs;
                }
                // A dependency that is down (the database, the cache, the venue) is no fault of
                // the input: it is waited for, however long, and the input is never dead-lettered
                // for it. Only a transient failure has a budget.
                Err(e) if e.class == ErrorClass::Infrastructure => {
                    warn!(error = %e.message, attempt, "a dependency is down; waiting for it");
                    if attempt >= ALERT_AFTER_ATTEMPTS {
                        self.trouble_began(Trouble::Dependency, &e.message);
                    }
                    if self.backoff(&mut attempt, shutdown).await {
                        return Outcome::Aborted;
                    }
                }
                Err(e) if e.class.is_retryable() && attempt < self.config.retry.max_retries => {
                    warn!(error = %e.message, class = %e.class, attempt, "handler failed; retrying");
                    if self.backoff(&mut attempt, shutdown).await {
                        return Outcome::Aborted;
                    }
                }
                Err(HandlerError { class, message }) => {
                    error!(error = %message, %class, retries = attempt, "dead-lettering input");
                    return self
                        .dead_letter(record, Some(envelope), class, message, attempt, shutdown)
                        .await;
                }
            }
        };
        self.stats.handler_latency.observe(started.elapsed());

        if !outputs.is_empty() {
            let records = self.wrap(Some(envelope), outputs);
            if !self.publish(records, shutdown).await {
                return Outcome::Aborted;
            }
        }

        if deduplicate {
            // Marked in the store when the commit covering it is due (see `commit_offsets`).
            self.unmarked.push(envelope.id);
            self.unmarked_ids.insert(envelope.id);
        }
        Outcome::Done
    }

    /// Sleeps the backoff for `attempt` and counts a retry; `true` when shutdown came first.
    async fn backoff(&mut self, attempt: &mut u32, shutdown: &CancellationToken) -> bool {
        ProcessorStats::incr(&self.stats.retries, 1);
        let delay = self.config.retry.backoff(*attempt, &mut self.rng);
        *attempt = attempt.saturating_add(1);
        sleep_or_shutdown(delay, shutdown).await
    }

    /// Runs the handler's timer and publishes its outputs; `false` when shutdown interrupted the
    /// publish, so that the state the timer changed is never checkpointed without them.
    async fn on_timer(&mut self, shutdown: &CancellationToken) -> bool {
        let now = self.clock.now();
        match self.handler.on_timer(now).await {
            Ok(outputs) => {
                let records = self.wrap(None, outputs);
                self.publish(records, shutdown).await
            }
            Err(e) => {
                warn!(error = %e, "timer handler failed");
                true
            }
        }
    }

    /// Runs the handler's last words and publishes them, and waits for every output still
    /// unacknowledged, retrying within [`SHUTDOWN_PUBLISH_LIMIT`]: how many last words were
    /// published, or `None` when not every output could be.
    async fn on_shutdown(&mut self) -> Option<usize> {
        let now = self.clock.now();
        let (spoken, records) = match self.handler.on_shutdown(now).await {
            Ok(outputs) => (outputs.len(), self.wrap(None, outputs)),
            Err(e) => {
                warn!(error = %e, "shutdown handler failed");
                (0, Vec::new())
            }
        };
        // Shutdown is already under way: give the last words, and the outputs still waiting for
        // their acknowledgements, a bounded time of their own.
        let deadline = CancellationToken::new();
        let guard = deadline.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(SHUTDOWN_PUBLISH_LIMIT).await;
            guard.cancel();
        });
        let published = self.publish(records, &deadline).await && self.settle(&deadline).await;
        if !published {
            error!("final outputs could not be published before the shutdown limit");
        }
        timer.abort();
        published.then_some(spoken)
    }
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sleeps, unless shutdown comes first (then returns `true`).
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}
