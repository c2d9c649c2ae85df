//! A backtest's input: a tick file in the replay CSV format or in Parquet with the same column
//! names, told apart by its extension, read as a stream of ticks and bad rows.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use alpha_panda_core::MarketTick;
use alpha_panda_services::market_feed::{TickGuard, TickRejection};
use alpha_panda_services::BadRow;

use crate::csv_ticks::CsvTicks;
use crate::parquet_ticks::{ParquetTicks, ParquetTicksError};

/// Why a tick file cannot be read at all (a bad row is not one: it is reported and skipped).
#[derive(Debug, thiserror::Error)]
pub enum TickFileError {
    /// The file cannot be opened.
    #[error("cannot open the tick file {path}: {source}; check the path given to --ticks")]
    Open {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file cannot be read.
    #[error("cannot read the tick file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The CSV header lacks a required column or cannot be read.
    #[error("tick CSV header: {0} (the README's replay format names every column)")]
    Header(String),
    /// The Parquet file cannot be read.
    #[error(transparent)]
    Parquet(#[from] ParquetTicksError),
}

/// An open tick file.
pub enum TickFile {
    /// The replay CSV format.
    Csv(CsvTicks),
    /// Parquet with the CSV's column names.
    Parquet(ParquetTicks),
}

impl TickFile {
    /// Opens `path`: Parquet when it ends in `.parquet` (or `.pq`), CSV otherwise.
    ///
    /// # Errors
    /// [`TickFileError`] when the file cannot be opened or its columns are not the format's.
    pub fn open(path: &Path) -> Result<Self, TickFileError> {
        if is_parquet(path) {
            Ok(Self::Parquet(ParquetTicks::open(path)?))
        } else {
            Ok(Self::Csv(CsvTicks::open(path)?))
        }
    }

    /// The format's name, for people.
    pub fn format(&self) -> &'static str {
        match self {
            Self::Csv(_) => "csv",
            Self::Parquet(_) => "parquet",
        }
    }
}

/// Whether `path` names a Parquet file (`.parquet`, `.pq`); every other name is read as CSV.
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

impl Iterator for TickFile {
    type Item = Result<MarketTick, BadRow>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Csv(csv) => csv.next(),
            Self::Parquet(parquet) => parquet.next(),
        }
    }
}

/// What one pass over a tick file finds before the backtest: the BLAKE3 digest of its bytes (with the
/// first tick's time, the base of its tick ids, as the market feed derives a replay's), how many
/// rows it has (for the progress bar), and the instruments it holds (for a strategy over "every
/// instrument in the file").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileScan {
    /// BLAKE3 digest of the file's bytes.
    pub digest: [u8; 32],
    /// Data rows (lines after the header, or Parquet rows).
    pub rows: u64,
    /// Instrument tokens seen, when asked for.
    pub instruments: BTreeSet<u32>,
}

/// Reads `path` once: its digest, its rows and, with `instruments`, its instrument tokens.
///
/// # Errors
/// [`TickFileError`] when the file cannot be read.
pub fn scan(path: &Path, instruments: bool) -> Result<FileScan, TickFileError> {
    let parquet = is_parquet(path);
    // The digest and the instruments are two passes over the file, on two cores at once.
    let (digest, lines, tokens) = std::thread::scope(|scope| {
        let tokens = (instruments && !parquet).then(|| scope.spawn(|| csv_tokens(path)));
        let (digest, lines) = digest_and_lines(path)?;
        let tokens = match tokens {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            None => BTreeSet::new(),
        };
        Ok::<_, TickFileError>((digest, lines, tokens))
    })?;
    let (rows, tokens) = if parquet {
        if instruments {
            crate::parquet_ticks::instrument_tokens(path)?
        } else {
            (ParquetTicks::open(path)?.rows(), tokens)
        }
    } else {
        // The header is not a row.
        (lines.saturating_sub(1), tokens)
    };
    Ok(FileScan {
        digest,
        rows,
        instruments: tokens,
    })
}

