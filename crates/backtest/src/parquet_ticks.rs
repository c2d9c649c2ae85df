//! Recorded ticks as Parquet, with the very columns of the tick CSV
//! (`alpha_panda_services::market_feed::csv_replay`): [`ParquetTicks`] streams a file into ticks
//! record batch by record batch, so a month of an exchange's quotes replays in the memory of one
//! batch, and reports a bad row as a [`BadRow`] without stopping; [`ParquetTickWriter`] and
//! [`write_ticks`] record ticks so that reading them back gives the same ticks.
//!
//! Columns are matched by name, in any order; unknown columns are not even decoded. The reader
//! takes the types other tools write, not only its own:
//!
//! | column | required | accepted types |
//! |---|---|---|
//! | `exchange_timestamp` | yes | Timestamp (any unit; no time zone is read as UTC), Int64 Unix microseconds, Utf8 RFC 3339 |
//! | `instrument_token` | yes | any integer type, the value within u32 |
//! | `last_price` | yes | Float64, Float32, Decimal32/64/128/256, Utf8 decimal text; positive |
//! | `tradingsymbol` | no | Utf8 (also LargeUtf8, Utf8View) |
//! | `last_traded_quantity` | no | integer within u32 (null is 0) |
//! | `volume_traded`, `total_buy_quantity`, `total_sell_quantity` | no | integer within u64 (null is 0) |
//! | `average_traded_price` | no | as `last_price` |
//! | `open`, `high`, `low`, `close` | no | as `last_price`; all four or none in a row |
//! | `oi` | no | integer within u64 |
//!
//! As in the CSV, a null or blank optional cell means "absent", and only `last_price` has to be
//! positive (Kite sends zeros in the other prices before an instrument's first trade). A float is
//! taken at its shortest decimal form, so a Float64 `2450.05` is the price 2450.05, not the binary
//! fraction next to it. Market depth is not recorded.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use alpha_panda_core::{ErrorClass, InstrumentToken, MarketTick, Ohlc, Price, Timestamp};
use alpha_panda_services::BadRow;
use arrow_array::builder::{
    StringBuilder, TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, LargeStringArray, PrimitiveArray, RecordBatch,
    RecordBatchReader, StringArray, StringViewArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use rust_decimal::Decimal;

use crate::csv_ticks::SymbolCache;

const EXCHANGE_TIMESTAMP: &str = "exchange_timestamp";
const INSTRUMENT_TOKEN: &str = "instrument_token";
const TRADINGSYMBOL: &str = "tradingsymbol";
const LAST_PRICE: &str = "last_price";
const LAST_TRADED_QUANTITY: &str = "last_traded_quantity";
const VOLUME_TRADED: &str = "volume_traded";
const AVERAGE_TRADED_PRICE: &str = "average_traded_price";
const TOTAL_BUY_QUANTITY: &str = "total_buy_quantity";
const TOTAL_SELL_QUANTITY: &str = "total_sell_quantity";
const OPEN: &str = "open";
const HIGH: &str = "high";
const LOW: &str = "low";
const CLOSE: &str = "close";
const OI: &str = "oi";

/// The columns in the order [`ParquetTickWriter`] writes them: the CSV's, name for name (a test
/// holds the two lists equal, so a file converted between the formats keeps its meaning).
const COLUMNS: [&str; 14] = [
    EXCHANGE_TIMESTAMP,
    INSTRUMENT_TOKEN,
    TRADINGSYMBOL,
    LAST_PRICE,
    LAST_TRADED_QUANTITY,
    VOLUME_TRADED,
    AVERAGE_TRADED_PRICE,
    TOTAL_BUY_QUANTITY,
    TOTAL_SELL_QUANTITY,
    OPEN,
    HIGH,
    LOW,
    CLOSE,
    OI,
];

/// Rows decoded at a time: what bounds the reader's memory, and the writer's before a row group.
const BATCH_ROWS: usize = 8192;

/// Rows per row group written: large enough for good compression and few footer entries, small
/// enough that the writer's in-progress group stays a few megabytes.
const ROW_GROUP_ROWS: usize = 65_536;

/// Every Parquet file starts and ends with these bytes.
const MAGIC: [u8; 4] = *b"PAR1";

/// The largest mantissa a [`Decimal`] holds (96 bits).
const MAX_DECIMAL_MANTISSA: u128 = (1 << 96) - 1;

/// What went wrong opening, reading or writing a tick Parquet file. Rows that cannot become ticks
/// are not errors: the reader yields them as [`BadRow`]s.
#[derive(Debug, thiserror::Error)]
pub enum ParquetTicksError {
    /// The file could not be opened or read.
    #[error("cannot read tick file {path}: {source}; check the path and its permissions")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file does not start with the Parquet magic bytes.
    #[error(
        "{path} is not a Parquet file (it does not start with `PAR1`); pass a .parquet tick file, or replay a tick CSV through the CSV reader"
    )]
    NotParquet {
        /// The file.
        path: PathBuf,
    },
    /// The file starts like Parquet but has no footer: its writing never finished.
    #[error(
        "{path} starts like a Parquet file but has no footer, so its writing was interrupted; record the ticks again"
    )]
    Unfinished {
        /// The file.
        path: PathBuf,
    },
    /// The file's metadata or schema cannot be decoded.
    #[error("{path} is a damaged Parquet file: {source}; export it again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader reported.
        source: ParquetError,
    },
    /// A required column is absent.
    #[error(
        "{path} has no column `{column}`; a tick file needs exchange_timestamp, instrument_token and last_price, named as in the tick CSV"
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: &'static str,
    },
    /// A known column holds a type that cannot mean what the column means.
    #[error("{path}: column `{column}` is {found}, but it must be {accepted}; convert it when exporting the file")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
        /// The column's Arrow type in the file.
        found: DataType,
        /// What the column may be.
        accepted: &'static str,
    },
    /// The output file could not be created.
    #[error(
        "cannot create tick file {path}: {source}; check that its directory exists and is writable"
    )]
    Create {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Encoding or writing ticks failed; the file is incomplete.
    #[error("writing tick file {path} failed: {source}; the file is incomplete, so delete it and record again")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the Parquet writer reported.
        source: ParquetError,
    },
}

impl ParquetTicksError {
    /// How a caller should treat the error: the file system failing is infrastructure, a file that
    /// can never be a tick file is a business refusal (as for the tick CSV).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Open { .. } | Self::Create { .. } | Self::Write { .. } => {
                ErrorClass::Infrastructure
            }
            Self::NotParquet { .. }
            | Self::Unfinished { .. }
            | Self::Corrupt { .. }
            | Self::MissingColumn { .. }
            | Self::UnsupportedType { .. } => ErrorClass::Business,
        }
    }
}

