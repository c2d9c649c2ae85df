//! Recorded ticks as CSV: parse a file into ticks (skipping bad rows, never failing on them) and write
//! ticks back out so a simulated session can be recorded and replayed.
//!
//! The first row is a header; columns are matched by name, in any order; unknown columns are ignored.
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `exchange_timestamp` | yes | RFC 3339 instant (`2025-11-21T03:45:00.250000Z`, offsets allowed) |
//! | `instrument_token` | yes | Kite instrument token (u32) |
//! | `last_price` | yes | decimal, positive |
//! | `tradingsymbol` | no | trading symbol |
//! | `last_traded_quantity` | no | u32 (default 0) |
//! | `volume_traded` | no | u64 (default 0) |
//! | `average_traded_price` | no | decimal |
//! | `total_buy_quantity`, `total_sell_quantity` | no | u64 (default 0) |
//! | `open`, `high`, `low`, `close` | no | decimals; all four or none |
//! | `oi` | no | u64 |
//!
//! An empty optional cell means "absent". A row that cannot be parsed becomes a [`BadRow`] with its
//! 1-based line number and the reason; the rest of the file is still read.

use std::str::FromStr;
use std::sync::Arc;

use alpha_panda_core::{InstrumentToken, MarketTick, Ohlc, Price, Timestamp};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ServiceError;

/// A row that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// Why the row was skipped.
    pub reason: String,
}

/// The result of parsing a tick CSV.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CsvReplay {
    /// The parsed ticks, in file order.
    pub ticks: Vec<MarketTick>,
    /// Rows that were skipped.
    pub bad_rows: Vec<BadRow>,
}

/// Column order written by [`ticks_to_csv`].
pub const COLUMNS: [&str; 14] = [
    "exchange_timestamp",
    "instrument_token",
    "tradingsymbol",
    "last_price",
    "last_traded_quantity",
    "volume_traded",
    "average_traded_price",
    "total_buy_quantity",
    "total_sell_quantity",
    "open",
    "high",
    "low",
    "close",
    "oi",
];

/// Where each of [`COLUMNS`] sits in a file, from its header: what turns one record into a tick.
#[derive(Debug, Clone)]
pub struct CsvColumns {
    positions: Vec<Option<usize>>,
}

impl CsvColumns {
    /// The columns of a file whose header row is `header`.
    ///
    /// # Errors
    /// [`ServiceError::CsvMissingColumn`] when a required column is absent.
    pub fn from_header<'h>(
        header: impl IntoIterator<Item = &'h str>,
    ) -> Result<Self, ServiceError> {
        let header: Vec<&str> = header.into_iter().map(str::trim).collect();
        let positions = COLUMNS
            .iter()
            .map(|c| header.iter().position(|h| h == c))
            .collect::<Vec<_>>();
        for required in ["exchange_timestamp", "instrument_token", "last_price"] {
            let index = COLUMNS.iter().position(|c| *c == required).unwrap_or(0);
            if positions[index].is_none() {
                return Err(ServiceError::CsvMissingColumn { column: required });
            }
        }
        Ok(Self { positions })
    }

    /// The position in a record of `COLUMNS[column]`, when the file has it.
    pub fn position(&self, column: usize) -> Option<usize> {
        self.positions[column]
    }

    /// The tick in `record`, or why the row cannot be one.
    ///
    /// # Errors
    /// The reason, naming the column and the value.
    pub fn parse(&self, record: &csv::StringRecord) -> Result<MarketTick, String> {
        parse_row(self, record)
    }

    fn get<'r>(&self, record: &'r csv::StringRecord, column: usize) -> Option<&'r str> {
        self.positions[column]
            .and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// Parses recorded ticks.
