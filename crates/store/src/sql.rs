//! The dialect bridge: one SQL text (with `$N` placeholders, valid in both PostgreSQL and SQLite), typed
//! parameters bound the way each backend stores them, and rows read back into the same Rust types.
//!
//! PostgreSQL keeps money as NUMERIC, instants as TIMESTAMPTZ, JSON as JSONB and dates as DATE. SQLite
//! keeps money as a decimal string, instants as fixed-width RFC 3339 UTC text (so they compare and sort
//! as text), JSON as text and dates as `YYYY-MM-DD`. Repositories never see the difference.

use std::str::FromStr;

use alpha_panda_core::Timestamp;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{PgPool, Postgres, Row as _, Sqlite, SqlitePool, Transaction};

use crate::StoreError;

/// A value bound to a `$N` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    OptBool(Option<bool>),
    Decimal(Decimal),
    OptDecimal(Option<Decimal>),
    Timestamp(Timestamp),
    Json(serde_json::Value),
    OptDate(Option<NaiveDate>),
}

fn bind_pg<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &'q [Param],
) -> Query<'q, Postgres, PgArguments> {
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v.as_str()),
            Param::OptText(v) => query.bind(v.as_deref()),
            Param::Int(v) => query.bind(*v),
            Param::OptInt(v) => query.bind(*v),
            Param::Bool(v) => query.bind(*v),
            Param::OptBool(v) => query.bind(*v),
            Param::Decimal(v) => query.bind(*v),
            Param::OptDecimal(v) => query.bind(*v),
            Param::Timestamp(v) => query.bind(v.as_datetime()),
            Param::Json(v) => query.bind(sqlx::types::Json(v)),
            Param::OptDate(v) => query.bind(*v),
        };
    }
    query
}

fn bind_sqlite<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments<'q>>,
    params: &'q [Param],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v.as_str()),
            Param::OptText(v) => query.bind(v.as_deref()),
            Param::Int(v) => query.bind(*v),
            Param::OptInt(v) => query.bind(*v),
            Param::Bool(v) => query.bind(*v),
            Param::OptBool(v) => query.bind(*v),
            Param::Decimal(v) => query.bind(v.to_string()),
            Param::OptDecimal(v) => query.bind(v.map(|d| d.to_string())),
            Param::Timestamp(v) => query.bind(v.to_string()),
            Param::Json(v) => query.bind(v.to_string()),
            Param::OptDate(v) => query.bind(v.map(|d| d.format("%Y-%m-%d").to_string())),
        };
    }
    query
}

/// One result row from either backend.
pub(crate) enum Row {
    Postgres(PgRow),
    Sqlite(SqliteRow),
}

/// Reads one column, mapping driver errors to [`StoreError::Decode`].
macro_rules! get {
    ($row:expr, $ty:ty, $op:expr, $col:expr) => {
        match $row {
            Row::Postgres(r) => r.try_get::<$ty, _>($col),
            Row::Sqlite(r) => r.try_get::<$ty, _>($col),
        }
        .map_err(|e| StoreError::decode($op, $col, e))
    };
}

impl Row {
    pub(crate) fn text(&self, op: &'static str, col: &'static str) -> Result<String, StoreError> {
        get!(self, String, op, col)
    }