/// The ticks of a Parquet file, in file order, decoded one record batch at a time.
///
/// Each row is either a tick or a [`BadRow`] whose `line` is the 1-based row number in the file
/// (the first data row is 1: Parquet has no header row) and whose reason starts with the 0-based
/// row group, as `pyarrow`'s `read_row_group` counts them. Should a batch be undecodable (a damaged
/// page), one `BadRow` says so at the first row it held and the iteration ends there.
pub struct ParquetTicks {
    batches: ParquetRecordBatchReader,
    /// Cumulative row counts: row group `g` holds rows `ends[g - 1]..ends[g]`.
    row_group_ends: Vec<u64>,
    rows: u64,
    /// File row index of the first row of the next batch.
    next_row: u64,
    pending: std::vec::IntoIter<Result<MarketTick, BadRow>>,
    symbols: SymbolCache,
    finished: bool,
}

impl ParquetTicks {
    /// Opens a tick file and checks its schema; no row is decoded yet.
    ///
    /// # Errors
    /// [`ParquetTicksError::Open`] when the file cannot be read, [`ParquetTicksError::NotParquet`] /
    /// [`ParquetTicksError::Unfinished`] / [`ParquetTicksError::Corrupt`] when it is not a whole
    /// Parquet file, [`ParquetTicksError::MissingColumn`] without a required column and
    /// [`ParquetTicksError::UnsupportedType`] when a known column has a type it cannot have.
    pub fn open(path: &Path) -> Result<Self, ParquetTicksError> {
        let builder = reader_builder(path)?;
        let corrupt = |source| ParquetTicksError::Corrupt {
            path: path.to_path_buf(),
            source,
        };
        let roots: Vec<usize> = COLUMNS
            .iter()
            .filter_map(|name| builder.schema().index_of(name).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let row_group_ends: Vec<u64> = builder
            .metadata()
            .row_groups()
            .iter()
            .scan(0u64, |end, group| {
                *end += u64::try_from(group.num_rows()).unwrap_or(0);
                Some(*end)
            })
            .collect();
        let rows = row_group_ends.last().copied().unwrap_or(0);
        let batches = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(corrupt)?;
        // The batches share this schema, so checking it once here is checking every batch.
        BatchColumns::new(&RecordBatch::new_empty(batches.schema()))
            .map_err(|problem| problem.into_error(path))?;
        Ok(Self {
            batches,
            row_group_ends,
            rows,
            next_row: 0,
            pending: Vec::new().into_iter(),
            symbols: SymbolCache::default(),
            finished: false,
        })
    }

    /// The number of rows the file holds, ticks and bad rows together (from its footer).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn decode(&mut self, batch: &RecordBatch) -> Vec<Result<MarketTick, BadRow>> {
        let first = self.next_row;
        let count = batch.num_rows();
        self.next_row += count as u64;
        let ends = &self.row_group_ends;
        let bad = |index: usize, reason: &str| BadRow {
            line: first + index as u64 + 1,
            reason: format!(
                "row group {}: {reason}",
                row_group_of(ends, first + index as u64)
            ),
        };
        match BatchColumns::new(batch) {
            Ok(columns) => (0..count)
                .map(|i| {
                    columns
                        .tick(i, &mut self.symbols)
                        .map_err(|reason| bad(i, &reason))
                })
                .collect(),
            // Not expected (the schema was checked at open), but every lost row is still reported.
            Err(problem) => {
                let reason = problem.describe();
                (0..count).map(|i| Err(bad(i, &reason))).collect()
            }
        }
    }
}