///
/// # Errors
/// [`ServiceError::CsvHeader`] when the header row cannot be read, [`ServiceError::CsvMissingColumn`]
/// when a required column is absent. Bad data rows are reported in [`CsvReplay::bad_rows`], not as
/// errors.
pub fn parse_ticks_csv(input: &str) -> Result<CsvReplay, ServiceError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| ServiceError::CsvHeader(e.to_string()))?
        .clone();
    let header = CsvColumns::from_header(header.iter())?;
    let mut out = CsvReplay::default();
    for (ordinal, record) in reader.records().enumerate() {
        let fallback_line = ordinal as u64 + 2;
        match record {
            Ok(record) => {
                let line = record.position().map_or(fallback_line, |p| p.line());
                match parse_row(&header, &record) {
                    Ok(tick) => out.ticks.push(tick),
                    Err(reason) => out.bad_rows.push(BadRow { line, reason }),
                }
            }
            Err(e) => out.bad_rows.push(BadRow {
                line: e.position().map_or(fallback_line, |p| p.line()),
                reason: format!("unreadable row: {e}"),
            }),
        }
    }
    Ok(out)
}

fn parse_row(h: &CsvColumns, r: &csv::StringRecord) -> Result<MarketTick, String> {
    let required = |i: usize| {
        h.get(r, i)
            .ok_or_else(|| format!("{} is empty", COLUMNS[i]))
    };
    let ts_text = required(0)?;
    let exchange_timestamp = DateTime::parse_from_rfc3339(ts_text)
        .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
        .map_err(|e| format!("exchange_timestamp {ts_text:?} is not RFC 3339: {e}"))?;
    let instrument_token = InstrumentToken(parse_num::<u32>(required(1)?, COLUMNS[1])?);
    let last_price = parse_price(required(3)?, COLUMNS[3])?;
    if last_price.0 <= Decimal::ZERO {
        return Err(format!("last_price {} must be positive", last_price.0));
    }
    let opt_num = |i: usize| {
        h.get(r, i)
            .map(|v| parse_num::<u64>(v, COLUMNS[i]))
            .transpose()
    };
    let opt_price = |i: usize| h.get(r, i).map(|v| parse_price(v, COLUMNS[i])).transpose();
    let last_traded_quantity = h
        .get(r, 4)
        .map(|v| parse_num::<u32>(v, COLUMNS[4]))
        .transpose()?
        .unwrap_or(0);
    let ohlc = match (
        opt_price(9)?,
        opt_price(10)?,
        opt_price(11)?,
        opt_price(12)?,
    ) {
        (Some(open), Some(high), Some(low), Some(close)) => Some(Ohlc {
            open,
            high,
            low,
            close,
        }),
        (None, None, None, None) => None,
        _ => return Err("open, high, low and close must be given together or not at all".into()),
    };
    Ok(MarketTick {
        instrument_token,
        tradingsymbol: h.get(r, 2).map(Arc::from),
        last_price,
        last_traded_quantity,
        average_traded_price: opt_price(6)?,
        volume_traded: opt_num(5)?.unwrap_or(0),
        total_buy_quantity: opt_num(7)?.unwrap_or(0),
        total_sell_quantity: opt_num(8)?.unwrap_or(0),
        ohlc,
        oi: opt_num(13)?,
        exchange_timestamp,
        depth: None,
    })
}

fn parse_num<T: FromStr>(text: &str, column: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>()
        .map_err(|e| format!("{column} {text:?} is not a valid whole number: {e}"))
}

fn parse_price(text: &str, column: &str) -> Result<Price, String> {
    Decimal::from_str(text)
        .map(Price)
        .map_err(|e| format!("{column} {text:?} is not a decimal: {e}"))
}

