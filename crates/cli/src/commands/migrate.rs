//! `alpha-panda migrate [--check]`: apply the SQL migrations, or only report the pending ones.

use std::process::ExitCode;

use alpha_panda_store::{redact_url, Store};
use anyhow::Context;
use clap::Args;

use crate::settings::Settings;

/// Arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Apply nothing; exit 2 when any migration is pending.
    #[arg(long)]
    pub check: bool,
}

/// Applies or checks migrations on `database.url`.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn run(settings: &Settings, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let url = settings.database_url();
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("could not open the database {}", redact_url(&url)))?;
    let pending = store.pending_migrations().await?;
    if args.check {
        if pending.is_empty() {
            println!("migrations are current ({})", store.backend().as_str());
            return Ok(ExitCode::SUCCESS);
        }
        for name in &pending {
            println!("pending: {name}");
        }
        println!(
            "{} migration(s) pending; run `alpha-panda migrate`",
            pending.len()
        );
        return Ok(ExitCode::from(2));
    }
    let applied = store.migrate().await?;
    for name in &applied {
        println!("applied: {name}");
    }
    println!(
        "{} migration(s) applied; the {} database is current",
        applied.len(),
        store.backend().as_str()
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
