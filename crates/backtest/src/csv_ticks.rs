//! The tick CSV of the replay format (README, `alpha_panda_services::market_feed::csv_replay`),
//! read as a stream: one buffer of the file at a time, so memory does not grow with the file.
//!
//! Parsing the input bounds a backtest's speed, so ordinary rows take a fast path: fields split on
//! commas, RFC 3339 instants of the usual shape, plain decimals and integers read by hand. Every
//! row the fast path does not recognise (quotes, exponents, an error) is read by the replay's own
//! parser, [`CsvColumns::parse`], so a row always becomes the tick `run` makes of it, and a bad row
//! gets the replay's reason. A test compares the two paths over rows of every shape.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use alpha_panda_core::{InstrumentToken, MarketTick, Ohlc, Price, Timestamp};
use alpha_panda_services::{BadRow, CsvColumns, COLUMNS};
use rust_decimal::Decimal;

use crate::TickFileError;

/// How much of the file is read at once.
const CHUNK: usize = 1 << 20;

/// The most fields a row may have on the fast path (more go to the replay's parser).
const MAX_FIELDS: usize = 32;

/// A tick CSV, row by row: `Ok` ticks and `Err` rows that were skipped, with their line.
pub struct CsvTicks {
    file: File,
    columns: CsvColumns,
    /// Bytes read and not yet parsed: `buffer[start..]`.
    buffer: Vec<u8>,
    start: usize,
    eof: bool,
    /// The line number of the next line (the header is line 1).
    line: u64,
    symbols: SymbolCache,
}

impl CsvTicks {
    /// Opens `path` and reads its header.
    ///
    /// # Errors
    /// [`TickFileError`] when the file cannot be read or its header lacks a required column.
    pub fn open(path: &Path) -> Result<Self, TickFileError> {
        let file = File::open(path).map_err(|source| TickFileError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let mut ticks = Self {
            file,
            columns: CsvColumns::from_header(COLUMNS)
                .map_err(|e| TickFileError::Header(e.to_string()))?,
            buffer: Vec::with_capacity(CHUNK * 2),
            start: 0,
            eof: false,
            line: 1,
            symbols: SymbolCache::default(),
        };
        let header = ticks
            .next_line()
            .map_err(|source| TickFileError::Read {
                path: path.display().to_string(),
                source,
            })?
            .ok_or_else(|| TickFileError::Header(format!("{} is empty", path.display())))?;
        let header = String::from_utf8_lossy(&ticks.buffer[header]).into_owned();
        let header = header.trim_start_matches('\u{feff}');
        let names: Vec<&str> = header
            .split(',')
            .map(|h| h.trim().trim_matches('"'))
            .collect();
        ticks.columns = CsvColumns::from_header(names)
            .map_err(|e| TickFileError::Header(format!("{}: {e}", path.display())))?;
        ticks.line = 2;
        Ok(ticks)
    }

    /// Where the next line lies in the buffer, without its end of line, or `None` at the end of
    /// the file.
    fn next_line(&mut self) -> std::io::Result<Option<std::ops::Range<usize>>> {
        loop {
            if let Some(end) = memchr::memchr(b'\n', &self.buffer[self.start..]) {
                let line = self.start..self.start + end;
                self.start += end + 1;
                return Ok(Some(strip_cr(&self.buffer, line)));
            }
            if self.eof {
                if self.start < self.buffer.len() {
                    let line = self.start..self.buffer.len();
                    self.start = self.buffer.len();
                    return Ok(Some(strip_cr(&self.buffer, line)));
                }
                return Ok(None);
            }
            self.buffer.drain(..self.start);
            self.start = 0;
            let filled = self.buffer.len();
            self.buffer.resize(filled + CHUNK, 0);
            let read = self.file.read(&mut self.buffer[filled..])?;
            self.buffer.truncate(filled + read);
            self.eof = read == 0;
        }
    }
}

fn strip_cr(buffer: &[u8], line: std::ops::Range<usize>) -> std::ops::Range<usize> {
    match buffer[line.clone()].last() {
        Some(b'\r') => line.start..line.end - 1,
        _ => line,
    }
}

impl CsvTicks {
    /// Hands up to `rows` rows to `each`; fewer only at the end of the file. Each row goes
    /// straight where `each` puts it, which spares the copies of a tick through the iterator's
    /// layers.
    pub fn read_each(&mut self, rows: usize, mut each: impl FnMut(Result<MarketTick, BadRow>)) {
        for _ in 0..rows {
            match self.next_row() {
                Some(row) => each(row),
                None => return,
            }
        }
    }

