//! The instruments master: parsing Kite's instruments CSV into `Instrument` rows, and the
//! `InstrumentRegistry` that answers token → instrument and (exchange, tradingsymbol) → token.

use std::collections::HashMap;
use std::io::Read;

use alpha_panda_core::{Instrument, InstrumentToken};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::rest::types::parse_decimal_text;
use crate::ticker::Segment;

/// The columns of the dump, in Kite's order (reference §3).
pub const COLUMNS: [&str; 12] = [
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
];

/// Why an instruments dump could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentsError {
    /// The header lacks a required column.
    #[error("instruments CSV has no {column:?} column; is this a Kite instruments dump?")]
    MissingColumn {
        /// The missing column.
        column: &'static str,
    },
    /// A field does not parse.
    #[error("instruments CSV line {line}: column {column} = {value:?} is invalid: {reason}")]
    BadField {
        /// 1-based line number in the file (the header is line 1).
        line: u64,
        /// The column.
        column: &'static str,
        /// The raw value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The CSV itself is malformed (wrong field count, bad UTF-8, I/O).
    #[error("instruments CSV line {line}: {message}")]
    Csv {
        /// 1-based line number where the problem was found (0 if unknown).
        line: u64,
        /// The CSV reader's message.
        message: String,
    },
}

fn csv_error(e: &csv::Error) -> InstrumentsError {
    InstrumentsError::Csv {
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    }
}

/// Parses an instruments dump (with its header row) into rows. Empty `expiry` and `strike` are
/// allowed; a strike of 0 or empty is `None`.
///
/// # Errors
/// [`InstrumentsError`] naming the line and column of the first bad row.
pub fn parse_instruments_csv<R: Read>(reader: R) -> Result<Vec<Instrument>, InstrumentsError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv.headers().map_err(|e| csv_error(&e))?.clone();
    let mut index = [0usize; 12];
    for (slot, column) in index.iter_mut().zip(COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h == column)
            .ok_or(InstrumentsError::MissingColumn { column })?;
    }
    let mut rows = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| csv_error(&e))?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(index[i]).unwrap_or("");
        let bad = |i: usize, reason: String| InstrumentsError::BadField {
            line,
            column: COLUMNS[i],
            value: field(i).to_string(),
            reason,
        };
        let int = |i: usize| field(i).parse::<u32>().map_err(|e| bad(i, e.to_string()));
        let dec = |i: usize| -> Result<Decimal, InstrumentsError> {
            if field(i).is_empty() {
                Ok(Decimal::ZERO)
            } else {
                parse_decimal_text(field(i))
                    .map(|d| d.normalize())
                    .map_err(|e| bad(i, e))
            }
        };
        let expiry = match field(5) {
            "" => None,
            text => Some(
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|e| bad(5, format!("expected yyyy-mm-dd: {e}")))?,
            ),
        };
        let strike = dec(6)?;
        let tradingsymbol = field(2).to_string();
        if tradingsymbol.is_empty() {
            return Err(bad(2, "must not be empty".into()));
        }
        rows.push(Instrument {
            instrument_token: InstrumentToken(int(0)?),
            exchange_token: int(1)?,
            tradingsymbol,
            name: field(3).to_string(),
            last_price: dec(4)?,
            expiry,
            strike: (!strike.is_zero()).then_some(strike),
            tick_size: dec(7)?,
            lot_size: int(8)?,
            instrument_type: field(9).to_string(),
            segment: field(10).to_string(),
            exchange: field(11).to_string(),
        });
    }
    Ok(rows)
}

/// Instruments indexed by token and by (exchange, tradingsymbol). Build it from one day's dump:
/// tokens can be reused after expiry, so never mix dumps of different days.
#[derive(Debug, Clone, Default)]
pub struct InstrumentRegistry {
    by_token: HashMap<u32, Instrument>,
    by_symbol: HashMap<(String, String), u32>,
}

