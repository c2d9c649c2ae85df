//! `pnl_snapshot`: a portfolio's PnL at a point in time, with a checksum over a canonical encoding.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Broker, InstrumentToken, Money, PortfolioId, Price, StrategyId, Timestamp};

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotType {
    /// Every `portfolio.snapshot_interval`.
    Periodic,
    /// At the end of the trading day.
    EndOfDay,
    /// On demand or at shutdown, to reconcile.
    Reconciliation,
}

impl SnapshotType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotType::Periodic => "periodic",
            SnapshotType::EndOfDay => "end_of_day",
            SnapshotType::Reconciliation => "reconciliation",
        }
    }
}

/// One position inside a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PositionSnapshot {
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Signed quantity: positive long, negative short.
    pub quantity: i64,
    /// Average entry price of the open quantity.
    pub average_price: Price,
    /// Last traded price used to mark.
    pub last_price: Price,
    /// Realized PnL of this instrument.
    pub realized_pnl: Money,
    /// Unrealized PnL of the open quantity.
    pub unrealized_pnl: Money,
}

/// A portfolio's PnL at a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PnlSnapshot {
    /// `{broker}:{strategy_id}`.
    pub portfolio_id: PortfolioId,
    /// The strategy the portfolio belongs to.
    pub strategy_id: StrategyId,
    /// The broker namespace.
    pub broker: Broker,
    /// The instant the figures are for.
    pub as_of: Timestamp,
    /// Realized PnL.
    pub realized_pnl: Money,
    /// Unrealized PnL.
    pub unrealized_pnl: Money,
    /// Fees paid.
    pub fees: Money,
    /// realized + unrealized − fees.
    pub total_pnl: Money,
    /// Cash balance.
    pub cash: Money,
    /// Positions, ordered by instrument token.
    pub positions: Vec<PositionSnapshot>,
    /// Why it was taken.
    pub snapshot_type: SnapshotType,
    /// Hex SHA-256 of [`PnlSnapshot::canonical_encoding`].
    pub checksum: String,
}

impl PnlSnapshot {
    /// The canonical text the checksum covers: every figure, in a fixed order, decimals normalized
    /// (so `1.50` and `1.5` hash alike), positions by token.
    pub fn canonical_encoding(&self) -> String {
        let d = |m: rust_decimal::Decimal| m.normalize().to_string();
        let mut positions: Vec<&PositionSnapshot> = self.positions.iter().collect();
        positions.sort_by_key(|p| p.instrument_token);
        let mut out = format!(
            "v1|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.portfolio_id,
            self.strategy_id,
            self.broker,
            self.as_of,
            d(self.realized_pnl.0),
            d(self.unrealized_pnl.0),
            d(self.fees.0),
            d(self.total_pnl.0),
            d(self.cash.0),
            self.snapshot_type.as_str(),
        );
        for p in positions {
            out.push_str(&format!(
                "|{}:{}:{}:{}:{}:{}",
                p.instrument_token,
                p.quantity,
                d(p.average_price.0),
                d(p.last_price.0),
                d(p.realized_pnl.0),
                d(p.unrealized_pnl.0)
            ));
        }
        out
    }

    /// The checksum the snapshot should carry.
    pub fn compute_checksum(&self) -> String {
        hex_lower(&Sha256::digest(self.canonical_encoding().as_bytes()))
    }

    /// Sets `checksum` from the figures.
    pub fn seal(mut self) -> Self {
        self.checksum = self.compute_checksum();
        self
    }

    /// Whether `checksum` matches the figures.
    pub fn checksum_is_valid(&self) -> bool {
        self.checksum == self.compute_checksum()
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0x0f)] as char);
    }
    s
}
