//! `alpha-panda config`: the effective settings, secrets redacted, and where each value came from.

use std::process::ExitCode;

use clap::Args;

use crate::settings::LoadedSettings;

/// Arguments of `config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// One JSON object per setting instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the settings.
///
/// # Errors
/// Never in practice; the signature matches the other commands.
pub fn run(loaded: &LoadedSettings, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let rows = loaded.provenance();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let key_width = rows.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
        let value_width = rows
            .iter()
            .map(|r| r.value.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 60);
        println!("{:key_width$}  {:value_width$}  SOURCE", "KEY", "VALUE");
        for row in rows {
            println!(
                "{:key_width$}  {:value_width$}  {}",
                row.key, row.value, row.source
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