impl Iterator for ParquetTicks {
    type Item = Result<MarketTick, BadRow>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.pending.next() {
                return Some(row);
            }
            if self.finished {
                return None;
            }
            match self.batches.next() {
                None => {
                    self.finished = true;
                    return None;
                }
                Some(Ok(batch)) => self.pending = self.decode(&batch).into_iter(),
                Some(Err(e)) => {
                    // The reader's position inside a damaged page is unknown: go no further.
                    self.finished = true;
                    let row = self.next_row;
                    return Some(Err(BadRow {
                        line: row + 1,
                        reason: format!(
                            "row group {}: cannot be decoded ({e}); the rest of the file is skipped",
                            row_group_of(&self.row_group_ends, row)
                        ),
                    }));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let pending = self.pending.len();
        if self.finished {
            return (pending, Some(pending));
        }
        let remaining = usize::try_from(self.rows.saturating_sub(self.next_row)).ok();
        (pending, remaining.and_then(|r| r.checked_add(pending)))
    }
}

impl std::iter::FusedIterator for ParquetTicks {}

/// A reader of the whole Parquet file at `path`, its magic checked.
fn reader_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, ParquetTicksError> {
    let file = File::open(path).map_err(|source| ParquetTicksError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    check_magic(&file, path)?;
    // Parquet's own logical types, not the writer's Arrow hints: a pandas categorical or a
    // large string then reads as plain Utf8, which leaves fewer types to accept.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).map_err(|source| {
        ParquetTicksError::Corrupt {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The instrument tokens a Parquet tick file holds and its rows, reading its `instrument_token`
/// column alone (what a strategy over "every instrument in the file" needs before the backtest).
///
/// # Errors
/// As [`ParquetTicks::open`].
pub fn instrument_tokens(path: &Path) -> Result<(u64, BTreeSet<u32>), ParquetTicksError> {
    let builder = reader_builder(path)?;
    let corrupt = |source| ParquetTicksError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let Ok(index) = builder.schema().index_of(INSTRUMENT_TOKEN) else {
        return Err(ParquetTicksError::MissingColumn {
            path: path.to_path_buf(),
            column: INSTRUMENT_TOKEN,
        });
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let mut tokens = BTreeSet::new();
    for batch in builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(corrupt)?
    {
        let batch = batch.map_err(|e| corrupt(e.into()))?;
        let Some(column) = Ints::new(batch.column(0).as_ref()) else {
            break;
        };
        for row in 0..batch.num_rows() {
            if let Some(token) = column.get(row).and_then(|t| u32::try_from(t).ok()) {
                tokens.insert(token);
            }
        }
    }
    Ok((rows, tokens))
}

/// Fails unless the file starts and ends with the Parquet magic, so that a CSV handed over by
/// mistake, or a recording cut short, is named as such rather than as a "corrupt footer".
fn check_magic(file: &File, path: &Path) -> Result<(), ParquetTicksError> {
    let io = |source| ParquetTicksError::Open {
        path: path.to_path_buf(),
        source,
    };
    let magic_at = |mut file: &File, from: SeekFrom| -> std::io::Result<bool> {
        let mut magic = [0u8; 4];
        file.seek(from)?;
        file.read_exact(&mut magic)?;
        Ok(magic == MAGIC)
    };
    let len = file.metadata().map_err(io)?.len();
    if len < 4 || !magic_at(file, SeekFrom::Start(0)).map_err(io)? {
        return Err(ParquetTicksError::NotParquet {
            path: path.to_path_buf(),
        });
    }
    // Head magic, a 4-byte footer length and the tail magic at the very least.
    if len < 12 || !magic_at(file, SeekFrom::End(-4)).map_err(io)? {
        return Err(ParquetTicksError::Unfinished {
            path: path.to_path_buf(),
        });
    }
    // The Parquet reader seeks to what it reads, so the position left here does not matter.
    Ok(())
}

/// The 0-based row group holding file row `row`.
fn row_group_of(ends: &[u64], row: u64) -> usize {
    ends.partition_point(|&end| end <= row)
}

/// Why a batch's columns cannot be read.
enum ColumnProblem {
    Missing(&'static str),
    Type {
        column: &'static str,
        found: DataType,
        accepted: &'static str,
    },
}

impl ColumnProblem {
    fn into_error(self, path: &Path) -> ParquetTicksError {
        let path = path.to_path_buf();
        match self {
            Self::Missing(column) => ParquetTicksError::MissingColumn { path, column },
            Self::Type {
                column,
                found,
                accepted,
            } => ParquetTicksError::UnsupportedType {
                path,
                column,
                found,
                accepted,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Missing(column) => format!("column {column} is missing"),
            Self::Type {
                column,
                found,
                accepted,
            } => format!("column {column} is {found}, not {accepted}"),
        }
    }
}

const TIME_TYPES: &str = "a Timestamp, Int64 Unix microseconds or Utf8 RFC 3339 text";
const INT_TYPES: &str = "an integer type (Int8 to Int64, UInt8 to UInt64)";
const PRICE_TYPES: &str = "Float64, Float32, a Decimal type or Utf8 decimal text";
const TEXT_TYPES: &str = "Utf8, LargeUtf8 or Utf8View";

/// One batch's known columns, each viewed with its type resolved once.
struct BatchColumns<'a> {
    exchange_timestamp: Times<'a>,
    instrument_token: Ints<'a>,
    tradingsymbol: Option<Text<'a>>,
    last_price: Prices<'a>,
    last_traded_quantity: Option<Ints<'a>>,
    volume_traded: Option<Ints<'a>>,
    average_traded_price: Option<Prices<'a>>,
    total_buy_quantity: Option<Ints<'a>>,
    total_sell_quantity: Option<Ints<'a>>,
    ohlc: [Option<Prices<'a>>; 4],
    oi: Option<Ints<'a>>,
}

impl<'a> BatchColumns<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, ColumnProblem> {
        fn optional<'a, V>(
            batch: &'a RecordBatch,
            column: &'static str,
            accepted: &'static str,
            view: fn(&'a dyn Array) -> Option<V>,
        ) -> Result<Option<V>, ColumnProblem> {
            let Some(array) = batch.column_by_name(column) else {
                return Ok(None);
            };
            view(array.as_ref())
                .map(Some)
                .ok_or_else(|| ColumnProblem::Type {
                    column,
                    found: array.data_type().clone(),
                    accepted,
                })
        }
        fn required<'a, V>(
            batch: &'a RecordBatch,
            column: &'static str,
            accepted: &'static str,
            view: fn(&'a dyn Array) -> Option<V>,
        ) -> Result<V, ColumnProblem> {
            optional(batch, column, accepted, view)?.ok_or(ColumnProblem::Missing(column))
        }
        Ok(Self {
            exchange_timestamp: required(batch, EXCHANGE_TIMESTAMP, TIME_TYPES, Times::new)?,
            instrument_token: required(batch, INSTRUMENT_TOKEN, INT_TYPES, Ints::new)?,
            tradingsymbol: optional(batch, TRADINGSYMBOL, TEXT_TYPES, Text::new)?,
            last_price: required(batch, LAST_PRICE, PRICE_TYPES, Prices::new)?,
            last_traded_quantity: optional(batch, LAST_TRADED_QUANTITY, INT_TYPES, Ints::new)?,
            volume_traded: optional(batch, VOLUME_TRADED, INT_TYPES, Ints::new)?,
            average_traded_price: optional(batch, AVERAGE_TRADED_PRICE, PRICE_TYPES, Prices::new)?,
            total_buy_quantity: optional(batch, TOTAL_BUY_QUANTITY, INT_TYPES, Ints::new)?,
            total_sell_quantity: optional(batch, TOTAL_SELL_QUANTITY, INT_TYPES, Ints::new)?,
            ohlc: [
                optional(batch, OPEN, PRICE_TYPES, Prices::new)?,
                optional(batch, HIGH, PRICE_TYPES, Prices::new)?,
                optional(batch, LOW, PRICE_TYPES, Prices::new)?,
                optional(batch, CLOSE, PRICE_TYPES, Prices::new)?,
            ],
            oi: optional(batch, OI, INT_TYPES, Ints::new)?,
        })
    }

    /// The tick in row `row` of the batch, or why the row cannot be one (the CSV's rules).
    fn tick(&self, row: usize, symbols: &mut SymbolCache) -> Result<MarketTick, String> {
        let exchange_timestamp = self
            .exchange_timestamp
            .get(row)?
            .ok_or_else(|| format!("{EXCHANGE_TIMESTAMP} is null"))?;
        let token = self
            .instrument_token
            .get(row)
            .ok_or_else(|| format!("{INSTRUMENT_TOKEN} is null"))?;
        let token = whole::<u32>(token, INSTRUMENT_TOKEN)?;
        let last_price = self
            .last_price
            .get(row, LAST_PRICE)?
            .ok_or_else(|| format!("{LAST_PRICE} is null"))?;
        if last_price <= Decimal::ZERO {
            return Err(format!("{LAST_PRICE} {last_price} must be positive"));
        }
        let quantity = |column: &Option<Ints<'_>>, name: &str| {
            column
                .as_ref()
                .and_then(|c| c.get(row))
                .map(|v| whole::<u64>(v, name))
                .transpose()
        };
        let price = |column: &Option<Prices<'_>>, name: &str| {
            column
                .as_ref()
                .map(|c| c.get(row, name))
                .transpose()
                .map(|p| p.flatten().map(Price))
        };
        let last_traded_quantity = self
            .last_traded_quantity
            .as_ref()
            .and_then(|c| c.get(row))
            .map(|v| whole::<u32>(v, LAST_TRADED_QUANTITY))
            .transpose()?
            .unwrap_or(0);
        let [open, high, low, close] = &self.ohlc;
        let ohlc = match (
            price(open, OPEN)?,
            price(high, HIGH)?,
            price(low, LOW)?,
            price(close, CLOSE)?,
        ) {
            (Some(open), Some(high), Some(low), Some(close)) => Some(Ohlc {
                open,
                high,
                low,
                close,
            }),
            (None, None, None, None) => None,
            _ => {
                return Err("open, high, low and close must be given together or not at all".into())
            }
        };
        Ok(MarketTick {
            instrument_token: InstrumentToken(token),
            tradingsymbol: self
                .tradingsymbol
                .as_ref()
                .and_then(|c| c.get(row))
                .map(|text| symbols.intern(token, text)),
            last_price: Price(last_price),
            last_traded_quantity,
            average_traded_price: price(&self.average_traded_price, AVERAGE_TRADED_PRICE)?,
            volume_traded: quantity(&self.volume_traded, VOLUME_TRADED)?.unwrap_or(0),
            total_buy_quantity: quantity(&self.total_buy_quantity, TOTAL_BUY_QUANTITY)?
                .unwrap_or(0),
            total_sell_quantity: quantity(&self.total_sell_quantity, TOTAL_SELL_QUANTITY)?
                .unwrap_or(0),
            ohlc,
            oi: quantity(&self.oi, OI)?,
            exchange_timestamp,
            depth: None,
        })
    }
}

/// An integer cell as the unsigned type of its field.
fn whole<T: TryFrom<i128>>(value: i128, column: &str) -> Result<T, String> {
    T::try_from(value).map_err(|_| {
        format!(
            "{column} {value} is out of range (it must be a whole number that fits a {})",
            std::any::type_name::<T>()
        )
    })
}

/// A text column.
enum Text<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    fn new(array: &'a dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8 => array.as_string_opt::<i32>().map(Self::Utf8),
            DataType::LargeUtf8 => array.as_string_opt::<i64>().map(Self::Large),
            DataType::Utf8View => array.as_string_view_opt().map(Self::View),
            _ => None,
        }
    }

    /// The trimmed text, `None` when null or blank (an empty CSV cell, in the CSV's terms).
    fn get(&self, row: usize) -> Option<&'a str> {
        let text = match self {
            Self::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Self::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Self::View(a) => a.is_valid(row).then(|| a.value(row)),
        };
        text.map(trim).filter(|t| !t.is_empty())
    }
}