impl InstrumentRegistry {
    /// Indexes rows; a later row with the same token replaces an earlier one.
    pub fn from_rows(rows: impl IntoIterator<Item = Instrument>) -> InstrumentRegistry {
        let mut registry = InstrumentRegistry::default();
        for row in rows {
            let token = row.instrument_token.0;
            if let Some(old) = registry.by_token.get(&token) {
                registry
                    .by_symbol
                    .remove(&(old.exchange.clone(), old.tradingsymbol.clone()));
            }
            registry
                .by_symbol
                .insert((row.exchange.clone(), row.tradingsymbol.clone()), token);
            registry.by_token.insert(token, row);
        }
        registry
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The instrument with this token.
    pub fn get(&self, token: InstrumentToken) -> Option<&Instrument> {
        self.by_token.get(&token.0)
    }

    /// The instrument trading as `tradingsymbol` on `exchange`.
    pub fn by_symbol(&self, exchange: &str, tradingsymbol: &str) -> Option<&Instrument> {
        let token = self
            .by_symbol
            .get(&(exchange.to_string(), tradingsymbol.to_string()))?;
        self.by_token.get(token)
    }

    /// The exchange of a token (`NSE`, `NFO`, …).
    pub fn exchange(&self, token: InstrumentToken) -> Option<&str> {
        self.get(token).map(|i| i.exchange.as_str())
    }

    /// The trading symbol of a token.
    pub fn tradingsymbol(&self, token: InstrumentToken) -> Option<&str> {
        self.get(token).map(|i| i.tradingsymbol.as_str())
    }

    /// The lot size of a token.
    pub fn lot_size(&self, token: InstrumentToken) -> Option<u32> {
        self.get(token).map(|i| i.lot_size)
    }

    /// The tick size of a token.
    pub fn tick_size(&self, token: InstrumentToken) -> Option<Decimal> {
        self.get(token).map(|i| i.tick_size)
    }

    /// The master's segment name of a token (`NSE`, `NFO-OPT`, `INDICES`, …).
    pub fn segment(&self, token: InstrumentToken) -> Option<&str> {
        self.get(token).map(|i| i.segment.as_str())
    }

    /// The ticker segment code of a token (`token & 0xff`), known or not.
    pub fn ticker_segment(token: InstrumentToken) -> Segment {
        Segment::of(token.0)
    }

    /// All instruments, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Instrument> {
        self.by_token.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const SAMPLE: &str = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
3861249,15083,ADANIPORTS,ADANI PORT & SEZ,0.0,,0.0,0.05,1,EQ,NSE,NSE
12073986,47164,BANKNIFTY18JAN23500CE,,2528.4,2018-01-25,23500.0,0.05,40,CE,NFO-OPT,NFO
5720322,22345,NIFTY15DECFUT,,78.0,2015-12-31,,0.05,75,FUT,NFO-FUT,NFO
";

    #[test]
    fn parses_the_reference_rows() {
        let rows = parse_instruments_csv(SAMPLE.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].strike, None);
        assert_eq!(rows[0].expiry, None);
        assert_eq!(rows[0].tick_size, dec!(0.05));
        assert_eq!(rows[1].strike, Some(dec!(23500)));
        assert_eq!(rows[1].last_price, dec!(2528.4));
        assert_eq!(rows[1].expiry, NaiveDate::from_ymd_opt(2018, 1, 25));
        assert_eq!(rows[1].lot_size, 40);
        assert_eq!(rows[2].strike, None);
        assert_eq!(rows[2].segment, "NFO-FUT");
        let registry = InstrumentRegistry::from_rows(rows);
        let fut = InstrumentToken(5720322);
        assert_eq!(registry.tradingsymbol(fut), Some("NIFTY15DECFUT"));
        assert_eq!(registry.exchange(fut), Some("NFO"));
        assert_eq!(registry.lot_size(fut), Some(75));
        assert_eq!(registry.tick_size(fut), Some(dec!(0.05)));
        assert_eq!(registry.segment(fut), Some("NFO-FUT"));
        assert_eq!(InstrumentRegistry::ticker_segment(fut), Segment::NFO);
        assert_eq!(
            registry
                .by_symbol("NSE", "ADANIPORTS")
                .map(|i| i.instrument_token),
            Some(InstrumentToken(3861249))
        );
        assert!(registry.by_symbol("BSE", "ADANIPORTS").is_none());
    }

    #[test]
    fn bad_rows_name_their_line_and_column() {
        let bad = SAMPLE.replace("12073986,47164", "12073986,4x164");
        let err = parse_instruments_csv(bad.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            InstrumentsError::BadField {
                line: 3,
                column: "exchange_token",
                value: "4x164".into(),
                reason: "invalid digit found in string".into()
            }
        );
        assert!(err.to_string().contains("line 3"));
        let bad_date = SAMPLE.replace("2015-12-31", "31/12/2015");
        assert!(matches!(
            parse_instruments_csv(bad_date.as_bytes()),
            Err(InstrumentsError::BadField {
                line: 4,
                column: "expiry",
                ..
            })
        ));
        let short = SAMPLE.replace(",NFO-FUT,NFO", ",NFO-FUT");
        assert!(matches!(
            parse_instruments_csv(short.as_bytes()),
            Err(InstrumentsError::Csv { line: 4, .. })
        ));
        let no_col = "instrument_token,tradingsymbol\n1,A\n";
        assert_eq!(
            parse_instruments_csv(no_col.as_bytes()),
            Err(InstrumentsError::MissingColumn {
                column: "exchange_token"
            })
        );
    }
}
