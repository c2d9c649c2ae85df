//! Durable state with its offsets (ARCHITECTURE §4 rule 4) for the stateful services.
//!
//! A service keeps its state in memory, marks it changed as it handles inputs, and queues the ledger
//! effects those inputs produced. When the runtime is about to commit offsets it calls the handler's
//! `begin_checkpoint`: [`Durable::begin_save`] serializes the state there and then, and returns a
//! [`SaveWrite`] that writes the queued effects, the state and the offsets it reflects in one
//! transaction while the service keeps processing; the runtime commits the offsets once it is done. After a crash the service resumes from that state and skips every
//! input below the saved offsets ([`Durable::already_applied`]): their effects are in the state and
//! their outputs were published before the checkpoint was written — provided they are offsets of
//! the same log ([`Durable::attach_log`]; ARCHITECTURE §4 rule 5).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use alpha_panda_core::{Broker, EventId, OrderFilled, PnlSnapshot, Timestamp};
use alpha_panda_store::{
    Checkpoint, CheckpointOffset, OrderRecord, Store, StoreError, ValidationStatus,
};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, HandlerError, LogIdentity, PartitionAnchor, RecordPosition,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{error, info, warn};

/// A ledger write that must become durable together with the state that reflects it.
#[derive(Debug, Clone)]
pub enum Effect {
    /// An order lifecycle event.
    Order {
        /// Namespace.
        broker: Broker,
        /// The order event's id (idempotency key).
        event_id: EventId,
        /// The record.
        record: OrderRecord,
    },
    /// A fill.
    Fill {
        /// Namespace.
        broker: Broker,
        /// The fill event's id (idempotency key).
        event_id: EventId,
        /// The fill.
        fill: Box<OrderFilled>,
    },
    /// A PnL snapshot with its validation verdict.
    Snapshot {
        /// The snapshot event's id (idempotency key).
        event_id: EventId,
        /// The snapshot.
        snapshot: Box<PnlSnapshot>,
        /// The verdict.
        status: ValidationStatus,
    },
}

/// The persistence side of one stateful service instance.
pub struct Durable {
    store: Store,
    service_key: String,
    /// Next offset per topic and partition that the saved state reflects, with the event just
    /// before it.
    applied: BTreeMap<String, BTreeMap<i32, (i64, Option<EventId>)>>,
    dirty: bool,
    effects: Vec<Effect>,
    /// Effects carried by the save being written.
    in_flight: Vec<Effect>,
    last_input_at: Option<Timestamp>,
    /// The log `applied` belongs to: the saved checkpoint's until the runtime attaches the log it
    /// reads, then that one.
    log: Option<String>,
    /// Fills a save found already in the ledger: a fill applied twice to the state, which the
    /// ledger's idempotent insert would otherwise hide.
    ledger_duplicates: Arc<AtomicU64>,
    /// This instance's lease of `service_key`: it alone may save the state.
    lease: Lease,
}

/// The lease a [`Durable`] holds while it lives (ARCHITECTURE §4 rule 6), renewed in the
/// background and by every save. Once it is lost, nothing more is saved and the service reports
/// itself unhealthy, so that the runtime stops it.
struct Lease {
    holder: String,
    ttl: std::time::Duration,
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
    store: Store,
    service_key: String,
    released: bool,
}

impl Lease {
    async fn release(&mut self) {
        self.renewal.abort();
        if self.released {
            return;
        }
        self.released = true;
        if let Err(e) = self
            .store
            .leases()
            .release(&self.service_key, &self.holder)
            .await
        {
            warn!(service = %self.service_key, error = %e, "could not release the lease; it lapses");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.released {
            return;
        }
        // Given up, so that a standby need not wait for it to lapse (best effort: a process that
        // exits first, or is killed, leaves it to lapse).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, key, holder) = (
                self.store.clone(),
                self.service_key.clone(),
                self.holder.clone(),
            );
            runtime.spawn(async move {
                if let Err(e) = store.leases().release(&key, &holder).await {
                    warn!(service = %key, error = %e, "could not release the lease; it lapses");
                }
            });
        }
    }
}

/// This process's identity, the prefix of its instances' lease holder names: a service reopened in
/// the same process (a test, a restart of one task) takes the lease over from its earlier instance
/// at once, while another process waits until the lease lapses.
fn process_holder() -> &'static str {
    static HOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOLDER.get_or_init(|| format!("pid {} ({})", std::process::id(), uuid::Uuid::now_v7()))
}

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

fn later(ttl: std::time::Duration) -> Timestamp {
    let micros = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(now().unix_micros().saturating_add(micros)).unwrap_or_else(now)
}

