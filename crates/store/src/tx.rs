//! [`StoreTx`]: one transaction for a handler's effects (orders, fills, snapshots) and its checkpoint.

use std::fmt;

use alpha_panda_core::{Broker, EventId, OrderFilled, PnlSnapshot, Timestamp};

use crate::checkpoints::upsert_checkpoint;
use crate::leases::renew_in;
use crate::ledger::{insert_fill, insert_order};
use crate::pnl_snapshots::insert_snapshot;
use crate::sql::Tx;
use crate::{Checkpoint, OrderRecord, StoreError, ValidationStatus};

/// An open transaction. Every write is idempotent on its event id. Dropped without
/// [`StoreTx::commit`], it rolls back and none of its writes remain.
pub struct StoreTx {
    tx: Tx,
}

impl fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTx").finish_non_exhaustive()
    }
}

impl StoreTx {
    pub(crate) fn new(tx: Tx) -> Self {
        Self { tx }
    }

    /// Records an order-lifecycle event in `broker`'s ledger; `false` when `event_id` was already
    /// recorded (a replay), in which case nothing changes.
    ///
    /// # Errors
    /// A [`StoreError`] when the write fails; the transaction should then be dropped.
    pub async fn record_order(
        &mut self,
        broker: Broker,
        event_id: EventId,
        order: &OrderRecord,
    ) -> Result<bool, StoreError> {
        insert_order(&mut self.tx, broker, event_id, order).await
    }

    /// Records a fill (every field, fees itemised) in `broker`'s ledger; `false` when `event_id` was
    /// already recorded.
    ///
    /// # Errors
    /// A [`StoreError`] when the write fails; the transaction should then be dropped.
    pub async fn record_fill(
        &mut self,
        broker: Broker,
        event_id: EventId,
        fill: &OrderFilled,
    ) -> Result<bool, StoreError> {
        insert_fill(&mut self.tx, broker, event_id, fill).await
    }

    /// Records a PnL snapshot with its reconciliation verdict; `false` when `event_id` was already
    /// recorded.
    ///
    /// # Errors
    /// A [`StoreError`] when the write fails; the transaction should then be dropped.
    pub async fn record_pnl_snapshot(
        &mut self,
        event_id: EventId,
        snapshot: &PnlSnapshot,
        status: ValidationStatus,
    ) -> Result<bool, StoreError> {
        insert_snapshot(&mut self.tx, event_id, snapshot, status).await
    }

    /// Writes (or replaces) the service's checkpoint; visible only once the transaction commits.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty service key; a [`StoreError`] when the write fails.
    pub async fn save_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        upsert_checkpoint(&mut self.tx, checkpoint).await
    }

    /// Extends `holder`'s lease of `service_key` to `expires_at` as part of this transaction;
    /// `false` when `holder` no longer holds it: the caller must then drop the transaction, since
    /// another instance is the writer now.
    ///
    /// # Errors
    /// A [`StoreError`] when the write fails.
    pub async fn renew_lease(
        &mut self,
        service_key: &str,
        holder: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        renew_in(&mut self.tx, service_key, holder, expires_at).await
    }

    /// Makes every write of this transaction durable at once.
    ///
    /// # Errors
    /// A [`StoreError`] when the commit fails; then nothing was written.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await
    }
}
