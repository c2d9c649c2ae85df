//! Strategy configurations: which strategies run, on which instruments, with which parameters, and
//! whether they may trade in the `zerodha` namespace.

use alpha_panda_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::sql::{Param, Pool, Row};
use crate::StoreError;

/// One configured strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyConfiguration {
    /// The strategy id (`ema_cross_nifty`).
    pub id: String,
    /// Which implementation (`ema_cross`, `momentum`, …).
    pub strategy_type: String,
    /// Instrument tokens it trades.
    pub instruments: Vec<u32>,
    /// Implementation parameters (`{"fast": 10, "slow": 30}`).
    pub parameters: serde_json::Value,
    /// Whether the runner loads it.
    pub is_active: bool,
    /// Whether its signals also go to the `zerodha` namespace (`paper` is always on).
    pub zerodha_trading_enabled: bool,
    /// When it was first stored.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// Repository of [`StrategyConfiguration`]s.
#[derive(Debug, Clone, Copy)]
pub struct StrategyConfigurations<'a> {
    pool: &'a Pool,
}

const COLUMNS: &str = "id, strategy_type, instruments, parameters, is_active, \
                       zerodha_trading_enabled, created_at, updated_at";

const INSERT: &str = "INSERT INTO strategy_configurations (id, strategy_type, instruments, \
                      parameters, is_active, zerodha_trading_enabled, created_at, updated_at) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

impl<'a> StrategyConfigurations<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// Every configuration, by id.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn list(&self) -> Result<Vec<StrategyConfiguration>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM strategy_configurations ORDER BY id");
        self.read_all(&sql, &[]).await
    }

    /// The active configurations, by id.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn list_active(&self) -> Result<Vec<StrategyConfiguration>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM strategy_configurations WHERE is_active = $1 ORDER BY id"
        );
        self.read_all(&sql, &[Param::Bool(true)]).await
    }

    /// One configuration.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn get(&self, id: &str) -> Result<Option<StrategyConfiguration>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM strategy_configurations WHERE id = $1");
        self.pool
            .fetch_optional(OP_READ, &sql, &[Param::Text(id.to_owned())])
            .await?
            .as_ref()
            .map(config_from_row)
            .transpose()
    }

    /// Inserts or replaces `config` by id (an existing row keeps its `created_at`).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty id or type; a [`StoreError`] when the write fails.
    pub async fn upsert(&self, config: &StrategyConfiguration) -> Result<(), StoreError> {
        validate(config)?;
        let sql = format!(
            "{INSERT} ON CONFLICT (id) DO UPDATE SET strategy_type = excluded.strategy_type, \
             instruments = excluded.instruments, parameters = excluded.parameters, \
             is_active = excluded.is_active, \
             zerodha_trading_enabled = excluded.zerodha_trading_enabled, \
             updated_at = excluded.updated_at"
        );
        self.pool
            .execute("upsert strategy configuration", &sql, &params(config))
            .await?;
        Ok(())
    }

    /// Stores `seeds` only when the table is empty (first start); returns how many were inserted
    /// (0 when configurations already existed).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid seed; a [`StoreError`] when the write fails.
    pub async fn seed_if_empty(
        &self,
        seeds: &[StrategyConfiguration],
    ) -> Result<usize, StoreError> {
        const OP: &str = "seed strategy configurations";
        for seed in seeds {
            validate(seed)?;
        }
        let mut tx = self.pool.begin().await?;
        let existing = match tx
            .fetch_optional(OP, "SELECT COUNT(*) AS n FROM strategy_configurations", &[])
            .await?
        {
            Some(row) => row.int(OP, "n")?,
            None => 0,
        };
        if existing > 0 {
            return Ok(0);
        }
        let sql = format!("{INSERT} ON CONFLICT (id) DO NOTHING");
        let mut inserted = 0usize;
        for seed in seeds {
            if tx.execute(OP, &sql, &params(seed)).await? > 0 {
                inserted += 1;
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn read_all(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<StrategyConfiguration>, StoreError> {
        self.pool
            .fetch_all(OP_READ, sql, params)
            .await?
            .iter()
            .map(config_from_row)
            .collect()
    }
}

const OP_READ: &str = "read strategy configurations";

fn validate(config: &StrategyConfiguration) -> Result<(), StoreError> {
    if config.id.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field: "strategy id",
            reason: "must not be empty".into(),
        });
    }
    if config.strategy_type.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field: "strategy_type",
            reason: format!("strategy `{}` has an empty type", config.id),
        });
    }
    Ok(())
}

fn params(config: &StrategyConfiguration) -> Vec<Param> {
    vec![
        Param::Text(config.id.clone()),
        Param::Text(config.strategy_type.clone()),
        Param::Json(serde_json::Value::from(config.instruments.clone())),
        Param::Json(config.parameters.clone()),
        Param::Bool(config.is_active),
        Param::Bool(config.zerodha_trading_enabled),
        Param::Timestamp(config.created_at),
        Param::Timestamp(config.updated_at),
    ]
}

fn config_from_row(row: &Row) -> Result<StrategyConfiguration, StoreError> {
    Ok(StrategyConfiguration {
        id: row.text(OP_READ, "id")?,
        strategy_type: row.text(OP_READ, "strategy_type")?,
        instruments: row.json_as(OP_READ, "instruments")?,
        parameters: row.json(OP_READ, "parameters")?,
        is_active: row.bool(OP_READ, "is_active")?,
        zerodha_trading_enabled: row.bool(OP_READ, "zerodha_trading_enabled")?,
        created_at: row.timestamp(OP_READ, "created_at")?,
        updated_at: row.timestamp(OP_READ, "updated_at")?,
    })
}