    fn next_row(&mut self) -> Option<Result<MarketTick, BadRow>> {
        loop {
            let line_number = self.line;
            self.line += 1;
            let line = match self.next_line() {
                Ok(Some(line)) => &self.buffer[line],
                Ok(None) => return None,
                Err(e) => {
                    self.eof = true;
                    self.start = self.buffer.len();
                    return Some(Err(BadRow {
                        line: line_number,
                        reason: format!("the file could not be read further: {e}"),
                    }));
                }
            };
            // The replay's reader skips empty lines too.
            if line.is_empty() {
                continue;
            }
            let parsed = match fast_row(&self.columns, &mut self.symbols, line) {
                Some(tick) => Ok(tick),
                None => replay_row(&self.columns, line),
            };
            return Some(parsed.map_err(|reason| BadRow {
                line: line_number,
                reason,
            }));
        }
    }
}

impl Iterator for CsvTicks {
    type Item = Result<MarketTick, BadRow>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

/// `a == b`, eight bytes at a time and without a call: every row's symbol is compared with its
/// instrument's last one, and for a few bytes the call to `memcmp` cost more than the comparison
/// (a tenth of the reading thread).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |chunk: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        u64::from_ne_bytes(bytes)
    };
    let (mut left, mut right) = (a.chunks_exact(8), b.chunks_exact(8));
    left.by_ref()
        .zip(right.by_ref())
        .all(|(l, r)| word(l) == word(r))
        && left
            .remainder()
            .iter()
            .zip(right.remainder())
            .all(|(l, r)| l == r)
}

/// The row as the replay's own parser reads it: the same tick, or the same reason.
fn replay_row(columns: &CsvColumns, line: &[u8]) -> Result<MarketTick, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => columns.parse(&record),
        Ok(false) => Err("exchange_timestamp is empty".into()),
        Err(e) => Err(format!("unreadable row: {e}")),
    }
}

/// The last trading symbol seen per token, so a repeated symbol is one shared string: a file
/// repeats a few hundred symbols over millions of rows. The CSV and the Parquet readers share it.
#[derive(Default)]
pub(crate) struct SymbolCache {
    by_token: rustc_hash::FxHashMap<u32, Arc<str>>,
}

impl SymbolCache {
    /// The shared symbol for `bytes`, or `None` when they are not UTF-8. The bytes are compared
    /// with the token's last symbol first, so a repeated symbol is neither validated nor copied.
    pub(crate) fn get(&mut self, token: u32, bytes: &[u8]) -> Option<Arc<str>> {
        match self.known(token, bytes) {
            Some(known) => Some(known),
            None => Some(self.remember(token, std::str::from_utf8(bytes).ok()?)),
        }
    }

    /// The shared symbol for `text`.
    pub(crate) fn intern(&mut self, token: u32, text: &str) -> Arc<str> {
        match self.known(token, text.as_bytes()) {
            Some(known) => known,
            None => self.remember(token, text),
        }
    }

    fn known(&self, token: u32, bytes: &[u8]) -> Option<Arc<str>> {
        self.by_token
            .get(&token)
            .filter(|known| same_bytes(known.as_bytes(), bytes))
            .cloned()
    }

    fn remember(&mut self, token: u32, text: &str) -> Arc<str> {
        let symbol: Arc<str> = Arc::from(text);
        self.by_token.insert(token, symbol.clone());
        symbol
    }
}

