//! `alpha-panda api`: the operator surface alone, for a deployment of several processes on Kafka,
//! PostgreSQL and Redis (the services run in other processes; this one reads what they publish).

use std::process::ExitCode;

use alpha_panda_core::{Broker, Timestamp};
use clap::Args;
use tracing::warn;

use crate::container::{self, Backends};
use crate::settings::Settings;

/// Arguments of `api`.
#[derive(Debug, Args)]
pub struct ApiArgs {}

/// Serves the API and the dashboard until interrupted.
///
/// # Errors
/// When a backend cannot be reached or `api.bind` cannot be listened on.
pub async fn run(settings: &Settings, _args: &ApiArgs) -> anyhow::Result<ExitCode> {
    let mut termination = crate::commands::run::Termination::listen();
    let backends = Backends::connect(settings).await?;
    settings.guard_api()?;
    let kite = if settings.brokers.contains(&Broker::Zerodha) {
        let now = Timestamp::from_datetime(chrono::Utc::now());
        match container::zerodha_session(settings, &backends.store, now).await {
            Ok(client) => Some(client),
            Err(e) => {
                // The API still serves; readiness says Zerodha is not authenticated.
                warn!(
                    error = format!("{e:#}"),
                    "no valid Kite session; /health/ready reports it"
                );
                None
            }
        }
    } else {
        None
    };
    // Alone, the API is the process: a busy port is an error in every environment.
    let Some(server) = crate::api_server::start(settings, &backends, kite, true).await? else {
        anyhow::bail!("api.bind: cannot listen on {}", settings.api.bind);
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = termination.received() => {}
    }
    server.stop().await;
    backends.store.close().await;
    Ok(ExitCode::SUCCESS)
}
