//! Recorded PnL snapshots with every field, the checksum and the reconciliation verdict.

use std::fmt;
use std::str::FromStr;

use alpha_panda_core::{Broker, EventId, Money, PnlSnapshot, PortfolioId};

use crate::sql::{serde_enum_text, Param, Pool, Row, Tx};
use crate::StoreError;

/// What reconciliation concluded about a snapshot (stored as snake_case text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationStatus {
    /// Checksum right and figures agree with the recomputed portfolio.
    Valid,
    /// The checksum does not match the figures.
    ChecksumMismatch,
    /// Checksum right, but the figures differ from the recomputed portfolio.
    Diverged,
    /// Not checked yet.
    Pending,
}

impl ValidationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationStatus::Valid => "valid",
            ValidationStatus::ChecksumMismatch => "checksum_mismatch",
            ValidationStatus::Diverged => "diverged",
            ValidationStatus::Pending => "pending",
        }
    }
}

impl fmt::Display for ValidationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ValidationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "valid" => Ok(ValidationStatus::Valid),
            "checksum_mismatch" => Ok(ValidationStatus::ChecksumMismatch),
            "diverged" => Ok(ValidationStatus::Diverged),
            "pending" => Ok(ValidationStatus::Pending),
            other => Err(format!(
                "unknown validation status {other:?}: expected valid, checksum_mismatch, diverged or pending"
            )),
        }
    }
}

/// A snapshot read back, with the id of the event that carried it and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPnlSnapshot {
    /// The `pnl_snapshot` event's id.
    pub event_id: EventId,
    /// Every field as recorded.
    pub snapshot: PnlSnapshot,
    /// The reconciliation verdict.
    pub validation_status: ValidationStatus,
}

/// Read side of the snapshot history (writes go through [`crate::StoreTx`]).
#[derive(Debug, Clone, Copy)]
pub struct PnlSnapshots<'a> {
    pool: &'a Pool,
}

const COLUMNS: &str = "event_id, portfolio_id, strategy_id, broker, as_of, realized_pnl, \
                       unrealized_pnl, fees, total_pnl, cash, positions, snapshot_type, checksum, \
                       validation_status";

const OP_READ: &str = "read pnl snapshots";

impl<'a> PnlSnapshots<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// The most recent snapshot (by `as_of`) of a portfolio.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a row is corrupt.
    pub async fn latest(
        &self,
        portfolio_id: &PortfolioId,
    ) -> Result<Option<StoredPnlSnapshot>, StoreError> {
        Ok(self.list(portfolio_id, 1).await?.into_iter().next())
    }

    /// The latest `limit` snapshots of a portfolio, newest `as_of` first.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a row is corrupt.
    pub async fn list(
        &self,
        portfolio_id: &PortfolioId,
        limit: u32,
    ) -> Result<Vec<StoredPnlSnapshot>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pnl_snapshots WHERE portfolio_id = $1 \
             ORDER BY as_of DESC, seq DESC LIMIT $2"
        );
        self.read(
            &sql,
            &[
                Param::Text(portfolio_id.as_str().to_owned()),
                Param::Int(i64::from(limit)),
            ],
        )
        .await
    }

    /// The latest `limit` snapshots of every portfolio in `broker`, newest `as_of` first.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a row is corrupt.
    pub async fn list_by_broker(
        &self,
        broker: Broker,
        limit: u32,
    ) -> Result<Vec<StoredPnlSnapshot>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM pnl_snapshots WHERE broker = $1 \
             ORDER BY as_of DESC, seq DESC LIMIT $2"
        );
        self.read(
            &sql,
            &[
                Param::Text(broker.as_str().to_owned()),
                Param::Int(i64::from(limit)),
            ],
        )
        .await
    }

    async fn read(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<StoredPnlSnapshot>, StoreError> {
        self.pool
            .fetch_all(OP_READ, sql, params)
            .await?
            .iter()
            .map(snapshot_from_row)
            .collect()
    }
}

/// Records a snapshot; `false` when the event id is already there.
pub(crate) async fn insert_snapshot(
    tx: &mut Tx,
    event_id: EventId,
    snapshot: &PnlSnapshot,
    status: ValidationStatus,
) -> Result<bool, StoreError> {
    let positions =
        serde_json::to_value(&snapshot.positions).map_err(|e| StoreError::InvalidInput {
            field: "positions",
            reason: e.to_string(),
        })?;
    let sql = format!(
        "INSERT INTO pnl_snapshots ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (event_id) DO NOTHING"
    );
    let params = [
        Param::Text(event_id.to_string()),
        Param::Text(snapshot.portfolio_id.as_str().to_owned()),
        Param::Text(snapshot.strategy_id.as_str().to_owned()),
        Param::Text(snapshot.broker.as_str().to_owned()),
        Param::Timestamp(snapshot.as_of),
        Param::Decimal(snapshot.realized_pnl.0),
        Param::Decimal(snapshot.unrealized_pnl.0),
        Param::Decimal(snapshot.fees.0),
        Param::Decimal(snapshot.total_pnl.0),
        Param::Decimal(snapshot.cash.0),
        Param::Json(positions),
        Param::Text(serde_enum_text(&snapshot.snapshot_type)),
        Param::Text(snapshot.checksum.clone()),
        Param::Text(status.as_str().to_owned()),
    ];
    Ok(tx.execute("record pnl snapshot", &sql, &params).await? > 0)
}

fn snapshot_from_row(row: &Row) -> Result<StoredPnlSnapshot, StoreError> {
    const OP: &str = OP_READ;
    let money = |col| row.decimal(OP, col).map(Money);
    Ok(StoredPnlSnapshot {
        event_id: row.parsed(OP, "event_id")?,
        validation_status: row.parsed(OP, "validation_status")?,
        snapshot: PnlSnapshot {
            portfolio_id: row.parsed(OP, "portfolio_id")?,
            strategy_id: row.parsed(OP, "strategy_id")?,
            broker: row.parsed(OP, "broker")?,
            as_of: row.timestamp(OP, "as_of")?,
            realized_pnl: money("realized_pnl")?,
            unrealized_pnl: money("unrealized_pnl")?,
            fees: money("fees")?,
            total_pnl: money("total_pnl")?,
            cash: money("cash")?,
            positions: row.json_as(OP, "positions")?,
            snapshot_type: row.serde_enum(OP, "snapshot_type")?,
            checksum: row.text(OP, "checksum")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_status_is_snake_case_text() {
        for status in [
            ValidationStatus::Valid,
            ValidationStatus::ChecksumMismatch,
            ValidationStatus::Diverged,
            ValidationStatus::Pending,
        ] {
            assert_eq!(status.as_str().parse::<ValidationStatus>().unwrap(), status);
        }
        assert_eq!(
            ValidationStatus::ChecksumMismatch.to_string(),
            "checksum_mismatch"
        );
        assert!("Valid".parse::<ValidationStatus>().is_err());
    }
}
