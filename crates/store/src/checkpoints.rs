//! Service checkpoints: a stateful service's state together with the log offsets it reflects
//! (ARCHITECTURE §4 rule 4), written in the same transaction as the effects.

use alpha_panda_core::{EventId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sql::{Param, Pool, Row, Tx};
use crate::StoreError;

/// The next offset to read on one topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset not yet reflected in the state.
    pub next_offset: i64,
    /// The id of the event just before `next_offset`, when known: what tells this partition
    /// from one of the same name created again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<EventId>,
}

/// A service's durable state and the offsets it reflects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Which service instance (`portfolio_manager:paper`).
    pub service_key: String,
    /// The service's state, as JSON.
    pub state: serde_json::Value,
    /// Where to resume reading.
    pub offsets: Vec<CheckpointOffset>,
    /// The log `offsets` belong to (the memory log's incarnation, the Kafka cluster and topics);
    /// `None` for a checkpoint whose offsets name no log.
    pub log_identity: Option<String>,
    /// When the checkpoint was written.
    pub updated_at: Timestamp,
}

/// Read side of checkpoints (writes go through [`crate::StoreTx::save_checkpoint`]).
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints<'a> {
    pool: &'a Pool,
}

const OP_LOAD: &str = "load checkpoint";

impl<'a> Checkpoints<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// The last committed checkpoint of `service_key`, if any.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read; [`StoreError::Decode`] (poison) when the
    /// stored offsets are not valid.
    pub async fn load(&self, service_key: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.pool
            .fetch_optional(
                OP_LOAD,
                "SELECT service_key, state, offsets, log_identity, updated_at \
                 FROM service_checkpoints WHERE service_key = $1",
                &[Param::Text(service_key.to_owned())],
            )
            .await?
            .as_ref()
            .map(checkpoint_from_row)
            .transpose()
    }
}

/// Inserts or replaces the checkpoint of its service.
pub(crate) async fn upsert_checkpoint(
    tx: &mut Tx,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    if checkpoint.service_key.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field: "service_key",
            reason: "must not be empty".into(),
        });
    }
    let offsets =
        serde_json::to_value(&checkpoint.offsets).map_err(|e| StoreError::InvalidInput {
            field: "offsets",
            reason: e.to_string(),
        })?;
    tx.execute(
        "save checkpoint",
        "INSERT INTO service_checkpoints (service_key, state, offsets, log_identity, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (service_key) DO UPDATE SET state = excluded.state, \
         offsets = excluded.offsets, log_identity = excluded.log_identity, \
         updated_at = excluded.updated_at",
        &[
            Param::Text(checkpoint.service_key.clone()),
            Param::Json(checkpoint.state.clone()),
            Param::Json(offsets),
            Param::OptText(checkpoint.log_identity.clone()),
            Param::Timestamp(checkpoint.updated_at),
        ],
    )
    .await?;
    Ok(())
}

fn checkpoint_from_row(row: &Row) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        service_key: row.text(OP_LOAD, "service_key")?,
        state: row.json(OP_LOAD, "state")?,
        offsets: row.json_as(OP_LOAD, "offsets")?,
        log_identity: row.opt_text(OP_LOAD, "log_identity")?,
        updated_at: row.timestamp(OP_LOAD, "updated_at")?,
    })
}
