//! A backtest's files in its output directory: `fills.csv`, `orders.csv`, `equity.csv`,
//! `report.json` and `report.html`. Everything is written from the outcome alone, in a fixed
//! order with fixed formats, so the same input gives byte-identical files on every run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use alpha_panda_core::{Side, Timestamp};

use crate::history::History;
use crate::OrderRecord;

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

/// An instant as RFC 3339 with microseconds in UTC (`2025-11-21T03:45:00.250000Z`).
pub fn rfc3339_micros(at: Timestamp) -> String {
    at.as_datetime()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// Writes every output file into `dir` (created when missing); returns the files written.
///
/// # Errors
/// [`OutputError`] naming the file that could not be written.
pub fn write_all(
    dir: &Path,
    history: &History,
    orders: &[OrderRecord],
    report_json: &str,
    report_html: &str,
) -> Result<Vec<PathBuf>, OutputError> {
    std::fs::create_dir_all(dir).map_err(|source| OutputError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let mut written = Vec::new();
    let mut file = |name: &str, write: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        let path = dir.join(name);
        let failed = |source| OutputError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut out = BufWriter::new(File::create(&path).map_err(failed)?);
        write(&mut out).and_then(|()| out.flush()).map_err(failed)?;
        written.push(path.clone());
        Ok::<(), OutputError>(())
    };
    file("fills.csv", &|out| write_fills(out, history))?;
    file("orders.csv", &|out| write_orders(out, orders))?;
    file("equity.csv", &|out| write_equity(out, history))?;
    file("report.json", &|out| out.write_all(report_json.as_bytes()))?;
    file("report.html", &|out| out.write_all(report_html.as_bytes()))?;
    Ok(written)
}

fn csv_writer(out: &mut dyn Write) -> csv::Writer<&mut dyn Write> {
    csv::WriterBuilder::new().from_writer(out)
}

fn io(e: csv::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// `fills.csv`: one row per fill, at the exchange time of the tick that caused it.
pub fn write_fills(out: &mut dyn Write, history: &History) -> std::io::Result<()> {
    let mut csv = csv_writer(out);
    csv.write_record([
        "exchange_timestamp",
        "instrument_token",
        "tradingsymbol",
        "strategy_id",
        "side",
        "quantity",
        "price",
        "fees",
        "order_id",
    ])
    .map_err(io)?;
    for fill in &history.fills {
        csv.write_record([
            rfc3339_micros(fill.exchange_timestamp).as_str(),
            &fill.instrument_token.to_string(),
            fill.tradingsymbol.as_deref().unwrap_or(""),
            fill.strategy_id.as_str(),
            side(fill.side),
            &fill.quantity.0.to_string(),
            &fill.price.0.to_string(),
            &fill.fees.total.0.to_string(),
            fill.order_id.as_str(),
        ])
        .map_err(io)?;
    }
    csv.flush()
}

/// `orders.csv`: one row per order and how it ended.
pub fn write_orders(out: &mut dyn Write, orders: &[OrderRecord]) -> std::io::Result<()> {
    let mut csv = csv_writer(out);
    csv.write_record([
        "submitted_at",
        "order_id",
        "instrument_token",
        "tradingsymbol",
        "strategy_id",
        "side",
        "quantity",
        "order_type",
        "limit_price",
        "status",
        "filled_at",
        "fill_price",
        "reason",
    ])
    .map_err(io)?;
    for order in orders {
        let order_type = match order.order_type {
            alpha_panda_core::OrderType::Market => "MARKET",
            alpha_panda_core::OrderType::Limit => "LIMIT",
        };
        csv.write_record([
            rfc3339_micros(order.submitted_at).as_str(),
            order.order_id.as_str(),
            &order.instrument_token.to_string(),
            order.tradingsymbol.as_deref().unwrap_or(""),
            order.strategy_id.as_str(),
            side(order.side),
            &order.quantity.to_string(),
            order_type,
            &order
                .limit_price
                .map(|p| p.0.to_string())
                .unwrap_or_default(),
            order.status,
            &order.filled_at.map(rfc3339_micros).unwrap_or_default(),
            &order
                .fill_price
                .map(|p| p.0.to_string())
                .unwrap_or_default(),
            order.reason.as_deref().unwrap_or(""),
        ])
        .map_err(io)?;
    }
    csv.flush()
}

/// `equity.csv`: every portfolio's value at each interval and at every fill, in rupees to the
/// paisa.
pub fn write_equity(out: &mut dyn Write, history: &History) -> std::io::Result<()> {
    let paisa = |d: rust_decimal::Decimal| {
        d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .to_string()
    };
    let mut csv = csv_writer(out);
    csv.write_record([
        "at",
        "portfolio_id",
        "cash",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "equity",
    ])
    .map_err(io)?;
    for point in &history.equity {
        csv.write_record([
            rfc3339_micros(point.at).as_str(),
            point.portfolio_id.as_str(),
            &paisa(point.cash),
            &paisa(point.realized_pnl),
            &paisa(point.unrealized_pnl),
            &paisa(point.fees),
            &paisa(point.equity),
        ])
        .map_err(io)?;
    }
    csv.flush()
}
