//! The per-namespace kill switch: while engaged, the namespace's risk manager refuses every new
//! signal (`kill_switch`). It is a row per broker, so it outlives restarts, and every process that
//! reads the store sees the same state.

use alpha_panda_core::{Broker, Timestamp};

use crate::sql::{Param, Pool, Row};
use crate::StoreError;

/// The kill switch of one namespace as last set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillSwitch {
    /// The namespace.
    pub broker: Broker,
    /// Whether new entries are halted.
    pub engaged: bool,
    /// Why it was last set.
    pub reason: String,
    /// Who set it (a user, or `cli`).
    pub changed_by: String,
    /// When.
    pub changed_at: Timestamp,
}

/// Repository of [`KillSwitch`]es.
#[derive(Debug, Clone, Copy)]
pub struct KillSwitches<'a> {
    pool: &'a Pool,
}

impl<'a> KillSwitches<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// The switch of `broker`; `None` when it was never set (released).
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn get(&self, broker: Broker) -> Result<Option<KillSwitch>, StoreError> {
        self.pool
            .fetch_optional(
                "get kill switch",
                "SELECT broker, engaged, reason, changed_by, changed_at FROM kill_switches \
                 WHERE broker = $1",
                &[Param::Text(broker.as_str().to_owned())],
            )
            .await?
            .as_ref()
            .map(switch_from_row)
            .transpose()
    }

    /// Whether `broker`'s switch is engaged.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn engaged(&self, broker: Broker) -> Result<bool, StoreError> {
        Ok(self.get(broker).await?.is_some_and(|s| s.engaged))
    }

    /// Engages or releases a namespace's switch.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty reason; a [`StoreError`] when the database cannot
    /// be written.
    pub async fn set(&self, switch: &KillSwitch) -> Result<(), StoreError> {
        if switch.reason.trim().is_empty() {
            return Err(StoreError::InvalidInput {
                field: "reason",
                reason: "say why the kill switch is engaged or released".into(),
            });
        }
        self.pool
            .execute(
                "set kill switch",
                "INSERT INTO kill_switches (broker, engaged, reason, changed_by, changed_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (broker) DO UPDATE SET \
                 engaged = excluded.engaged, reason = excluded.reason, \
                 changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                &[
                    Param::Text(switch.broker.as_str().to_owned()),
                    Param::Bool(switch.engaged),
                    Param::Text(switch.reason.clone()),
                    Param::Text(switch.changed_by.clone()),
                    Param::Timestamp(switch.changed_at),
                ],
            )
            .await?;
        Ok(())
    }
}

fn switch_from_row(row: &Row) -> Result<KillSwitch, StoreError> {
    const OP: &str = "read kill switch";
    Ok(KillSwitch {
        broker: row.parsed(OP, "broker")?,
        engaged: row.bool(OP, "engaged")?,
        reason: row.text(OP, "reason")?,
        changed_by: row.text(OP, "changed_by")?,
        changed_at: row.timestamp(OP, "changed_at")?,
    })
}