impl Lease {
    /// Takes the lease of `service_key`, waiting as a standby while another instance holds it.
    async fn take(store: &Store, service_key: &str) -> Result<Self, StoreError> {
        let holder = format!("{} #{}", process_holder(), uuid::Uuid::now_v7());
        let ttl = store.lease_ttl();
        let mut announced = false;
        while let Some(current) = store
            .leases()
            .try_acquire(service_key, &holder, process_holder(), now(), later(ttl))
            .await?
        {
            if !announced {
                info!(
                    service = %service_key,
                    holder = %current.holder,
                    until = %current.expires_at,
                    "another instance is the writer; waiting as a standby until its lease lapses"
                );
                announced = true;
            }
            tokio::time::sleep(ttl / 4).await;
        }
        if announced {
            info!(service = %service_key, "the lease is ours: taking over");
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew_until_lost(
            store.clone(),
            service_key.to_string(),
            holder.clone(),
            ttl,
            lost.clone(),
        ));
        Ok(Self {
            holder,
            ttl,
            lost,
            renewal,
            store: store.clone(),
            service_key: service_key.to_string(),
            released: false,
        })
    }
}

/// Renews the lease every quarter of its time to live, until another instance holds it.
async fn renew_until_lost(
    store: Store,
    service_key: String,
    holder: String,
    ttl: std::time::Duration,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(ttl / 4).await;
        match store
            .leases()
            .renew(&service_key, &holder, later(ttl))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                error!(
                    service = %service_key,
                    "the lease lapsed and another instance took it; this one stops writing"
                );
                lost.store(true, Ordering::Release);
                return;
            }
            // The database is away: so it is for any other instance; the checkpoints retry.
            Err(e) => warn!(service = %service_key, error = %e, "could not renew the lease"),
        }
    }
}

/// A store failure as the runtime sees it: retried (infrastructure) or dead-lettered (poison).
pub fn store_error(context: &str, error: StoreError) -> HandlerError {
    HandlerError {
        class: error.class(),
        message: format!("{context}: {error}"),
    }
}

impl Durable {
    /// Opens the checkpoint of `service_key`, returning the saved state when there is one.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read or its state no longer decodes.
    pub async fn open<S: DeserializeOwned>(
        store: Store,
        service_key: impl Into<String>,
    ) -> Result<(Self, Option<S>), StoreError> {
        let service_key = service_key.into();
        // The writer's lease first: its checkpoint is read only once no other instance can
        // write it any more.
        let lease = Lease::take(&store, &service_key).await?;
        let checkpoint = store.checkpoints().load(&service_key).await?;
        let (applied, log, state) = match checkpoint {
            Some(checkpoint) => {
                let state: S =
                    serde_json::from_value(checkpoint.state).map_err(|e| StoreError::Decode {
                        operation: "load checkpoint",
                        column: "state",
                        detail: format!(
                            "the checkpoint of {service_key} does not match this version's state \
                             ({e}); delete its row in service_checkpoints to start afresh"
                        ),
                    })?;
                let mut applied: BTreeMap<String, BTreeMap<i32, (i64, Option<EventId>)>> =
                    BTreeMap::new();
                for o in checkpoint.offsets {
                    applied
                        .entry(o.topic)
                        .or_default()
                        .insert(o.partition, (o.next_offset, o.last_event_id));
                }
                (applied, checkpoint.log_identity, Some(state))
            }
            None => (BTreeMap::new(), None, None),
        };
        Ok((
            Self {
                store,
                service_key,
                applied,
                dirty: false,
                effects: Vec::new(),
                in_flight: Vec::new(),
                last_input_at: None,
                log,
                ledger_duplicates: Arc::default(),
                lease,
            },
            state,
        ))
    }

    /// `Err` with the reason once this instance is no longer the writer of its state: the
    /// runtime then stops it, keeping nothing it had not saved.
    ///
    /// # Errors
    /// The reason, for people.
    pub fn health(&self) -> Result<(), String> {
        if self.lease.lost.load(Ordering::Acquire) {
            return Err(format!(
                "{} lost its lease to another instance: it is no longer the writer of its state",
                self.service_key
            ));
        }
        Ok(())
    }

    /// Gives the lease up (after the last checkpoint and commit), so a standby takes over at once
    /// instead of when the lease lapses.
    pub async fn release(&mut self) {
        self.lease.release().await;
    }

    /// The store the state is saved in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How many fills a save found already in the ledger (each one applied twice to the state).
    pub fn ledger_duplicates(&self) -> Arc<AtomicU64> {
        self.ledger_duplicates.clone()
    }

    /// The service instance's key (`portfolio_manager:paper`).
    pub fn service_key(&self) -> &str {
        &self.service_key
    }