/// `text` without the white space around it. A cell that starts and ends with a printable ASCII
/// character (every cell a tick file usually holds) has none, and is not walked for it.
fn trim(text: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
    if printable(text.as_bytes().first()) && printable(text.as_bytes().last()) {
        text
    } else {
        text.trim()
    }
}

/// An integer column, whatever its width and signedness.
enum Ints<'a> {
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
}

impl<'a> Ints<'a> {
    fn new(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Int8 => Self::I8(array.as_primitive_opt()?),
            DataType::Int16 => Self::I16(array.as_primitive_opt()?),
            DataType::Int32 => Self::I32(array.as_primitive_opt()?),
            DataType::Int64 => Self::I64(array.as_primitive_opt()?),
            DataType::UInt8 => Self::U8(array.as_primitive_opt()?),
            DataType::UInt16 => Self::U16(array.as_primitive_opt()?),
            DataType::UInt32 => Self::U32(array.as_primitive_opt()?),
            DataType::UInt64 => Self::U64(array.as_primitive_opt()?),
            _ => return None,
        })
    }

    /// The value widened to i128, which holds every integer type; `None` when null.
    fn get(&self, row: usize) -> Option<i128> {
        match self {
            Self::I8(a) => int_at(a, row),
            Self::I16(a) => int_at(a, row),
            Self::I32(a) => int_at(a, row),
            Self::I64(a) => int_at(a, row),
            Self::U8(a) => int_at(a, row),
            Self::U16(a) => int_at(a, row),
            Self::U32(a) => int_at(a, row),
            Self::U64(a) => int_at(a, row),
        }
    }
}

fn int_at<T: ArrowPrimitiveType>(array: &PrimitiveArray<T>, row: usize) -> Option<i128>
where
    T::Native: Into<i128>,
{
    array.is_valid(row).then(|| array.value(row).into())
}