fn open_for_scan(path: &Path) -> Result<File, TickFileError> {
    File::open(path).map_err(|source| TickFileError::Open {
        path: path.display().to_string(),
        source,
    })
}

fn read_error(path: &Path) -> impl Fn(std::io::Error) -> TickFileError + '_ {
    move |source| TickFileError::Read {
        path: path.display().to_string(),
        source,
    }
}

/// The file's BLAKE3 digest and its lines (a last line without its end of line counts).
fn digest_and_lines(path: &Path) -> Result<([u8; 32], u64), TickFileError> {
    let mut file = open_for_scan(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    let mut last_byte = b'\n';
    loop {
        let read = file.read(&mut buffer).map_err(read_error(path))?;
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        hasher.update(chunk);
        lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        last_byte = chunk[read - 1];
    }
    Ok((
        *hasher.finalize().as_bytes(),
        lines + u64::from(last_byte != b'\n'),
    ))
}

/// The instrument tokens of a tick CSV, from its `instrument_token` column alone.
fn csv_tokens(path: &Path) -> Result<BTreeSet<u32>, TickFileError> {
    let mut file = open_for_scan(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut tokens = BTreeSet::new();
    let mut token_column: Option<usize> = None;
    let mut header_seen = false;
    // The part of a line a chunk boundary cut.
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let read = file.read(&mut buffer).map_err(read_error(path))?;
        if read == 0 {
            break;
        }
        let mut rest = &buffer[..read];
        while let Some(end) = memchr::memchr(b'\n', rest) {
            // Only a line a chunk boundary cut is copied; the others are read where they lie.
            if partial.is_empty() {
                scan_line(
                    &rest[..end],
                    &mut header_seen,
                    &mut token_column,
                    &mut tokens,
                );
            } else {
                partial.extend_from_slice(&rest[..end]);
                scan_line(&partial, &mut header_seen, &mut token_column, &mut tokens);
                partial.clear();
            }
            rest = &rest[end + 1..];
        }
        partial.extend_from_slice(rest);
    }
    if !partial.is_empty() {
        scan_line(&partial, &mut header_seen, &mut token_column, &mut tokens);
    }
    Ok(tokens)
}

fn scan_line(
    line: &[u8],
    header_seen: &mut bool,
    token_column: &mut Option<usize>,
    tokens: &mut BTreeSet<u32>,
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !*header_seen {
        *header_seen = true;
        *token_column = line.split(|b| *b == b',').position(|name| {
            let name = name.trim_ascii();
            name == b"instrument_token" || name == b"\"instrument_token\""
        });
        return;
    }
    let Some(column) = *token_column else { return };
    // The field between the column-th comma and the next, found with memchr: every row passes.
    let start = match column {
        0 => 0,
        n => match memchr::memchr_iter(b',', line).nth(n - 1) {
            Some(comma) => comma + 1,
            None => return,
        },
    };
    let rest = &line[start..];
    let field = &rest[..memchr::memchr(b',', rest).unwrap_or(rest.len())];
    let field = field.trim_ascii();
    let field = field
        .strip_prefix(b"\"")
        .and_then(|f| f.strip_suffix(b"\""))
        .unwrap_or(field);
    let token = field.iter().try_fold(0u64, |n, b| {
        (b.is_ascii_digit() && n < u64::from(u32::MAX)).then(|| n * 10 + u64::from(b - b'0'))
    });
    if let Some(token) = token
        .filter(|_| !field.is_empty())
        .and_then(|t| u32::try_from(t).ok())
    {
        tokens.insert(token);
    }
}

/// Rows per batch handed from the reading thread to the backtest.
const READ_AHEAD_BATCH: usize = 4096;
/// Batches that may wait: what reading ahead holds in memory at most.
const READ_AHEAD_BATCHES: usize = 8;

/// A row of a tick file past the market feed's guard.
#[derive(Debug)]
pub enum FeedRow {
    /// A tick the guard accepted.
    Tick(MarketTick),
    /// A tick the guard refused, and why.
    Refused(MarketTick, TickRejection),
    /// A row that is not a tick.
    Bad(BadRow),
}

/// The backtest's market feed: a tick file read, parsed and checked by the feed's [`TickGuard`]
/// on a thread of its own, a few batches ahead of the backtest. The decisions stay in one thread,
/// in file order, while the other core turns bytes into checked ticks.
pub struct ReadAhead {
    batches: std::sync::mpsc::Receiver<Vec<FeedRow>>,
    current: std::vec::IntoIter<FeedRow>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading `file` on its own thread, checking every tick with `guard`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(mut file: TickFile, mut guard: TickGuard) -> std::io::Result<Self> {
        let (sender, batches) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
        let reader = std::thread::Builder::new()
            .name("tick-reader".into())
            .spawn(move || loop {
                let mut batch = Vec::with_capacity(READ_AHEAD_BATCH);
                let mut guarded = |row: Result<MarketTick, BadRow>| {
                    batch.push(match row {
                        Ok(tick) => match guard.check(&tick) {
                            Ok(()) => FeedRow::Tick(tick),
                            Err(refused) => FeedRow::Refused(tick, refused),
                        },
                        Err(bad) => FeedRow::Bad(bad),
                    });
                };
                match &mut file {
                    TickFile::Csv(csv) => csv.read_each(READ_AHEAD_BATCH, &mut guarded),
                    TickFile::Parquet(parquet) => {
                        parquet
                            .by_ref()
                            .take(READ_AHEAD_BATCH)
                            .for_each(&mut guarded);
                    }
                }
                // An empty batch ends the file; a closed channel means nobody reads any more.
                if batch.is_empty() || sender.send(batch).is_err() {
                    break;
                }
            })?;
        Ok(Self {
            batches,
            current: Vec::new().into_iter(),
            reader: Some(reader),
        })
    }
}

impl Iterator for ReadAhead {
    type Item = FeedRow;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(row);
            }
            match self.batches.recv() {
                Ok(batch) => self.current = batch.into_iter(),
                Err(_) => {
                    if let Some(reader) = self.reader.take() {
                        // The reader only ends by itself; a panic there is a bug to surface.
                        if let Err(panic) = reader.join() {
                            std::panic::resume_unwind(panic);
                        }
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn reading_ahead_hands_every_row_over_in_file_order_across_reused_batches() {
        // More batches than may wait, so the reader is held back by the backtest and goes on.
        let rows = READ_AHEAD_BATCH * (READ_AHEAD_BATCHES + 4) + 17;
        let mut text = String::from("exchange_timestamp,instrument_token,last_price\n");
        for i in 0..rows {
            let price = if i % 1000 == 500 { "1000.00" } else { "100.05" };
            if i % 1000 == 7 {
                text.push_str("yesterday,5,100.05\n");
            } else {
                text.push_str(&format!("2026-01-05T03:45:00.{i:06}Z,5,{price}\n"));
            }
        }
        let mut file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let ticks = TickFile::open(file.path()).unwrap();
        // A move of more than 10% is refused: the rows priced 1,000.
        let feed = ReadAhead::start(ticks, TickGuard::new(&[], dec!(10))).unwrap();
        let mut seen = 0usize;
        for (i, row) in feed.enumerate() {
            match row {
                FeedRow::Bad(bad) => {
                    assert_eq!(i % 1000, 7, "row {i}");
                    assert_eq!(bad.line, i as u64 + 2);
                }
                FeedRow::Refused(tick, _) => {
                    assert_eq!(i % 1000, 500, "row {i}");
                    assert_eq!(tick.last_price.0, dec!(1000.00));
                }
                FeedRow::Tick(tick) => {
                    assert!(i % 1000 != 7 && i % 1000 != 500, "row {i}");
                    assert_eq!(tick.exchange_timestamp.unix_micros() % 1_000_000, i as i64);
                }
            }
            seen += 1;
        }
        assert_eq!(seen, rows);
    }
}