/// Writes ticks as CSV with the header [`COLUMNS`]; [`parse_ticks_csv`] reads it back to the same
/// ticks (market depth is not recorded).
pub fn ticks_to_csv(ticks: &[MarketTick]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    let opt = |p: Option<Price>| p.map(|p| p.0.to_string()).unwrap_or_default();
    for t in ticks {
        let ohlc = t.ohlc;
        let fields = [
            t.exchange_timestamp.to_string(),
            t.instrument_token.to_string(),
            quote(t.tradingsymbol.as_deref().unwrap_or("")),
            t.last_price.0.to_string(),
            t.last_traded_quantity.to_string(),
            t.volume_traded.to_string(),
            opt(t.average_traded_price),
            t.total_buy_quantity.to_string(),
            t.total_sell_quantity.to_string(),
            opt(ohlc.map(|o| o.open)),
            opt(ohlc.map(|o| o.high)),
            opt(ohlc.map(|o| o.low)),
            opt(ohlc.map(|o| o.close)),
            t.oi.map(|v| v.to_string()).unwrap_or_default(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// RFC 4180 quoting for a text cell.
fn quote(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market_feed::{nse_universe, TickSimulator};

    #[test]
    fn simulated_session_round_trips() {
        let mut sim = TickSimulator::new(3, nse_universe()).unwrap();
        let mut ticks: Vec<MarketTick> = (0..300)
            .map(|i| {
                sim.next_tick(
                    Timestamp::from_unix_micros(1_763_696_700_000_000 + i * 1_000).unwrap(),
                )
            })
            .collect();
        ticks[0].tradingsymbol = Some("ODD,\"NAME\"".into());
        ticks[1].oi = Some(12_345);
        ticks[2].ohlc = None;
        ticks[2].average_traded_price = None;
        let csv_text = ticks_to_csv(&ticks);
        let parsed = parse_ticks_csv(&csv_text).unwrap();
        assert!(parsed.bad_rows.is_empty(), "{:?}", parsed.bad_rows);
        assert_eq!(parsed.ticks, ticks);
    }

    #[test]
    fn minimal_columns_in_any_order_and_bad_rows_are_reported() {
        let text = "\
last_price,instrument_token,exchange_timestamp,extra
2450.05,738561,2025-11-21T09:15:00.5+05:30,x
abc,738561,2025-11-21T03:45:01Z,x
2450.10,notatoken,2025-11-21T03:45:02Z,x
2450.10,738561,yesterday,x
0,738561,2025-11-21T03:45:03Z,x
2451.00,738561,2025-11-21T03:45:04Z,x
";
        let parsed = parse_ticks_csv(text).unwrap();
        assert_eq!(parsed.ticks.len(), 2);
        assert_eq!(parsed.ticks[0].last_price.0, Decimal::new(245005, 2));
        assert_eq!(
            parsed.ticks[0].exchange_timestamp.to_string(),
            "2025-11-21T03:45:00.500000Z"
        );
        assert_eq!(parsed.ticks[0].last_traded_quantity, 0);
        assert_eq!(parsed.ticks[0].tradingsymbol, None);
        let lines: Vec<u64> = parsed.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        assert!(parsed.bad_rows[0].reason.contains("last_price"));
        assert!(parsed.bad_rows[1].reason.contains("instrument_token"));
        assert!(parsed.bad_rows[2].reason.contains("exchange_timestamp"));
        assert!(parsed.bad_rows[3].reason.contains("positive"));
    }

    #[test]
    fn partial_ohlc_is_a_bad_row_and_missing_columns_fail_the_file() {
        let text =
            "exchange_timestamp,instrument_token,last_price,open\n2025-11-21T03:45:00Z,1,10,9\n";
        let parsed = parse_ticks_csv(text).unwrap();
        assert!(parsed.ticks.is_empty());
        assert_eq!(parsed.bad_rows[0].line, 2);
        let err = parse_ticks_csv("instrument_token,last_price\n1,2\n").unwrap_err();
        assert_eq!(
            err,
            ServiceError::CsvMissingColumn {
                column: "exchange_timestamp"
            }
        );
    }

    proptest::proptest! {
        /// A recorded file is outside input: any text, and any row under the real header, is
        /// parsed or reported, never a panic; a row that parses has a plausible price.
        #[test]
        fn any_file_is_parsed_or_reported(
            text in ".{0,400}",
            cells in proptest::collection::vec("[-0-9.eE:TZ+ a-z]{0,30}", 0..8),
        ) {
            let _ = parse_ticks_csv(&text);
            let row = format!(
                "exchange_timestamp,instrument_token,last_price,volume_traded,open,high,low,close\n{}\n",
                cells.join(",")
            );
            if let Ok(replay) = parse_ticks_csv(&row) {
                for tick in &replay.ticks {
                    let _ = tick.check_plausible();
                }
            }
        }
    }
}