/// The `exchange_timestamp` column.
enum Times<'a> {
    Seconds(&'a PrimitiveArray<TimestampSecondType>),
    Millis(&'a PrimitiveArray<TimestampMillisecondType>),
    Micros(&'a PrimitiveArray<TimestampMicrosecondType>),
    Nanos(&'a PrimitiveArray<TimestampNanosecondType>),
    UnixMicros(&'a PrimitiveArray<Int64Type>),
    Rfc3339(Text<'a>),
}

impl<'a> Times<'a> {
    fn new(array: &'a dyn Array) -> Option<Self> {
        // An Arrow timestamp stores the instant since the epoch whatever its time zone label, so
        // the label never changes the value; without one the column is taken to be UTC.
        Some(match array.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => Self::Seconds(array.as_primitive_opt()?),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Self::Millis(array.as_primitive_opt()?)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Self::Micros(array.as_primitive_opt()?)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Self::Nanos(array.as_primitive_opt()?),
            DataType::Int64 => Self::UnixMicros(array.as_primitive_opt()?),
            _ => Self::Rfc3339(Text::new(array)?),
        })
    }

    /// The instant, truncated to microseconds like [`Timestamp`]; `Ok(None)` when null.
    fn get(&self, row: usize) -> Result<Option<Timestamp>, String> {
        fn scaled<T: ArrowPrimitiveType<Native = i64>>(
            array: &PrimitiveArray<T>,
            row: usize,
            to_micros: fn(i64) -> Option<i64>,
            unit: &str,
        ) -> Result<Option<Timestamp>, String> {
            if array.is_null(row) {
                return Ok(None);
            }
            let value = array.value(row);
            to_micros(value)
                .and_then(Timestamp::from_unix_micros)
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "{EXCHANGE_TIMESTAMP} {value} {unit} is outside the representable dates"
                    )
                })
        }
        match self {
            Self::Seconds(a) => scaled(a, row, |s| s.checked_mul(1_000_000), "s"),
            Self::Millis(a) => scaled(a, row, |ms| ms.checked_mul(1_000), "ms"),
            Self::Micros(a) => scaled(a, row, Some, "µs"),
            // Floor, as Timestamp::from_datetime drops the sub-microsecond part of an instant.
            Self::Nanos(a) => scaled(a, row, |ns| Some(ns.div_euclid(1_000)), "ns"),
            Self::UnixMicros(a) => scaled(a, row, Some, "µs"),
            Self::Rfc3339(text) => text
                .get(row)
                .map(|text| {
                    DateTime::parse_from_rfc3339(text)
                        .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
                        .map_err(|e| format!("{EXCHANGE_TIMESTAMP} {text:?} is not RFC 3339: {e}"))
                })
                .transpose(),
        }
    }
}

/// A price column.
enum Prices<'a> {
    F64(&'a Float64Array),
    F32(&'a Float32Array),
    D32(&'a PrimitiveArray<Decimal32Type>, i8),
    D64(&'a PrimitiveArray<Decimal64Type>, i8),
    D128(&'a PrimitiveArray<Decimal128Type>, i8),
    D256(&'a PrimitiveArray<Decimal256Type>, i8),
    Text(Text<'a>),
}

impl<'a> Prices<'a> {
    fn new(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Float64 => Self::F64(array.as_primitive_opt()?),
            DataType::Float32 => Self::F32(array.as_primitive_opt()?),
            DataType::Decimal32(_, scale) => Self::D32(array.as_primitive_opt()?, *scale),
            DataType::Decimal64(_, scale) => Self::D64(array.as_primitive_opt()?, *scale),
            DataType::Decimal128(_, scale) => Self::D128(array.as_primitive_opt()?, *scale),
            DataType::Decimal256(_, scale) => Self::D256(array.as_primitive_opt()?, *scale),
            _ => Self::Text(Text::new(array)?),
        })
    }

    /// The exact decimal; `Ok(None)` when null (or blank text).
    fn get(&self, row: usize, column: &str) -> Result<Option<Decimal>, String> {
        let valid = |a: &dyn Array| a.is_valid(row);
        match self {
            // Display writes a float's shortest decimal form, the digits its writer meant.
            Self::F64(a) => valid(*a)
                .then(|| float_decimal(a.value(row).is_finite(), a.value(row).to_string(), column))
                .transpose(),
            Self::F32(a) => valid(*a)
                .then(|| float_decimal(a.value(row).is_finite(), a.value(row).to_string(), column))
                .transpose(),
            Self::D32(a, scale) => valid(*a)
                .then(|| scaled_decimal(a.value(row).into(), *scale, column))
                .transpose(),
            Self::D64(a, scale) => valid(*a)
                .then(|| scaled_decimal(a.value(row).into(), *scale, column))
                .transpose(),
            Self::D128(a, scale) => valid(*a)
                .then(|| scaled_decimal(a.value(row), *scale, column))
                .transpose(),
            Self::D256(a, scale) => valid(*a)
                .then(|| {
                    let value = a.value(row);
                    value
                        .to_i128()
                        .ok_or_else(|| format!("{column} {value} (scale {scale}) is out of range"))
                        .and_then(|mantissa| scaled_decimal(mantissa, *scale, column))
                })
                .transpose(),
            Self::Text(text) => text
                .get(row)
                .map(|text| match crate::csv_ticks::decimal(text.as_bytes()) {
                    Some(plain) => Ok(plain),
                    None => Decimal::from_str(text)
                        .map_err(|e| format!("{column} {text:?} is not a decimal: {e}")),
                })
                .transpose(),
        }
    }
}

fn float_decimal(finite: bool, shortest: String, column: &str) -> Result<Decimal, String> {
    if !finite {
        return Err(format!("{column} {shortest} is not a finite number"));
    }
    Decimal::from_str(&shortest).map_err(|e| format!("{column} {shortest} is out of range: {e}"))
}

/// `mantissa × 10^-scale` as a [`Decimal`].
fn scaled_decimal(mantissa: i128, scale: i8, column: &str) -> Result<Decimal, String> {
    let out_of_range =
        || format!("{column} {mantissa} (scale {scale}) does not fit a 28-digit decimal");
    let (mut mantissa, mut scale) = (mantissa, scale);
    // A column's scale is fixed (Decimal128(38, 30) is legal) while a Decimal holds 28 places in
    // 96 bits: trailing zeros that do not change the value are dropped to make it fit.
    while scale > 0
        && mantissa % 10 == 0
        && (scale > 28 || mantissa.unsigned_abs() > MAX_DECIMAL_MANTISSA)
    {
        mantissa /= 10;
        scale -= 1;
    }
    if scale >= 0 {
        return Decimal::try_from_i128_with_scale(mantissa, u32::from(scale.unsigned_abs()))
            .map_err(|_| out_of_range());
    }
    let mut value = Decimal::try_from_i128_with_scale(mantissa, 0).map_err(|_| out_of_range())?;
    for _ in 0..scale.unsigned_abs() {
        value = value.checked_mul(Decimal::TEN).ok_or_else(out_of_range)?;
    }
    Ok(value)
}

/// Records ticks to a Parquet file, streaming: rows are encoded a batch at a time and flushed in
/// row groups of 65,536, so memory stays flat however long the session.
///
/// The columns are the CSV's. Prices are Utf8 decimal text: the one Arrow type that holds every
/// [`Decimal`] exactly, scale included (`2450.10` stays `2450.10`), with no scale to fix before
/// the first row; dictionary encoding and Snappy keep it small. Timestamps are
/// `Timestamp(Microsecond, "UTC")`, the token `UInt32`, quantities `UInt32`/`UInt64`, and the
/// optional fields nullable. Market depth is not recorded.
///
/// Call [`ParquetTickWriter::finish`]: a writer dropped without it leaves a file with no footer,
/// which [`ParquetTicks::open`] refuses as unfinished.
pub struct ParquetTickWriter {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    columns: Builders,
    buffered: usize,
    rows: u64,
}

/// The columns of the batch being filled, in [`COLUMNS`] order.
struct Builders {
    exchange_timestamp: TimestampMicrosecondBuilder,
    instrument_token: UInt32Builder,
    tradingsymbol: StringBuilder,
    last_price: StringBuilder,
    last_traded_quantity: UInt32Builder,
    volume_traded: UInt64Builder,
    average_traded_price: StringBuilder,
    total_buy_quantity: UInt64Builder,
    total_sell_quantity: UInt64Builder,
    ohlc: [StringBuilder; 4],
    oi: UInt64Builder,
}

impl Builders {
    fn new() -> Self {
        let text = || StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8);
        Self {
            exchange_timestamp: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS)
                .with_timezone("UTC"),
            instrument_token: UInt32Builder::with_capacity(BATCH_ROWS),
            tradingsymbol: text(),
            last_price: text(),
            last_traded_quantity: UInt32Builder::with_capacity(BATCH_ROWS),
            volume_traded: UInt64Builder::with_capacity(BATCH_ROWS),
            average_traded_price: text(),
            total_buy_quantity: UInt64Builder::with_capacity(BATCH_ROWS),
            total_sell_quantity: UInt64Builder::with_capacity(BATCH_ROWS),
            ohlc: [text(), text(), text(), text()],
            oi: UInt64Builder::with_capacity(BATCH_ROWS),
        }
    }

    fn append(&mut self, tick: &MarketTick) {
        self.exchange_timestamp
            .append_value(tick.exchange_timestamp.unix_micros());
        self.instrument_token.append_value(tick.instrument_token.0);
        self.tradingsymbol
            .append_option(tick.tradingsymbol.as_deref());
        append_price(&mut self.last_price, Some(tick.last_price));
        self.last_traded_quantity
            .append_value(tick.last_traded_quantity);
        self.volume_traded.append_value(tick.volume_traded);
        append_price(&mut self.average_traded_price, tick.average_traded_price);
        self.total_buy_quantity
            .append_value(tick.total_buy_quantity);
        self.total_sell_quantity
            .append_value(tick.total_sell_quantity);
        let [open, high, low, close] = &mut self.ohlc;
        let ohlc = tick.ohlc;
        append_price(open, ohlc.map(|o| o.open));
        append_price(high, ohlc.map(|o| o.high));
        append_price(low, ohlc.map(|o| o.low));
        append_price(close, ohlc.map(|o| o.close));
        self.oi.append_option(tick.oi);
    }

    /// The filled columns as arrays, leaving the builders empty for the next batch.
    fn finish(&mut self) -> Vec<ArrayRef> {
        let [open, high, low, close] = &mut self.ohlc;
        vec![
            Arc::new(self.exchange_timestamp.finish()),
            Arc::new(self.instrument_token.finish()),
            Arc::new(self.tradingsymbol.finish()),
            Arc::new(self.last_price.finish()),
            Arc::new(self.last_traded_quantity.finish()),
            Arc::new(self.volume_traded.finish()),
            Arc::new(self.average_traded_price.finish()),
            Arc::new(self.total_buy_quantity.finish()),
            Arc::new(self.total_sell_quantity.finish()),
            Arc::new(open.finish()),
            Arc::new(high.finish()),
            Arc::new(low.finish()),
            Arc::new(close.finish()),
            Arc::new(self.oi.finish()),
        ]
    }
}

fn append_price(builder: &mut StringBuilder, price: Option<Price>) {
    match price {
        Some(price) => {
            // Formatted straight into the builder's buffer, with no String per cell; writing to
            // memory cannot fail, so the fmt::Result carries nothing.
            let _ = write!(builder, "{}", price.0);
            builder.append_value("");
        }
        None => builder.append_null(),
    }
}

/// The schema [`ParquetTickWriter`] writes.
fn tick_schema() -> Schema {
    let price = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Schema::new(vec![
        Field::new(
            EXCHANGE_TIMESTAMP,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(INSTRUMENT_TOKEN, DataType::UInt32, false),
        Field::new(TRADINGSYMBOL, DataType::Utf8, true),
        price(LAST_PRICE, false),
        Field::new(LAST_TRADED_QUANTITY, DataType::UInt32, false),
        Field::new(VOLUME_TRADED, DataType::UInt64, false),
        price(AVERAGE_TRADED_PRICE, true),
        Field::new(TOTAL_BUY_QUANTITY, DataType::UInt64, false),
        Field::new(TOTAL_SELL_QUANTITY, DataType::UInt64, false),
        price(OPEN, true),
        price(HIGH, true),
        price(LOW, true),
        price(CLOSE, true),
        Field::new(OI, DataType::UInt64, true),
    ])
}

impl ParquetTickWriter {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    /// [`ParquetTicksError::Create`] when the file cannot be created, [`ParquetTicksError::Write`]
    /// when the Parquet header cannot be written.
    pub fn create(path: &Path) -> Result<Self, ParquetTicksError> {
        let file = File::create(path).map_err(|source| ParquetTicksError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let schema = Arc::new(tick_schema());
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties)).map_err(
            |source| ParquetTicksError::Write {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Ok(Self {
            path: path.to_path_buf(),
            schema,
            writer,
            columns: Builders::new(),
            buffered: 0,
            rows: 0,
        })
    }

    /// Appends one tick (its depth is not recorded).
    ///
    /// # Errors
    /// [`ParquetTicksError::Write`] when a full batch cannot be encoded or written; the file is
    /// then incomplete.
    pub fn write(&mut self, tick: &MarketTick) -> Result<(), ParquetTicksError> {
        self.columns.append(tick);
        self.buffered += 1;
        if self.buffered == BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Writes what is buffered and the footer, and returns the number of ticks in the file.
    ///
    /// # Errors
    /// [`ParquetTicksError::Write`] when the last rows or the footer cannot be written.
    pub fn finish(mut self) -> Result<u64, ParquetTicksError> {
        self.flush_batch()?;
        let path = self.path;
        self.writer
            .close()
            .map_err(|source| ParquetTicksError::Write { path, source })?;
        Ok(self.rows)
    }

    fn flush_batch(&mut self) -> Result<(), ParquetTicksError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let write_error = |source| ParquetTicksError::Write {
            path: self.path.clone(),
            source,
        };
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), self.columns.finish())
            .map_err(|e| write_error(e.into()))?;
        self.writer.write(&batch).map_err(write_error)?;
        self.rows += self.buffered as u64;
        self.buffered = 0;
        Ok(())
    }
}

/// Records `ticks` to a new Parquet file at `path` (see [`ParquetTickWriter`]) and returns how
/// many were written.
///
/// # Errors
/// As [`ParquetTickWriter::create`], [`ParquetTickWriter::write`] and
/// [`ParquetTickWriter::finish`].
pub fn write_ticks(
    path: &Path,
    ticks: impl IntoIterator<Item = MarketTick>,
) -> Result<u64, ParquetTicksError> {
    let mut writer = ParquetTickWriter::create(path)?;
    for tick in ticks {
        writer.write(&tick)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BooleanArray, Decimal128Array, Int32Array, Int64Array, TimestampMillisecondArray,
        TimestampNanosecondArray, UInt64Array,
    };
    use rust_decimal_macros::dec;

    /// 2025-11-21T03:45:00Z, 09:15 IST: the open.
    const OPEN_MICROS: i64 = 1_763_696_700_000_000;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(micros).unwrap()
    }

    fn tick(i: u64) -> MarketTick {
        let token = [738_561u32, 256_265, 12_345_678][(i % 3) as usize];
        // Every fifth tick has none of the optional fields.
        let full = i % 5 != 4;
        // Scales vary on purpose: 2450.10 must come back as 2450.10, not 2450.1.
        let last_price = Price(Decimal::new(245_010 + (i % 7) as i64, 2));
        MarketTick {
            instrument_token: InstrumentToken(token),
            tradingsymbol: full
                .then(|| Arc::from(["RELIANCE", "NIFTY 50", "ODD,\"NAME\""][(i % 3) as usize])),
            last_price,
            last_traded_quantity: (i % 1000) as u32,
            average_traded_price: full.then(|| Price(Decimal::new(24_498_765 + i as i64, 4))),
            volume_traded: i * 17,
            total_buy_quantity: u64::MAX - i,
            total_sell_quantity: i,
            ohlc: full.then_some(Ohlc {
                open: Price(dec!(2440.00)),
                high: Price(dec!(2461.5)),
                low: Price(dec!(0.05)),
                close: Price(dec!(2438.95)),
            }),
            oi: (i % 4 < 2).then_some(i * 75),
            exchange_timestamp: at(OPEN_MICROS + i as i64 * 250),
            depth: None,
        }
    }

    fn read_all(path: &Path) -> Vec<Result<MarketTick, BadRow>> {
        ParquetTicks::open(path).unwrap().collect()
    }

    /// Writes one batch as another tool would, with `row_group_rows` rows per row group.
    fn write_foreign(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group_rows: usize) {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(row_group_rows))
            .build();
        let mut writer = ArrowWriter::try_new(
            File::create(path).unwrap(),
            batch.schema(),
            Some(properties),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn columns_are_the_csv_columns() {
        assert_eq!(
            COLUMNS,
            alpha_panda_services::market_feed::csv_replay::COLUMNS
        );
        let written: Vec<String> = tick_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(written, COLUMNS);
    }

    #[test]
    fn written_ticks_read_back_the_same_across_batches_and_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.parquet");
        let count = ROW_GROUP_ROWS as u64 + 100;
        let ticks: Vec<MarketTick> = (0..count).map(tick).collect();
        assert_eq!(write_ticks(&path, ticks.iter().cloned()).unwrap(), count);

        let reader = ParquetTicks::open(&path).unwrap();
        assert_eq!(reader.rows(), count);
        assert_eq!(reader.row_group_ends, vec![ROW_GROUP_ROWS as u64, count]);
        let back: Vec<MarketTick> = reader.map(Result::unwrap).collect();
        assert_eq!(back, ticks);
        // Decimal equality ignores scale; the text form does not.
        assert_eq!(
            format!("{:?}", back[..50].to_vec()),
            format!("{:?}", ticks[..50].to_vec())
        );
        assert_eq!(back[0].last_price.0.to_string(), "2450.10");
        // Ticks 1 and 7 are the same token and symbol (4, between them, has none): one shared string.
        let (a, b) = (
            back[1].tradingsymbol.as_ref(),
            back[7].tradingsymbol.as_ref(),
        );
        assert!(Arc::ptr_eq(a.unwrap(), b.unwrap()));
    }

    #[test]
    fn the_streaming_writer_counts_what_it_wrote_and_an_empty_file_reads_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ticks.parquet");
        let mut writer = ParquetTickWriter::create(&path).unwrap();
        for i in 0..3 {
            writer.write(&tick(i)).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), 3);
        assert_eq!(read_all(&path).len(), 3);

        let empty = dir.path().join("empty.parquet");
        assert_eq!(write_ticks(&empty, []).unwrap(), 0);
        assert!(read_all(&empty).is_empty());
    }

    #[test]
    fn floats_int64_tokens_and_int64_micros_from_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.parquet");
        write_foreign(
            &path,
            vec![
                (
                    "exchange",
                    Arc::new(StringArray::from(vec!["NSE", "NSE", "NFO"])) as ArrayRef,
                ),
                (
                    "last_price",
                    Arc::new(Float64Array::from(vec![2450.05, 0.1, 19_850.35])),
                ),
                (
                    "instrument_token",
                    Arc::new(Int64Array::from(vec![738_561, 738_561, 12_345_678])),
                ),
                (
                    "exchange_timestamp",
                    Arc::new(Int64Array::from(vec![
                        OPEN_MICROS,
                        OPEN_MICROS + 1,
                        OPEN_MICROS + 2,
                    ])),
                ),
                (
                    "tradingsymbol",
                    Arc::new(StringArray::from(vec![
                        Some("RELIANCE"),
                        Some("RELIANCE"),
                        None,
                    ])),
                ),
                (
                    "average_traded_price",
                    Arc::new(Float32Array::from(vec![Some(2450.05f32), None, Some(0.3)])),
                ),
                (
                    "volume_traded",
                    Arc::new(Int64Array::from(vec![Some(10), None, Some(30)])),
                ),
                (
                    "oi",
                    Arc::new(UInt64Array::from(vec![None, None, Some(1_500)])),
                ),
            ],
            1024,
        );
        let ticks: Vec<MarketTick> = read_all(&path).into_iter().map(Result::unwrap).collect();
        assert_eq!(ticks.len(), 3);
        assert_eq!(ticks[0].last_price.0, dec!(2450.05));
        assert_eq!(ticks[0].last_price.0.to_string(), "2450.05");
        assert_eq!(ticks[1].last_price.0.to_string(), "0.1");
        assert_eq!(ticks[2].last_price.0.to_string(), "19850.35");
        assert_eq!(ticks[0].average_traded_price, Some(Price(dec!(2450.05))));
        assert_eq!(ticks[2].average_traded_price, Some(Price(dec!(0.3))));
        assert_eq!(ticks[2].instrument_token, InstrumentToken(12_345_678));
        assert_eq!(ticks[1].exchange_timestamp, at(OPEN_MICROS + 1));
        assert_eq!(ticks[0].tradingsymbol.as_deref(), Some("RELIANCE"));
        assert_eq!(ticks[2].tradingsymbol, None);
        assert_eq!((ticks[0].volume_traded, ticks[1].volume_traded), (10, 0));
        assert_eq!(ticks[2].oi, Some(1_500));
        assert_eq!(ticks[0].ohlc, None);
        assert_eq!(ticks[0].last_traded_quantity, 0);
    }

    #[test]
    fn timestamps_of_any_unit_decimals_and_text_from_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let zoned = dir.path().join("zoned.parquet");
        write_foreign(
            &zoned,
            vec![
                (
                    "exchange_timestamp",
                    Arc::new(
                        TimestampMillisecondArray::from(vec![
                            OPEN_MICROS / 1_000,
                            OPEN_MICROS / 1_000,
                        ])
                        .with_timezone("Asia/Kolkata"),
                    ) as ArrayRef,
                ),
                (
                    "instrument_token",
                    Arc::new(UInt64Array::from(vec![738_561, u64::from(u32::MAX) + 1])),
                ),
                (
                    "last_price",
                    Arc::new(
                        Decimal128Array::from(vec![245_005, 245_010])
                            .with_precision_and_scale(12, 2)
                            .unwrap(),
                    ),
                ),
            ],
            1024,
        );
        let rows = read_all(&zoned);
        let first = rows[0].as_ref().unwrap();
        assert_eq!(first.exchange_timestamp, at(OPEN_MICROS));
        assert_eq!(first.last_price.0.to_string(), "2450.05");
        let too_big = rows[1].as_ref().unwrap_err();
        assert_eq!(too_big.line, 2);
        assert!(
            too_big
                .reason
                .contains("instrument_token 4294967296 is out of range"),
            "{}",
            too_big.reason
        );

        let naive = dir.path().join("naive.parquet");
        write_foreign(
            &naive,
            vec![
                (
                    "exchange_timestamp",
                    Arc::new(TimestampNanosecondArray::from(vec![
                        OPEN_MICROS * 1_000 + 999,
                    ])) as ArrayRef,
                ),
                ("instrument_token", Arc::new(Int32Array::from(vec![5]))),
                ("last_price", Arc::new(StringArray::from(vec![" 101.50 "]))),
            ],
            1024,
        );
        let tick = read_all(&naive).remove(0).unwrap();
        assert_eq!(tick.exchange_timestamp, at(OPEN_MICROS));
        assert_eq!(tick.last_price.0.to_string(), "101.50");

        let text = dir.path().join("text.parquet");
        write_foreign(
            &text,
            vec![
                (
                    "exchange_timestamp",
                    Arc::new(StringArray::from(vec![
                        "2025-11-21T09:15:00.25+05:30",
                        "yesterday",
                    ])) as ArrayRef,
                ),
                ("instrument_token", Arc::new(Int32Array::from(vec![5, 5]))),
                ("last_price", Arc::new(Float64Array::from(vec![1.0, 1.0]))),
            ],
            1024,
        );
        let rows = read_all(&text);
        assert_eq!(
            rows[0].as_ref().unwrap().exchange_timestamp,
            at(OPEN_MICROS + 250_000)
        );
        assert!(rows[1]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("not RFC 3339"));
    }

    #[test]
    fn text_prices_read_as_the_decimal_parser_reads_them() {
        // Plain ones take the hand-written path, the rest Decimal::from_str: the same value and
        // scale either way.
        let prices = [
            "2450.10",
            " 7 ",
            "+101.5",
            "0.0500",
            "123456789012345678.5",
            "\u{a0}12.25",
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.parquet");
        write_foreign(
            &path,
            vec![
                (
                    "exchange_timestamp",
                    Arc::new(Int64Array::from(vec![OPEN_MICROS; prices.len() + 1])) as ArrayRef,
                ),
                (
                    "instrument_token",
                    Arc::new(Int32Array::from(vec![5; prices.len() + 1])),
                ),
                (
                    "last_price",
                    Arc::new(StringArray::from(
                        prices.iter().copied().chain(["1.2.3"]).collect::<Vec<_>>(),
                    )),
                ),
            ],
            1024,
        );
        let rows = read_all(&path);
        for (row, text) in rows.iter().zip(prices) {
            let expected = Decimal::from_str(text.trim()).unwrap();
            let read = row.as_ref().unwrap().last_price.0;
            assert_eq!(
                (read, read.scale()),
                (expected, expected.scale()),
                "{text:?}"
            );
        }
        let bad = rows[prices.len()].as_ref().unwrap_err();
        assert!(
            bad.reason.contains("\"1.2.3\" is not a decimal"),
            "{}",
            bad.reason
        );
    }

    #[test]
    fn bad_rows_carry_their_row_number_and_row_group_and_the_rest_still_comes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let times: Vec<i64> = (0..8).map(|i| OPEN_MICROS + i).collect();
        write_foreign(
            &path,
            vec![
                (
                    "exchange_timestamp",
                    Arc::new(Int64Array::from(times)) as ArrayRef,
                ),
                (
                    "instrument_token",
                    Arc::new(Int64Array::from(vec![1, 1, 1, 1, 1, -1, 1, 1])),
                ),
                (
                    "last_price",
                    Arc::new(Float64Array::from(vec![
                        Some(10.0),
                        Some(10.5),
                        Some(11.0),
                        Some(11.5),
                        None,
                        Some(12.0),
                        Some(0.0),
                        Some(12.5),
                    ])),
                ),
                (
                    "open",
                    Arc::new(Float64Array::from(vec![
                        None,
                        None,
                        Some(9.0),
                        None,
                        None,
                        None,
                        None,
                        None,
                    ])),
                ),
            ],
            3,
        );
        let rows = read_all(&path);
        assert_eq!(rows.len(), 8);
        let bad: Vec<&BadRow> = rows.iter().filter_map(|r| r.as_ref().err()).collect();
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5, 6, 7]);
        assert!(
            bad[0]
                .reason
                .starts_with("row group 0: open, high, low and close"),
            "{}",
            bad[0].reason
        );
        assert_eq!(bad[1].reason, "row group 1: last_price is null");
        assert!(
            bad[2]
                .reason
                .starts_with("row group 1: instrument_token -1 is out of range"),
            "{}",
            bad[2].reason
        );
        assert_eq!(bad[3].reason, "row group 2: last_price 0 must be positive");
        let good: Vec<Decimal> = rows
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|t| t.last_price.0)
            .collect();
        assert_eq!(good, vec![dec!(10), dec!(10.5), dec!(11.5), dec!(12.5)]);
    }

    #[test]
    fn a_missing_required_column_or_a_wrong_type_is_an_error_naming_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no_price.parquet");
        write_foreign(
            &path,
            vec![
                (
                    "exchange_timestamp",
                    Arc::new(Int64Array::from(vec![OPEN_MICROS])) as ArrayRef,
                ),
                ("instrument_token", Arc::new(Int64Array::from(vec![1]))),
            ],
            1024,
        );
        let err = ParquetTicks::open(&path).err().unwrap();
        assert!(
            matches!(
                err,
                ParquetTicksError::MissingColumn {
                    column: "last_price",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("no column `last_price`"), "{err}");
        assert_eq!(err.class(), ErrorClass::Business);

        let path = dir.path().join("bool_price.parquet");
        write_foreign(
            &path,
            vec![
                (
                    "exchange_timestamp",
                    Arc::new(Int64Array::from(vec![OPEN_MICROS])) as ArrayRef,
                ),
                ("instrument_token", Arc::new(Int64Array::from(vec![1]))),
                ("last_price", Arc::new(BooleanArray::from(vec![true]))),
            ],
            1024,
        );
        let err = ParquetTicks::open(&path).err().unwrap();
        assert!(
            matches!(
                err,
                ParquetTicksError::UnsupportedType {
                    column: "last_price",
                    found: DataType::Boolean,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_parquet_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("ticks.csv");
        std::fs::write(&csv, "exchange_timestamp,instrument_token,last_price\n").unwrap();
        let err = ParquetTicks::open(&csv).err().unwrap();
        assert!(
            matches!(err, ParquetTicksError::NotParquet { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&csv.display().to_string()) && message.contains("not a Parquet file"),
            "{message}"
        );

        let cut = dir.path().join("cut.parquet");
        std::fs::write(&cut, b"PAR1 and then the writer died").unwrap();
        let err = ParquetTicks::open(&cut).err().unwrap();
        assert!(
            matches!(err, ParquetTicksError::Unfinished { .. }),
            "{err:?}"
        );

        let absent = dir.path().join("absent.parquet");
        let err = ParquetTicks::open(&absent).err().unwrap();
        assert!(matches!(err, ParquetTicksError::Open { .. }), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Infrastructure);
    }

    #[test]
    fn decimals_of_any_scale_are_exact() {
        assert_eq!(
            scaled_decimal(245_005, 2, "p").unwrap().to_string(),
            "2450.05"
        );
        assert_eq!(
            scaled_decimal(245_005 * 10i128.pow(28), 30, "p").unwrap(),
            dec!(2450.05)
        );
        assert_eq!(scaled_decimal(12, -3, "p").unwrap(), dec!(12000));
        assert!(scaled_decimal(i128::MAX, 0, "p").is_err());
        assert!(float_decimal(false, f64::NAN.to_string(), "p").is_err());
        assert_eq!(
            float_decimal(true, 0.3f32.to_string(), "p").unwrap(),
            dec!(0.3)
        );
    }
}
