//! The Kite instruments master, keyed by (exchange, tradingsymbol) with the token indexed.

use std::collections::HashMap;

use alpha_panda_core::{Instrument, InstrumentToken};

use crate::sql::{Param, Pool, Row};
use crate::users::count_rows;
use crate::StoreError;

/// Rows per multi-row INSERT (12 parameters each stays far below every backend's parameter limit).
const BATCH: usize = 500;
const PARAMS_PER_ROW: usize = 12;

const COLUMNS: &str = "instrument_token, exchange_token, tradingsymbol, name, last_price, expiry, \
                       strike, tick_size, lot_size, instrument_type, segment, exchange";

/// Repository of [`Instrument`]s.
#[derive(Debug, Clone, Copy)]
pub struct Instruments<'a> {
    pool: &'a Pool,
}

impl<'a> Instruments<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// Inserts new instruments and updates existing ones (matched by exchange + tradingsymbol), all in
    /// one transaction. When the input repeats a key, the last occurrence wins. Returns the number of
    /// distinct instruments written.
    ///
    /// # Errors
    /// A [`StoreError`] when the write fails (nothing is written then).
    pub async fn upsert_many(&self, instruments: &[Instrument]) -> Result<u64, StoreError> {
        const OP: &str = "upsert instruments";
        // A single statement may not touch the same key twice: keep the last row per key, in order.
        let mut last_index: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, inst) in instruments.iter().enumerate() {
            last_index.insert((inst.exchange.as_str(), inst.tradingsymbol.as_str()), i);
        }
        let mut unique: Vec<&Instrument> = Vec::with_capacity(last_index.len());
        for (i, inst) in instruments.iter().enumerate() {
            if last_index.get(&(inst.exchange.as_str(), inst.tradingsymbol.as_str())) == Some(&i) {
                unique.push(inst);
            }
        }
        if unique.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut written = 0u64;
        for chunk in unique.chunks(BATCH) {
            let mut sql = format!("INSERT INTO instruments ({COLUMNS}) VALUES ");
            let mut params = Vec::with_capacity(chunk.len() * PARAMS_PER_ROW);
            for (row, inst) in chunk.iter().enumerate() {
                if row > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for col in 0..PARAMS_PER_ROW {
                    if col > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", row * PARAMS_PER_ROW + col + 1));
                }
                sql.push(')');
                params.extend(instrument_params(inst));
            }
            sql.push_str(
                " ON CONFLICT (exchange, tradingsymbol) DO UPDATE SET \
                 instrument_token = excluded.instrument_token, \
                 exchange_token = excluded.exchange_token, name = excluded.name, \
                 last_price = excluded.last_price, expiry = excluded.expiry, \
                 strike = excluded.strike, tick_size = excluded.tick_size, \
                 lot_size = excluded.lot_size, instrument_type = excluded.instrument_type, \
                 segment = excluded.segment",
            );
            written += tx.execute(OP, &sql, &params).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// The instrument currently carrying `token`. Tokens can be reused after expiry; when several rows
    /// share one, the one without expiry or with the latest expiry wins.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn by_token(&self, token: u32) -> Result<Option<Instrument>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM instruments WHERE instrument_token = $1 \
             ORDER BY expiry DESC NULLS FIRST, exchange, tradingsymbol LIMIT 1"
        );
        self.pool
            .fetch_optional(OP_READ, &sql, &[Param::Int(i64::from(token))])
            .await?
            .as_ref()
            .map(instrument_from_row)
            .transpose()
    }

    /// The instrument listed as `tradingsymbol` on `exchange`.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn by_symbol(
        &self,
        exchange: &str,
        tradingsymbol: &str,
    ) -> Result<Option<Instrument>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM instruments WHERE exchange = $1 AND tradingsymbol = $2");
        self.pool
            .fetch_optional(
                OP_READ,
                &sql,
                &[
                    Param::Text(exchange.to_owned()),
                    Param::Text(tradingsymbol.to_owned()),
                ],
            )
            .await?
            .as_ref()
            .map(instrument_from_row)
            .transpose()
    }

    /// Every instrument, by exchange then tradingsymbol.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn all(&self) -> Result<Vec<Instrument>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM instruments ORDER BY exchange, tradingsymbol");
        self.pool
            .fetch_all(OP_READ, &sql, &[])
            .await?
            .iter()
            .map(instrument_from_row)
            .collect()
    }

    /// How many instruments are stored.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn count(&self) -> Result<u64, StoreError> {
        count_rows(
            self.pool,
            "count instruments",
            "SELECT COUNT(*) AS n FROM instruments",
        )
        .await
    }
}

const OP_READ: &str = "read instruments";

fn instrument_params(inst: &Instrument) -> [Param; PARAMS_PER_ROW] {
    [
        Param::Int(i64::from(inst.instrument_token.0)),
        Param::Int(i64::from(inst.exchange_token)),
        Param::Text(inst.tradingsymbol.clone()),
        Param::Text(inst.name.clone()),
        Param::Decimal(inst.last_price),
        Param::OptDate(inst.expiry),
        Param::OptDecimal(inst.strike),
        Param::Decimal(inst.tick_size),
        Param::Int(i64::from(inst.lot_size)),
        Param::Text(inst.instrument_type.clone()),
        Param::Text(inst.segment.clone()),
        Param::Text(inst.exchange.clone()),
    ]
}

fn instrument_from_row(row: &Row) -> Result<Instrument, StoreError> {
    Ok(Instrument {
        instrument_token: InstrumentToken(row.u32(OP_READ, "instrument_token")?),
        exchange_token: row.u32(OP_READ, "exchange_token")?,
        tradingsymbol: row.text(OP_READ, "tradingsymbol")?,
        name: row.text(OP_READ, "name")?,
        last_price: row.decimal(OP_READ, "last_price")?,
        expiry: row.opt_date(OP_READ, "expiry")?,
        strike: row.opt_decimal(OP_READ, "strike")?,
        tick_size: row.decimal(OP_READ, "tick_size")?,
        lot_size: row.u32(OP_READ, "lot_size")?,
        instrument_type: row.text(OP_READ, "instrument_type")?,
        segment: row.text(OP_READ, "segment")?,
        exchange: row.text(OP_READ, "exchange")?,
    })
}