    /// The log the service reads from now on. Saved offsets of another log (a memory log of an
    /// earlier process, another Kafka cluster, or none named) are dropped: the state is kept, no
    /// input of this log is skipped, and the checkpoints written from now on name this log.
    pub fn attach_log(&mut self, log: &LogIdentity, foreign: &[(String, i32)]) {
        // A topic created anew under its old name: its partitions start over, so every saved
        // offset of that topic is another log's.
        for (topic, partition) in foreign {
            if self.applied.remove(topic).is_some() {
                warn!(
                    service = %self.service_key,
                    %topic,
                    partition,
                    "the checkpoint's offsets of this topic belong to an earlier topic of the \
                     same name; keeping the state and reading the topic from its start"
                );
                self.dirty = true;
            }
        }
        if self.log.as_deref() != Some(log.as_str()) && !self.applied.is_empty() {
            warn!(
                service = %self.service_key,
                saved_log = self.log.as_deref().unwrap_or("unnamed"),
                log = %log,
                "the checkpoint's offsets belong to another log; keeping the state and reading \
                 this log from its start"
            );
            self.applied.clear();
            // The next checkpoint must record the new log even when nothing else changes.
            self.dirty = true;
        }
        self.log = Some(log.as_str().to_owned());
    }

    /// Where the saved state stands in each partition, for the runtime to check against the log.
    pub fn anchors(&self) -> Vec<PartitionAnchor> {
        self.applied
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .filter_map(move |(partition, (next, last))| {
                        last.filter(|_| *next > 0)
                            .map(|last_event_id| PartitionAnchor {
                                topic: topic.clone(),
                                partition: *partition,
                                next_offset: *next,
                                last_event_id,
                            })
                    })
            })
            .collect()
    }

    /// Whether the saved state already reflects the input at `position`.
    pub fn already_applied(&self, position: &RecordPosition) -> bool {
        // Looked up by borrowed name: this runs for every input, so it must not allocate.
        self.applied
            .get(&*position.topic)
            .and_then(|partitions| partitions.get(&position.partition))
            .is_some_and(|(next, _)| position.offset < *next)
    }

    /// Notes the runtime's "now" of an input: the checkpoint is stamped with the last one.
    pub fn saw(&mut self, now: Timestamp) {
        self.last_input_at = Some(now);
    }

    /// The "now" of the last input, or the wall clock before any input.
    pub fn last_input_at(&self) -> Timestamp {
        self.last_input_at
            .unwrap_or_else(|| Timestamp::from_datetime(chrono::Utc::now()))
    }

    /// The state changed and must be saved at the next checkpoint.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// Queues a ledger write for the next checkpoint.
    pub fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
        self.dirty = true;
    }

    /// Takes `offsets` into the offsets the saved state reflects.
    fn record_applied(&mut self, offsets: &[CommitOffset]) {
        for o in offsets {
            let entry = (o.next_offset, o.last_event_id);
            match self.applied.get_mut(&*o.topic) {
                Some(partitions) => {
                    // Never backwards.
                    let current = partitions.entry(o.partition).or_insert(entry);
                    if entry.0 >= current.0 {
                        *current = entry;
                    }
                }
                None => {
                    self.applied
                        .insert(o.topic.to_string(), BTreeMap::from([(o.partition, entry)]));
                }
            }
        }
    }

    /// The offsets a checkpoint written now records: those already saved, moved on by `offsets`,
    /// in (topic, partition) order.
    fn offsets_with(&self, offsets: &[CommitOffset]) -> Vec<CheckpointOffset> {
        let mut merged: BTreeMap<(&str, i32), (i64, Option<EventId>)> = self
            .applied
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .map(move |(partition, entry)| ((topic.as_str(), *partition), *entry))
            })
            .collect();
        for o in offsets {
            let current = merged
                .entry((&*o.topic, o.partition))
                .or_insert((o.next_offset, o.last_event_id));
            if o.next_offset >= current.0 {
                *current = (o.next_offset, o.last_event_id);
            }
        }
        merged
            .into_iter()
            .map(
                |((topic, partition), (next_offset, last_event_id))| CheckpointOffset {
                    topic: topic.to_string(),
                    partition,
                    next_offset,
                    last_event_id,
                },
            )
            .collect()
    }

    /// Begins a save of the queued effects, `state` and the offsets, in one transaction: the state is
    /// serialized now, and the returned write (to run in the background, see
    /// [`alpha_panda_stream::Handler::begin_checkpoint`]) owns everything it needs. `None` when
    /// nothing changed since the last save: the offsets are simply taken as saved. Whatever changes
    /// after this call belongs to the next save. Tell [`Durable::end_save`] how the write ended.
    ///
    /// # Errors
    /// A poison [`HandlerError`] when the state does not serialize (nothing is begun).
    pub fn begin_save<S: Serialize>(
        &mut self,
        state: &S,
        offsets: &[CommitOffset],
    ) -> Result<Option<SaveWrite>, HandlerError> {
        if self.lease.lost.load(Ordering::Acquire) {
            return Err(HandlerError::infrastructure(format!(
                "{} is no longer the writer of its state (lease lost)",
                self.service_key
            )));
        }
        if !self.dirty {
            self.record_applied(offsets);
            return Ok(None);
        }
        let state = serde_json::to_value(state).map_err(|e| {
            HandlerError::poison(format!(
                "state of {} does not serialize: {e}",
                self.service_key
            ))
        })?;
        let checkpoint = Checkpoint {
            service_key: self.service_key.clone(),
            state,
            offsets: self.offsets_with(offsets),
            log_identity: self.log.clone(),
            updated_at: self.last_input_at(),
        };
        // Kept until the write is known to be durable: a failed write hands them back.
        self.in_flight = std::mem::take(&mut self.effects);
        self.dirty = false;
        Ok(Some(SaveWrite {
            store: self.store.clone(),
            effects: self.in_flight.clone(),
            checkpoint,
            ledger_duplicates: self.ledger_duplicates.clone(),
            holder: self.lease.holder.clone(),
            lease_ttl: self.lease.ttl,
            lease_lost: self.lease.lost.clone(),
        }))
    }

    /// The write begun by [`Durable::begin_save`] for `offsets` ended: on success the offsets are
    /// saved; on failure its effects go back to the front of the queue for the next save.
    pub fn end_save(&mut self, offsets: &[CommitOffset], succeeded: bool) {
        if succeeded {
            self.record_applied(offsets);
            self.in_flight.clear();
        } else {
            let mut effects = std::mem::take(&mut self.in_flight);
            effects.append(&mut self.effects);
            self.effects = effects;
            self.dirty = true;
        }
    }
}