/// The tick of an ordinary row, or `None` for the replay's parser to read (and judge) it.
fn fast_row(columns: &CsvColumns, symbols: &mut SymbolCache, line: &[u8]) -> Option<MarketTick> {
    let mut fields: [&[u8]; MAX_FIELDS] = [&[]; MAX_FIELDS];
    let count = split_fields(line, &mut fields)?;
    // A present, non-empty field of `COLUMNS[column]`, trimmed.
    let field = |column: usize| -> Option<&[u8]> {
        let value = fields[..count].get(columns.position(column)?)?.trim_ascii();
        (!value.is_empty()).then_some(value)
    };
    let exchange_timestamp = rfc3339(field(0)?)?;
    let instrument_token = integer(field(1)?, 9)? as u32;
    let last_price = decimal(field(3)?)?;
    if last_price <= Decimal::ZERO {
        return None;
    }
    let tradingsymbol = match field(2) {
        Some(symbol) => Some(symbols.get(instrument_token, symbol)?),
        None => None,
    };
    // An optional column: absent is `Some(None)`, unreadable is `None`.
    let optional_integer = |column: usize, digits: usize| match field(column) {
        None => Some(None),
        Some(text) => integer(text, digits).map(Some),
    };
    let optional_price = |column: usize| match field(column) {
        None => Some(None),
        Some(text) => decimal(text).map(|d| Some(Price(d))),
    };
    let ohlc = match (
        optional_price(9)?,
        optional_price(10)?,
        optional_price(11)?,
        optional_price(12)?,
    ) {
        (Some(open), Some(high), Some(low), Some(close)) => Some(Ohlc {
            open,
            high,
            low,
            close,
        }),
        (None, None, None, None) => None,
        _ => return None,
    };
    Some(MarketTick {
        instrument_token: InstrumentToken(instrument_token),
        tradingsymbol,
        last_price: Price(last_price),
        last_traded_quantity: optional_integer(4, 9)?.unwrap_or(0) as u32,
        average_traded_price: optional_price(6)?,
        volume_traded: optional_integer(5, 19)?.unwrap_or(0),
        total_buy_quantity: optional_integer(7, 19)?.unwrap_or(0),
        total_sell_quantity: optional_integer(8, 19)?.unwrap_or(0),
        ohlc,
        oi: optional_integer(13, 19)?,
        exchange_timestamp,
        depth: None,
    })
}

/// Splits `line` at its commas into `fields`; returns how many there are, or `None` for a line
/// with a quote or more fields than `fields` holds (the replay's parser reads those).
///
/// Eight bytes are looked at a time, as one `u64`: a field is a few bytes long, so a search that
/// stops at every comma (memchr's) pays its start-up cost per field, and a byte-by-byte split was a
/// third of parsing. The byte test is exact: no carry crosses from one byte into the next.
fn split_fields<'a>(line: &'a [u8], fields: &mut [&'a [u8]]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const LOW_SEVEN: u64 = u64::from_ne_bytes([0x7f; 8]);
    /// A mask with the high bit of every byte of `word` that equals `byte`.
    fn equal_bytes(word: u64, byte: u8) -> u64 {
        let x = word ^ (ONES * u64::from(byte));
        !(((x & LOW_SEVEN) + LOW_SEVEN) | x | LOW_SEVEN)
    }
    let mut count = 0;
    let mut start = 0;
    let mut field_at = |end: usize, start: &mut usize| -> Option<()> {
        *fields.get_mut(count)? = &line[*start..end];
        count += 1;
        *start = end + 1;
        Some(())
    };
    let mut words = line.chunks_exact(8);
    let mut base = 0;
    for chunk in words.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if equal_bytes(word, b'"') != 0 {
            return None;
        }
        let mut commas = equal_bytes(word, b',');
        while commas != 0 {
            field_at(base + commas.trailing_zeros() as usize / 8, &mut start)?;
            commas &= commas - 1;
        }
        base += 8;
    }
    for (i, byte) in words.remainder().iter().enumerate() {
        match byte {
            b'"' => return None,
            b',' => field_at(base + i, &mut start)?,
            _ => {}
        }
    }
    field_at(line.len(), &mut start)?;
    Some(count)
}

