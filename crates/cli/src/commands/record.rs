//! `alpha-panda record --out FILE.parquet`: the ticks of the configured log's `market.ticks`, in
//! exchange-time order, as a file `backtest` reads — so a day traded on paper or Zerodha can be
//! replayed. `.csv` writes the replay CSV instead.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use alpha_panda_backtest::parquet_ticks::ParquetTickWriter;
use alpha_panda_backtest::tick_file::is_parquet;
use alpha_panda_core::{Envelope, MarketTick, Payload, TopicMap};
use alpha_panda_stream::RecordValue;
use anyhow::{bail, Context};
use clap::Args;

use crate::commands::instant_flag;
use crate::settings::Settings;

/// Arguments of `record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The file to write: `.parquet` (or `.csv` for the replay CSV).
    #[arg(long)]
    pub out: PathBuf,
    /// Only ticks at or after this exchange time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Only ticks at or before this exchange time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
}

/// Reads `market.ticks` and writes the file.
///
/// # Errors
/// When the log cannot be read (or is the memory log, which lives inside `run`) or the file
/// cannot be written.
pub async fn run(settings: &Settings, args: &RecordArgs) -> anyhow::Result<ExitCode> {
    let from = instant_flag(args.from.as_deref(), "--from")?;
    let to = instant_flag(args.to.as_deref(), "--to")?;
    if settings.log.url.starts_with("memory") {
        bail!(
            "log.url is the memory log, which lives inside `alpha-panda run` and is gone when it \
             ends; record from the deployment's Kafka (log.url = \"kafka://host:port\")"
        );
    }
    let log = settings.log.connect().context("log.url")?;
    let records = log
        .read_all(&TopicMap::market_ticks())
        .await
        .context("could not read market.ticks; is log.url reachable?")?;
    let mut seen = HashSet::new();
    let mut ticks: Vec<MarketTick> = Vec::new();
    let mut undecodable = 0u64;
    for record in records {
        let envelope = match record.value {
            RecordValue::Event(e) => Envelope::clone(&e),
            RecordValue::Bytes(bytes) => match Envelope::from_json(&bytes) {
                Ok(e) => e,
                Err(_) => {
                    undecodable += 1;
                    continue;
                }
            },
        };
        let Payload::MarketTick(tick) = envelope.payload else {
            continue;
        };
        let at = tick.exchange_timestamp;
        let inside = from.is_none_or(|f| at >= f) && to.is_none_or(|t| at <= t);
        // A tick published twice (a feed restarted before its acknowledgement) is one tick.
        if inside && seen.insert(envelope.id) {
            ticks.push(tick);
        }
    }
    // Partitions hold instruments apart; the file is one exchange-time order (stable, so ticks
    // of one instant keep their partition's order).
    ticks.sort_by_key(|t| t.exchange_timestamp);
    let count = ticks.len();
    if is_parquet(&args.out) {
        let mut writer = ParquetTickWriter::create(&args.out)?;
        for tick in &ticks {
            writer.write(tick)?;
        }
        writer.finish()?;
    } else {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&args.out)
                .with_context(|| format!("cannot write {}", args.out.display()))?,
        );
        file.write_all(alpha_panda_services::ticks_to_csv(&ticks).as_bytes())?;
        file.flush()?;
    }
    if undecodable > 0 {
        tracing::warn!(
            undecodable,
            "records of market.ticks that are not events were left out"
        );
    }
    println!("recorded {count} ticks to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