/// One checkpoint transaction, detached from its service so it can run while the service goes on.
pub struct SaveWrite {
    store: Store,
    effects: Vec<Effect>,
    checkpoint: Checkpoint,
    ledger_duplicates: Arc<AtomicU64>,
    holder: String,
    lease_ttl: std::time::Duration,
    lease_lost: Arc<AtomicBool>,
}

impl SaveWrite {
    /// The write the runtime runs for a handler's checkpoint: this save.
    pub fn into_checkpoint(self) -> CheckpointWrite {
        Box::pin(self.run())
    }

    /// The write the runtime runs for a handler's checkpoint: this save, then `read_model` (a cache
    /// mirror of the state just saved), if any, once the save is durable.
    pub fn into_checkpoint_then<F>(self, read_model: Option<F>) -> CheckpointWrite
    where
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Box::pin(async move {
            self.run().await?;
            match read_model {
                Some(read_model) => read_model.await,
                None => Ok(()),
            }
        })
    }

    /// Writes the effects, the state and the offsets in one transaction.
    ///
    /// # Errors
    /// A [`HandlerError`] of the store error's class.
    pub async fn run(self) -> Result<(), HandlerError> {
        let context = "checkpoint";
        let mut tx = self
            .store
            .begin()
            .await
            .map_err(|e| store_error(context, e))?;
        for effect in &self.effects {
            let written = match effect {
                Effect::Order {
                    broker,
                    event_id,
                    record,
                } => tx.record_order(*broker, *event_id, record).await,
                Effect::Fill {
                    broker,
                    event_id,
                    fill,
                } => {
                    let inserted = tx
                        .record_fill(*broker, *event_id, fill)
                        .await
                        .map_err(|e| store_error(context, e))?;
                    if !inserted {
                        // The service checks the ledger before it applies a fill, so a fill that is
                        // already there was applied twice: say so loudly, it is a defect.
                        self.ledger_duplicates.fetch_add(1, Ordering::Relaxed);
                        error!(
                            service = %self.checkpoint.service_key,
                            %event_id,
                            order_id = %fill.order_id,
                            "a fill already in the ledger was applied again; the state and the \
                             ledger disagree"
                        );
                    }
                    Ok(inserted)
                }
                Effect::Snapshot {
                    event_id,
                    snapshot,
                    status,
                } => tx.record_pnl_snapshot(*event_id, snapshot, *status).await,
            };
            written.map_err(|e| store_error(context, e))?;
        }
        // Fenced: a save of an instance that lost its lease rolls back whole.
        let still_ours = tx
            .renew_lease(
                &self.checkpoint.service_key,
                &self.holder,
                later(self.lease_ttl),
            )
            .await
            .map_err(|e| store_error(context, e))?;
        if !still_ours {
            self.lease_lost.store(true, Ordering::Release);
            return Err(HandlerError::infrastructure(format!(
                "checkpoint of {} refused: another instance holds its lease",
                self.checkpoint.service_key
            )));
        }
        tx.save_checkpoint(&self.checkpoint)
            .await
            .map_err(|e| store_error(context, e))?;
        tx.commit().await.map_err(|e| store_error(context, e))
    }
}