/// A whole number of at most `max_digits` digits (so it fits without overflow checks).
fn integer(text: &[u8], max_digits: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max_digits {
        return None;
    }
    text.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// A plain decimal (`123`, `2450.05`, `0.50`) of at most 18 digits, with the scale it is written
/// with, as `Decimal::from_str` reads it; `None` for any other text (a sign, an exponent, more
/// digits), which is then for `Decimal::from_str`. The Parquet reader's text prices take it too.
pub(crate) fn decimal(text: &[u8]) -> Option<Decimal> {
    let (whole, fraction) = match memchr::memchr(b'.', text) {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &text[..0]),
    };
    if whole.is_empty() || (fraction.is_empty() && whole.len() != text.len()) {
        return None;
    }
    if whole.len() + fraction.len() > 18 {
        return None;
    }
    let mantissa = [whole, fraction].iter().try_fold(0i64, |n, part| {
        part.iter().try_fold(n, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    })?;
    Some(Decimal::new(mantissa, fraction.len() as u32))
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)` with at most six fraction digits; anything else is
/// for chrono.
fn rfc3339(text: &[u8]) -> Option<Timestamp> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        text.get(range)?.iter().try_fold(0i64, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| text.get(at) != Some(&c)) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    // A leap second, or an hour past the day, is chrono's to judge.
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if text.get(at) == Some(&b'.') {
        let start = at + 1;
        let mut end = start;
        while text.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let count = end - start;
        if count == 0 || count > 6 {
            return None;
        }
        micros = digits(start..end)? * 10i64.pow((6 - count) as u32);
        at = end;
    }
    let offset_seconds = match text.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(at + 1..at + 3)?;
            let minutes = digits(at + 4..at + 6)?;
            let _ = (h1, h2, m1, m2);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Timestamp::from_unix_micros(seconds * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_services::parse_ticks_csv;
    use std::io::Write;

    fn read(text: &str) -> Vec<Result<MarketTick, BadRow>> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        CsvTicks::open(file.path()).expect("open").collect()
    }

    #[test]
    fn bytes_compare_as_slices_do_at_every_length() {
        let text = b"NIFTY25DEC24500CE-EXTRA";
        for length in 0..=text.len() {
            let a = &text[..length];
            assert!(same_bytes(a, a));
            for at in 0..length {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert!(!same_bytes(a, &b), "{length} {at}");
            }
            assert!(!same_bytes(a, &text[..length.saturating_sub(1)]) || length == 0);
        }
    }

    #[test]
    fn fields_split_at_every_comma_of_any_alignment() {
        for line in [
            &b""[..],
            b",",
            b"a,b",
            b"1234567,9",
            b"12345678,",
            b",,,,,,,,,,,,,,,,,",
            b"2025-11-21T03:45:00.250000Z,738561,RELIANCE,2450.50,10,1000,,5",
            b"\x2c\xac-,\x01,\x7f\xff,-",
        ] {
            let mut fields = [&b""[..]; MAX_FIELDS];
            let count = split_fields(line, &mut fields).expect("no quote, few fields");
            let expected: Vec<&[u8]> = line.split(|b| *b == b',').collect();
            assert_eq!(&fields[..count], expected.as_slice(), "{line:?}");
        }
        let mut fields = [&b""[..]; MAX_FIELDS];
        assert_eq!(split_fields(b"12345678\"9", &mut fields), None);
        assert_eq!(split_fields(b"1\"", &mut fields), None);
        assert_eq!(split_fields(&[b','; MAX_FIELDS], &mut fields), None);
    }

    /// Rows of every shape read exactly as the replay reads them: the same ticks (scale of every
    /// decimal included, since the outputs print them) and the same bad rows with their lines.
    #[test]
    fn every_row_reads_as_the_replay_reads_it() {
        let text = "\u{feff}exchange_timestamp,instrument_token,tradingsymbol,last_price,last_traded_quantity,volume_traded,average_traded_price,total_buy_quantity,total_sell_quantity,open,high,low,close,oi\r\n\
            2025-11-21T03:45:00.250000Z,738561,RELIANCE,2450.50,10,1000,2449.9,5,6,2440,2460,2430.05,2445,\r\n\
            2025-11-21T09:15:00.25+05:30,738561, RELIANCE ,2451,,,,,,,,,,7\n\
            2025-11-21T03:45:01Z,2953217,\"TCS\",3300.1,1,2,,,,,,,,\n\
            2025-11-21T03:45:02.123456789Z,2953217,TCS,3300.15,,,,,,,,,,\n\
            2025-11-21t03:45:03z,2953217,TCS,1e2,,,,,,,,,,\n\
            2025-02-30T03:45:04Z,2953217,TCS,3300,,,,,,,,,,\n\
            2025-11-21T03:45:05Z,2953217,TCS,-1,,,,,,,,,,\n\
            2025-11-21T03:45:06Z,notanumber,TCS,10,,,,,,,,,,\n\
            2025-11-21T03:45:07Z,2953217,TCS,10,,,,,1,2,,,,\n\
            2025-11-21T03:45:08Z,2953217,TCS,.5,,,,,,,,,,\n\
            2025-11-21T03:45:09Z,2953217,TCS,5.,,,,,,,,,,\n\
            2025-11-21T03:45:10-01:30,2953217,TCS,007.50,99999999999,,,,,,,,,\n\
            2025-11-21T03:45:11Z,2953217\n\
            2025-11-21T03:45:12Z,2953217,TCS,12345678901234567890.5,,,,,,,,,,";
        let replay = parse_ticks_csv(text).expect("replay parses");
        let ours = read(text);
        let ticks: Vec<&MarketTick> = ours.iter().filter_map(|r| r.as_ref().ok()).collect();
        let bad: Vec<&BadRow> = ours.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(ticks.len(), replay.ticks.len(), "{bad:?}");
        for (ours, theirs) in ticks.iter().zip(&replay.ticks) {
            assert_eq!(*ours, theirs);
            assert_eq!(
                ours.last_price.0.to_string(),
                theirs.last_price.0.to_string()
            );
        }
        assert_eq!(bad.len(), replay.bad_rows.len());
        for (ours, theirs) in bad.iter().zip(&replay.bad_rows) {
            assert_eq!(*ours, theirs);
        }
        assert!(!replay.bad_rows.is_empty() && replay.ticks.len() >= 6);
    }

    /// An empty line is skipped, as the replay skips it; lines are counted as they are in the
    /// file (the replay's reader does not count the empty ones).
    #[test]
    fn empty_lines_are_skipped_and_lines_are_the_files() {
        let ticks = read(
            "exchange_timestamp,instrument_token,last_price\n\
             2025-11-21T03:45:00Z,1,10\n\
             \n\
             2025-11-21T03:45:01Z,1,x\n",
        );
        assert_eq!(ticks.len(), 2);
        assert!(ticks[0].is_ok());
        assert_eq!(ticks[1].as_ref().err().map(|b| b.line), Some(4));
    }

    #[test]
    fn the_fast_instant_is_chronos() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999Z",
            "2025-11-21T09:15:00.1+05:30",
            "1969-12-31T23:59:59.5Z",
            "2100-03-01T00:00:00-00:30",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(text).expect("valid");
            let expected = Timestamp::from_datetime(chrono.with_timezone(&chrono::Utc));
            assert_eq!(rfc3339(text.as_bytes()), Some(expected), "{text}");
        }
    }

    #[test]
    fn a_missing_column_is_named_and_a_missing_file_is_said() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(b"exchange_timestamp,last_price\n")
            .expect("write");
        let error = CsvTicks::open(file.path()).err().expect("refused");
        assert!(error.to_string().contains("instrument_token"), "{error}");
        let error = CsvTicks::open(Path::new("/nonexistent/ticks.csv"))
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains("/nonexistent/ticks.csv"),
            "{error}"
        );
    }

    #[test]
    fn rows_across_buffer_boundaries_are_whole() {
        let mut text = String::from("exchange_timestamp,instrument_token,last_price\n");
        let rows = 3 * CHUNK / 40;
        for i in 0..rows {
            text.push_str(&format!(
                "2025-11-21T03:45:00.{:06}Z,{},{}.05\n",
                i % 1_000_000,
                1 + i % 7,
                100 + i % 50
            ));
        }
        let ticks = read(&text);
        assert_eq!(ticks.len(), rows);
        assert!(ticks.iter().all(Result::is_ok));
    }
}
