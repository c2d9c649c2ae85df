//! A backtest's files in its output directory: `fills.csv`, `orders.csv`, `equity.csv`,
//! `report.json` and `report.html`. The tables are written a row at a time as the run makes its
//! records (a [`Journal`]), the report once at the end; every row in the order made, with fixed
//! formats, so the same input gives byte-identical files on every run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use alpha_panda_core::{Side, Timestamp};

use crate::history::{EquityPoint, FillRecord, History, OrderRecord, Rejection};
use crate::journal::Journal;
use crate::report::ReportBuilder;

/// Why the outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or the directory could not be written.
    #[error("cannot write {path}: {source}; check that --out names a writable directory")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// An instant as RFC 3339 with microseconds in UTC (`2025-11-21T03:45:00.250000Z`), as chrono's
/// `%Y-%m-%dT%H:%M:%S%.6fZ` writes it (a test holds them equal).
pub fn rfc3339_micros(at: Timestamp) -> String {
    let mut text = Vec::with_capacity(27);
    // Writing into a Vec cannot fail.
    let _ = write_instant(&mut text, at);
    String::from_utf8_lossy(&text).into_owned()
}

/// Writes [`rfc3339_micros`]'s text without its format parser or an allocation: every row of the
/// outputs has one or two, digit by digit into a fixed buffer.
fn write_instant(out: &mut dyn Write, at: Timestamp) -> std::io::Result<()> {
    let micros = at.unix_micros();
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return write!(out, "{}", at.as_datetime().format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    }
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut digits = |at: usize, width: usize, mut value: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    digits(0, 4, year);
    digits(5, 2, month);
    digits(8, 2, day);
    digits(11, 2, second_of_day / 3600);
    digits(14, 2, second_of_day / 60 % 60);
    digits(17, 2, second_of_day % 60);
    digits(20, 6, fraction);
    out.write_all(&text)
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// Writes every output file of a run kept in memory into `dir` (created when missing); returns
/// the files written.
///
/// # Errors
/// [`OutputError`] naming the file that could not be written.
pub fn write_all(
    dir: &Path,
    history: &History,
    report_json: &str,
    report_html: &str,
) -> Result<Vec<PathBuf>, OutputError> {
    let mut tables = Tables::create(dir)?;
    for fill in &history.fills {
        tables.write_fill(fill);
    }
    for order in &history.orders {
        tables.write_order(order);
    }
    for point in &history.equity {
        tables.write_point(point);
    }
    let mut written = tables.finish()?;
    written.extend(write_report(dir, report_json, report_html)?);
    Ok(written)
}

/// `report.json` and `report.html` in `dir` (created when missing).
///
/// # Errors
/// [`OutputError`] naming the file that could not be written.
pub fn write_report(
    dir: &Path,
    report_json: &str,
    report_html: &str,
) -> Result<Vec<PathBuf>, OutputError> {
    create_dir(dir)?;
    let mut written = Vec::new();
    for (name, body) in [("report.json", report_json), ("report.html", report_html)] {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|source| OutputError::Write {
            path: path.display().to_string(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

fn create_dir(dir: &Path) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir).map_err(|source| OutputError::Write {
        path: dir.display().to_string(),
        source,
    })
}

/// One table file, written through a buffer.
struct Table {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Table {
    fn create(dir: &Path, name: &str, header: &[u8]) -> Result<Self, OutputError> {
        let path = dir.join(name);
        let failed = |source| OutputError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(failed)?);
        out.write_all(header).map_err(failed)?;
        Ok(Self { path, out })
    }
}

/// `fills.csv`, `orders.csv` and `equity.csv`, a row written as each record comes, so a run of any
/// length holds one buffer per file. A failed write is kept and returned by
/// [`Tables::finish`]; the rows after it are not written.
pub struct Tables {
    fills: Table,
    orders: Table,
    equity: Table,
    failure: Option<OutputError>,
}

impl Tables {
    /// Creates the three files in `dir` (and `dir` when missing), each with its header.
    ///
    /// # Errors
    /// [`OutputError`] naming the file that could not be created.
    pub fn create(dir: &Path) -> Result<Self, OutputError> {
        create_dir(dir)?;
        Ok(Self {
            fills: Table::create(dir, "fills.csv", FILLS_HEADER)?,
            orders: Table::create(dir, "orders.csv", ORDERS_HEADER)?,
            equity: Table::create(dir, "equity.csv", EQUITY_HEADER)?,
            failure: None,
        })
    }

    fn write(
        failure: &mut Option<OutputError>,
        table: &mut Table,
        row: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) {
        if failure.is_some() {
            return;
        }
        if let Err(source) = row(&mut table.out) {
            *failure = Some(OutputError::Write {
                path: table.path.display().to_string(),
                source,
            });
        }
    }

    /// Flushes the files; returns them, or the first write that failed.
    ///
    /// # Errors
    /// [`OutputError`] naming the file that could not be written.
    pub fn finish(self) -> Result<Vec<PathBuf>, OutputError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        let mut written = Vec::new();
        for mut table in [self.fills, self.orders, self.equity] {
            table.out.flush().map_err(|source| OutputError::Write {
                path: table.path.display().to_string(),
                source,
            })?;
            written.push(table.path);
        }
        Ok(written)
    }

    /// A row of `fills.csv`.
    pub fn write_fill(&mut self, fill: &FillRecord) {
        Self::write(&mut self.failure, &mut self.fills, |out| {
            write_fill(out, fill)
        });
    }

    /// A row of `equity.csv`.
    pub fn write_point(&mut self, point: &EquityPoint) {
        Self::write(&mut self.failure, &mut self.equity, |out| {
            write_point(out, point)
        });
    }

    /// A row of `orders.csv`.
    pub fn write_order(&mut self, order: &OrderRecord) {
        Self::write(&mut self.failure, &mut self.orders, |out| {
            write_order(out, order)
        });
    }
}

/// What a backtest keeps while it runs: the tables on disk and the report folded so far.
pub struct RunOutputs {
    /// The three tables.
    pub tables: Tables,
    /// The report.
    pub report: ReportBuilder,
}

impl Journal for RunOutputs {
    fn fill(&mut self, fill: FillRecord) {
        self.tables.write_fill(&fill);
        self.report.fill(&fill);
    }

    fn equity(&mut self, point: EquityPoint) {
        self.tables.write_point(&point);
        self.report.equity(&point);
    }

    fn order(&mut self, order: OrderRecord) {
        self.tables.write_order(&order);
    }

    fn rejection(&mut self, rejection: Rejection) {
        self.report.rejection(&rejection);
    }
}

/// A text field as CSV writes it: quoted (quotes doubled) only when it holds a comma, a quote
/// or an end of line.
fn text(out: &mut dyn Write, field: &str) -> std::io::Result<()> {
    if field.contains([',', '"', '\n', '\r']) {
        write!(out, "\"{}\"", field.replace('"', "\"\""))
    } else {
        out.write_all(field.as_bytes())
    }
}

// The rows are written field by field into the buffered file, without a string per field: a
// backtest writes tens of thousands of rows of each table.

const FILLS_HEADER: &[u8] =
    b"exchange_timestamp,instrument_token,tradingsymbol,strategy_id,side,quantity,price,fees,order_id\n";

/// A row of `fills.csv`: one fill, at the exchange time of the tick that caused it.
fn write_fill(out: &mut dyn Write, fill: &FillRecord) -> std::io::Result<()> {
    write_instant(out, fill.exchange_timestamp)?;
    write!(out, ",{},", fill.instrument_token)?;
    text(out, fill.tradingsymbol.as_deref().unwrap_or(""))?;
    out.write_all(b",")?;
    text(out, fill.strategy_id.as_str())?;
    write!(
        out,
        ",{},{},{},{},",
        side(fill.side),
        fill.quantity.0,
        fill.price.0,
        fill.fees.total.0
    )?;
    text(out, fill.order_id.as_str())?;
    out.write_all(b"\n")
}

const ORDERS_HEADER: &[u8] =
    b"submitted_at,order_id,instrument_token,tradingsymbol,strategy_id,side,quantity,order_type,limit_price,status,filled_at,fill_price,reason\n";

/// A row of `orders.csv`: one order and how it ended.
fn write_order(out: &mut dyn Write, order: &OrderRecord) -> std::io::Result<()> {
    let order_type = match order.order_type {
        alpha_panda_core::OrderType::Market => "MARKET",
        alpha_panda_core::OrderType::Limit => "LIMIT",
    };
    write_instant(out, order.submitted_at)?;
    out.write_all(b",")?;
    text(out, order.order_id.as_str())?;
    write!(out, ",{},", order.instrument_token)?;
    text(out, order.tradingsymbol.as_deref().unwrap_or(""))?;
    out.write_all(b",")?;
    text(out, order.strategy_id.as_str())?;
    write!(
        out,
        ",{},{},{order_type},",
        side(order.side),
        order.quantity
    )?;
    if let Some(limit) = order.limit_price {
        write!(out, "{}", limit.0)?;
    }
    write!(out, ",{},", order.status)?;
    if let Some(at) = order.filled_at {
        write_instant(out, at)?;
    }
    out.write_all(b",")?;
    if let Some(price) = order.fill_price {
        write!(out, "{}", price.0)?;
    }
    out.write_all(b",")?;
    text(out, order.reason.as_deref().unwrap_or(""))?;
    out.write_all(b"\n")
}

/// An amount to the paisa, always with two decimals: it reads the same whatever scale its sum
/// happened to have.
fn paisa(amount: rust_decimal::Decimal) -> rust_decimal::Decimal {
    let mut rounded =
        amount.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

const EQUITY_HEADER: &[u8] = b"at,portfolio_id,cash,realized_pnl,unrealized_pnl,fees,equity\n";

/// A row of `equity.csv`: a portfolio's value at an interval or a fill, in rupees to the paisa.
fn write_point(out: &mut dyn Write, point: &EquityPoint) -> std::io::Result<()> {
    write_instant(out, point.at)?;
    out.write_all(b",")?;
    text(out, point.portfolio_id.as_str())?;
    writeln!(
        out,
        ",{},{},{},{},{}",
        paisa(point.cash),
        paisa(point.realized_pnl),
        paisa(point.unrealized_pnl),
        paisa(point.fees),
        paisa(point.equity)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_field_is_quoted_only_when_it_must_be() {
        let mut out = Vec::new();
        for field in ["RELIANCE", "M&M", "A,B", "say \"x\"", "two\nlines", ""] {
            text(&mut out, field).expect("written");
            out.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(out.clone()).expect("utf-8"),
            "RELIANCE\nM&M\n\"A,B\"\n\"say \"\"x\"\"\"\n\"two\nlines\"\n\n"
        );
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_slice());
        let read: Vec<String> = reader
            .records()
            .map(|r| r.expect("a record")[0].to_string())
            .collect();
        assert_eq!(read, ["RELIANCE", "M&M", "A,B", "say \"x\"", "two\nlines"]);
    }

    #[test]
    fn instants_are_written_as_chrono_writes_them() {
        for micros in [
            0i64,
            1,
            -1,
            1_767_584_700_250_000,
            951_782_400_000_000, // 2000-02-29
            4_102_444_799_999_999,
            -62_135_596_800_000_000, // year 1
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
        ] {
            let at = Timestamp::from_unix_micros(micros).expect("representable");
            let chrono = at
                .as_datetime()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(rfc3339_micros(at), chrono, "{micros}");
        }
        let mut micros = -86_400_000_000i64 * 800;
        while micros < 86_400_000_000i64 * 400 * 366 {
            let at = Timestamp::from_unix_micros(micros).expect("representable");
            let chrono = at
                .as_datetime()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(rfc3339_micros(at), chrono, "{micros}");
            micros += 86_399_999_937;
        }
    }
}
