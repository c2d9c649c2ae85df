//! `alpha-panda summary [--json]`: the run summary read from the log (useful when the services run
//! as separate processes on Kafka).

use std::process::ExitCode;

use clap::Args;

use crate::settings::Settings;
use crate::summary;

/// Arguments of `summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Prints the summary of the configured brokers.
///
/// # Errors
/// When the log cannot be read.
pub async fn run(settings: &Settings, args: &SummaryArgs) -> anyhow::Result<ExitCode> {
    let log = settings.log.connect()?;
    let summary = summary::collect(&log, &settings.brokers).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(ExitCode::SUCCESS)
}
