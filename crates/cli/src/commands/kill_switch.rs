//! `alpha-panda kill-switch engage | release --broker B --reason …`: the per-namespace kill switch,
//! the same one the API sets. The namespace's risk manager reads it within a second.

use std::process::ExitCode;

use alpha_panda_core::{Broker, Timestamp};
use alpha_panda_store::KillSwitch;
use clap::{Args, Subcommand};

use crate::settings::Settings;

/// Arguments of `kill-switch`.
#[derive(Debug, Args)]
pub struct KillSwitchArgs {
    /// Engage, release, or show.
    #[command(subcommand)]
    pub action: KillSwitchAction,
}

/// The kill-switch actions.
#[derive(Debug, Subcommand)]
pub enum KillSwitchAction {
    /// Halt new entries in a namespace (exits still go).
    Engage {
        /// paper or zerodha.
        #[arg(long, value_parser = parse_broker)]
        broker: Broker,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Let new entries through again.
    Release {
        /// paper or zerodha.
        #[arg(long, value_parser = parse_broker)]
        broker: Broker,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Show every namespace's switch.
    Show,
}

fn parse_broker(text: &str) -> Result<Broker, String> {
    text.parse::<Broker>().map_err(|e| e.to_string())
}

/// Runs a kill-switch action.
///
/// # Errors
/// When the store cannot be reached or the reason is empty.
pub async fn run(settings: &Settings, args: &KillSwitchArgs) -> anyhow::Result<ExitCode> {
    let store = crate::container::store(settings).await?;
    let switches = store.kill_switches();
    let (broker, engaged, reason) = match &args.action {
        KillSwitchAction::Engage { broker, reason } => (*broker, true, reason),
        KillSwitchAction::Release { broker, reason } => (*broker, false, reason),
        KillSwitchAction::Show => {
            for broker in &settings.brokers {
                match switches.get(*broker).await? {
                    Some(s) => println!(
                        "{broker}: {} ({}, by {} at {})",
                        if s.engaged { "engaged" } else { "released" },
                        s.reason,
                        s.changed_by,
                        s.changed_at
                    ),
                    None => println!("{broker}: released (never set)"),
                }
            }
            store.close().await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let who = std::env::var("USER").map_or_else(|_| "cli".to_string(), |u| format!("cli:{u}"));
    switches
        .set(&KillSwitch {
            broker,
            engaged,
            reason: reason.clone(),
            changed_by: who,
            changed_at: Timestamp::from_datetime(chrono::Utc::now()),
        })
        .await?;
    println!(
        "{broker}: kill switch {}",
        if engaged { "engaged" } else { "released" }
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
