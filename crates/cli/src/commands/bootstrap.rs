//! `alpha-panda bootstrap`: create every topic of the configured brokers and each `.dlq` with the
//! specs of the environment's overlay, print what exists, what was created and what drifts.

use std::process::ExitCode;

use alpha_panda_stream::reconcile_topics;
use anyhow::Context;
use clap::Args;

use crate::settings::Settings;

/// Arguments of `bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Only report; create nothing. Exits non-zero when anything is missing or drifts.
    #[arg(long)]
    pub check: bool,
}

/// Reconciles the topics.
///
/// # Errors
/// When the log cannot be reached or refuses a creation.
pub async fn run(settings: &Settings, args: &BootstrapArgs) -> anyhow::Result<ExitCode> {
    let log = settings.log.connect()?;
    let broker_count = log
        .broker_count()
        .await
        .context("could not read the cluster's brokers; is log.url reachable?")?;
    let overlay = settings.topic_overlay(broker_count);
    let report = reconcile_topics(&log, &settings.brokers, &overlay, !args.check).await?;
    log.flush().await;
    print!("{}", report.to_table());
    if report.has_unfixed_problems() {
        for problem in report.problems() {
            eprintln!("problem: {problem}");
        }
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
