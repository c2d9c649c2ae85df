//! Service leases: at most one instance of a stateful service and namespace is its writer
//! (ARCHITECTURE §4 rule 6). The holder renews its lease while it runs and every checkpoint
//! transaction renews it too, so a checkpoint of an instance that lost its lease never commits.

use alpha_panda_core::Timestamp;

use crate::sql::{Param, Pool, Tx};
use crate::StoreError;

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The holder's identity (process and instance).
    pub holder: String,
    /// When the lease lapses unless renewed.
    pub expires_at: Timestamp,
}

/// The lease table.
#[derive(Debug, Clone, Copy)]
pub struct Leases<'a> {
    pool: &'a Pool,
}

const ACQUIRE_SQL: &str = "INSERT INTO service_leases (service_key, holder, expires_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (service_key) DO UPDATE SET holder = excluded.holder, \
     expires_at = excluded.expires_at \
     WHERE service_leases.holder = excluded.holder OR service_leases.expires_at < $4 \
     OR service_leases.holder LIKE $5";

const RENEW_SQL: &str =
    "UPDATE service_leases SET expires_at = $3 WHERE service_key = $1 AND holder = $2";

impl<'a> Leases<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// Takes the lease of `service_key` for `holder` until `expires_at` when it is free, lapsed
    /// (before `now`), or held by a holder whose name starts with `successor_of` (an earlier
    /// instance of the same process, which this one replaces). `Ok(None)` when taken; the current
    /// holder otherwise.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be written.
    pub async fn try_acquire(
        &self,
        service_key: &str,
        holder: &str,
        successor_of: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<LeaseHolder>, StoreError> {
        // LIKE's wildcards in the prefix are taken literally by escaping them away.
        let prefix: String = successor_of
            .chars()
            .filter(|c| !matches!(c, '%' | '_' | '\\'))
            .collect();
        let taken = self
            .pool
            .execute(
                "acquire lease",
                ACQUIRE_SQL,
                &[
                    Param::Text(service_key.to_owned()),
                    Param::Text(holder.to_owned()),
                    Param::Timestamp(expires_at),
                    Param::Timestamp(now),
                    Param::Text(format!("{prefix}%")),
                ],
            )
            .await?;
        if taken > 0 {
            return Ok(None);
        }
        self.holder(service_key).await
    }

    /// Who holds the lease of `service_key`, if anyone ever did.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn holder(&self, service_key: &str) -> Result<Option<LeaseHolder>, StoreError> {
        const OP: &str = "read lease";
        let row = self
            .pool
            .fetch_optional(
                OP,
                "SELECT holder, expires_at FROM service_leases WHERE service_key = $1",
                &[Param::Text(service_key.to_owned())],
            )
            .await?;
        row.map(|row| {
            Ok(LeaseHolder {
                holder: row.text(OP, "holder")?,
                expires_at: row.timestamp(OP, "expires_at")?,
            })
        })
        .transpose()
    }

    /// Extends `holder`'s lease of `service_key` to `expires_at`; `false` when `holder` no longer
    /// holds it (it lapsed and another instance took it).
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be written.
    pub async fn renew(
        &self,
        service_key: &str,
        holder: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self
            .pool
            .execute(
                "renew lease",
                RENEW_SQL,
                &[
                    Param::Text(service_key.to_owned()),
                    Param::Text(holder.to_owned()),
                    Param::Timestamp(expires_at),
                ],
            )
            .await?
            > 0)
    }

    /// Gives the lease up, so a standby takes over at once instead of when it lapses.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be written.
    pub async fn release(&self, service_key: &str, holder: &str) -> Result<(), StoreError> {
        self.pool
            .execute(
                "release lease",
                "DELETE FROM service_leases WHERE service_key = $1 AND holder = $2",
                &[
                    Param::Text(service_key.to_owned()),
                    Param::Text(holder.to_owned()),
                ],
            )
            .await?;
        Ok(())
    }
}

/// Renews the lease inside a checkpoint transaction: `false` when `holder` lost it.
pub(crate) async fn renew_in(
    tx: &mut Tx,
    service_key: &str,
    holder: &str,
    expires_at: Timestamp,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "renew lease",
            RENEW_SQL,
            &[
                Param::Text(service_key.to_owned()),
                Param::Text(holder.to_owned()),
                Param::Timestamp(expires_at),
            ],
        )
        .await?
        > 0)
}