    pub(crate) fn opt_text(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Option<String>, StoreError> {
        get!(self, Option<String>, op, col)
    }

    pub(crate) fn int(&self, op: &'static str, col: &'static str) -> Result<i64, StoreError> {
        get!(self, i64, op, col)
    }

    pub(crate) fn opt_int(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Option<i64>, StoreError> {
        get!(self, Option<i64>, op, col)
    }

    pub(crate) fn bool(&self, op: &'static str, col: &'static str) -> Result<bool, StoreError> {
        get!(self, bool, op, col)
    }

    pub(crate) fn opt_bool(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Option<bool>, StoreError> {
        get!(self, Option<bool>, op, col)
    }

    /// A `u32` stored in a BIGINT / INTEGER column.
    pub(crate) fn u32(&self, op: &'static str, col: &'static str) -> Result<u32, StoreError> {
        let v = self.int(op, col)?;
        u32::try_from(v).map_err(|_| StoreError::decode(op, col, format!("{v} is not a u32")))
    }

    pub(crate) fn opt_u32(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Option<u32>, StoreError> {
        self.opt_int(op, col)?
            .map(|v| {
                u32::try_from(v)
                    .map_err(|_| StoreError::decode(op, col, format!("{v} is not a u32")))
            })
            .transpose()
    }

    pub(crate) fn decimal(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Decimal, StoreError> {
        match self {
            Row::Postgres(r) => r
                .try_get::<Decimal, _>(col)
                .map_err(|e| StoreError::decode(op, col, e)),
            Row::Sqlite(_) => parse_decimal(op, col, &self.text(op, col)?),
        }
    }

    pub(crate) fn opt_decimal(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Option<Decimal>, StoreError> {
        match self {
            Row::Postgres(r) => r
                .try_get::<Option<Decimal>, _>(col)
                .map_err(|e| StoreError::decode(op, col, e)),
            Row::Sqlite(_) => self
                .opt_text(op, col)?
                .map(|t| parse_decimal(op, col, &t))
                .transpose(),
        }
    }

    pub(crate) fn timestamp(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Timestamp, StoreError> {
        match self {
            Row::Postgres(_) => Ok(Timestamp::from_datetime(get!(
                self,
                DateTime<Utc>,
                op,
                col
            )?)),
            Row::Sqlite(_) => {
                let raw = self.text(op, col)?;
                DateTime::parse_from_rfc3339(&raw)
                    .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
                    .map_err(|e| StoreError::decode(op, col, format!("{raw:?}: {e}")))
            }
        }
    }

    pub(crate) fn json(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<serde_json::Value, StoreError> {
        match self {
            Row::Postgres(_) => get!(self, serde_json::Value, op, col),
            Row::Sqlite(_) => serde_json::from_str(&self.text(op, col)?)
                .map_err(|e| StoreError::decode(op, col, e)),
        }
    }

    /// A JSON column decoded into `T`.
    pub(crate) fn json_as<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<T, StoreError> {
        serde_json::from_value(self.json(op, col)?).map_err(|e| StoreError::decode(op, col, e))
    }

    pub(crate) fn opt_date(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Option<NaiveDate>, StoreError> {
        match self {
            Row::Postgres(_) => get!(self, Option<NaiveDate>, op, col),
            Row::Sqlite(_) => self
                .opt_text(op, col)?
                .map(|t| {
                    NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                        .map_err(|e| StoreError::decode(op, col, format!("{t:?}: {e}")))
                })
                .transpose(),
        }
    }

    /// A text column parsed with `FromStr` (enums, ids).
    pub(crate) fn parsed<T>(&self, op: &'static str, col: &'static str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let raw = self.text(op, col)?;
        raw.parse::<T>()
            .map_err(|e| StoreError::decode(op, col, format!("{raw:?}: {e}")))
    }

    /// A text column holding a serde unit-variant name (`"BUY"`, `"paper"`).
    pub(crate) fn serde_enum<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<T, StoreError> {
        let raw = self.text(op, col)?;
        parse_serde_enum(op, col, &raw)
    }

    pub(crate) fn opt_serde_enum<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        col: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(op, col)?
            .map(|raw| parse_serde_enum(op, col, &raw))
            .transpose()
    }
}

fn parse_decimal(op: &'static str, col: &'static str, raw: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str_exact(raw).map_err(|e| StoreError::decode(op, col, format!("{raw:?}: {e}")))
}

fn parse_serde_enum<T: serde::de::DeserializeOwned>(
    op: &'static str,
    col: &'static str,
    raw: &str,
) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|e| StoreError::decode(op, col, format!("{raw:?}: {e}")))
}

/// The serde name of a unit variant (`Side::Buy` → `"BUY"`), for storing enums as text.
pub(crate) fn serde_enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => format!("<unserializable: {e}>"),
    }
}

/// A connection pool for one backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// An open transaction on one backend; rolled back when dropped uncommitted.
pub(crate) enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// An executor of one backend or the other.
enum Exec<P, S> {
    Postgres(P),
    Sqlite(S),
}

/// Runs `$method` (execute / fetch_all / fetch_optional) of a bound query on the right executor.
macro_rules! run {
    ($exec:expr, $sql:expr, $params:expr, $op:expr, $method:ident) => {{
        let result = match $exec {
            Exec::Postgres(executor) => bind_pg(sqlx::query($sql), $params)
                .$method(executor)
                .await
                .map(Converted::from_pg),
            Exec::Sqlite(executor) => bind_sqlite(sqlx::query($sql), $params)
                .$method(executor)
                .await
                .map(Converted::from_sqlite),
        };
        result.map_err(|e| StoreError::from_sqlx($op, e))
    }};
}

/// Converts a driver result into the backend-neutral form.
trait Converted<Pg, Lite>: Sized {
    fn from_pg(value: Pg) -> Self;
    fn from_sqlite(value: Lite) -> Self;
}

impl Converted<sqlx::postgres::PgQueryResult, sqlx::sqlite::SqliteQueryResult> for u64 {
    fn from_pg(value: sqlx::postgres::PgQueryResult) -> Self {
        value.rows_affected()
    }
    fn from_sqlite(value: sqlx::sqlite::SqliteQueryResult) -> Self {
        value.rows_affected()
    }
}

impl Converted<Vec<PgRow>, Vec<SqliteRow>> for Vec<Row> {
    fn from_pg(value: Vec<PgRow>) -> Self {
        value.into_iter().map(Row::Postgres).collect()
    }
    fn from_sqlite(value: Vec<SqliteRow>) -> Self {
        value.into_iter().map(Row::Sqlite).collect()
    }
}

impl Converted<Option<PgRow>, Option<SqliteRow>> for Option<Row> {
    fn from_pg(value: Option<PgRow>) -> Self {
        value.map(Row::Postgres)
    }
    fn from_sqlite(value: Option<SqliteRow>) -> Self {
        value.map(Row::Sqlite)
    }
}

impl Pool {
    fn exec(&self) -> Exec<&PgPool, &SqlitePool> {
        match self {
            Pool::Postgres(p) => Exec::Postgres(p),
            Pool::Sqlite(p) => Exec::Sqlite(p),
        }
    }

    /// Runs a statement; returns the rows affected.
    pub(crate) async fn execute(
        &self,
        op: &'static str,
        sql: &str,
        params: &[Param],
    ) -> Result<u64, StoreError> {
        run!(self.exec(), sql, params, op, execute)
    }

    /// Runs a query; returns every row.
    pub(crate) async fn fetch_all(
        &self,
        op: &'static str,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Row>, StoreError> {
        run!(self.exec(), sql, params, op, fetch_all)
    }

    /// Runs a query; returns the first row if any.
    pub(crate) async fn fetch_optional(
        &self,
        op: &'static str,
        sql: &str,
        params: &[Param],
    ) -> Result<Option<Row>, StoreError> {
        run!(self.exec(), sql, params, op, fetch_optional)
    }

    /// Opens a transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so two writers
    /// wait on the busy timeout instead of failing on a lock upgrade.
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        match self {
            Pool::Postgres(p) => p.begin().await.map(Tx::Postgres),
            Pool::Sqlite(p) => p.begin_with("BEGIN IMMEDIATE").await.map(Tx::Sqlite),
        }
        .map_err(|e| StoreError::from_sqlx("begin transaction", e))
    }
}

impl Tx {
    fn exec(&mut self) -> Exec<&mut sqlx::PgConnection, &mut sqlx::SqliteConnection> {
        match self {
            Tx::Postgres(tx) => Exec::Postgres(&mut **tx),
            Tx::Sqlite(tx) => Exec::Sqlite(&mut **tx),
        }
    }

    /// Runs a statement inside the transaction; returns the rows affected.
    pub(crate) async fn execute(
        &mut self,
        op: &'static str,
        sql: &str,
        params: &[Param],
    ) -> Result<u64, StoreError> {
        run!(self.exec(), sql, params, op, execute)
    }

    /// Runs a query inside the transaction; returns the first row if any.
    pub(crate) async fn fetch_optional(
        &mut self,
        op: &'static str,
        sql: &str,
        params: &[Param],
    ) -> Result<Option<Row>, StoreError> {
        run!(self.exec(), sql, params, op, fetch_optional)
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
        .map_err(|e| StoreError::from_sqlx("commit transaction", e))
    }
}
